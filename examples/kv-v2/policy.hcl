# Read access to the webapp's KV v2 secrets (mount `secret/`).
path "secret/data/webapp/*" {
  capabilities = ["read"]
}
