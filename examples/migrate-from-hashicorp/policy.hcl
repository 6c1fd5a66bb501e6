# Read access to the billing service's KV v2 secrets.
path "secret/data/billing/*" {
  capabilities = ["read"]
}
