# Issue certificates with the example-dot-com role (issuing is a write).
path "pki/issue/example-dot-com" {
  capabilities = ["update"]
}
