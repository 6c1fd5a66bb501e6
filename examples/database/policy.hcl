# Credentials of the orders-app database role.
path "database/creds/orders-app" {
  capabilities = ["read"]
}
