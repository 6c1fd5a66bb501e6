# Read access to the legacy application's KV v1 secrets (mount `kv/`).
path "kv/legacy/*" {
  capabilities = ["read"]
}
