# Read access to the payments service's KV v2 secrets.
path "secret/data/payments/*" {
  capabilities = ["read"]
}
