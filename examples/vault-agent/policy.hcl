# Read access to the inventory service's KV v2 secrets.
path "secret/data/inventory/*" {
  capabilities = ["read"]
}
