//! The tests' side of `vault_csi::demo::postgres` (one launcher for the tests
//! and the benchmark): start-up and the database engine on the shared
//! OpenBao, panicking with the reason, since a test must fail, never skip,
//! when PostgreSQL is missing.

pub use vault_csi::demo::postgres::{CREATE_ROLE, DatabaseRole, Postgres};

/// A fresh PostgreSQL server; panics with the install hint or the log tail.
pub async fn start() -> Postgres {
    Postgres::start()
        .await
        .unwrap_or_else(|e| panic!("start PostgreSQL: {e}"))
}

/// Mounts OpenBao's database engine at `mount` on the shared server,
/// connected to `pg`, with each `(role, default_ttl, max_ttl)`.
pub async fn database_engine(pg: &Postgres, mount: &str, roles: &[(&str, &str, &str)]) {
    let roles: Vec<DatabaseRole> = roles
        .iter()
        .map(|&(name, default_ttl, max_ttl)| DatabaseRole {
            name,
            default_ttl,
            max_ttl,
        })
        .collect();
    let bao = &super::env().await.bao;
    vault_csi::demo::postgres::database_engine(bao, pg, mount, &roles)
        .await
        .unwrap_or_else(|e| panic!("database engine at {mount}: {e}"));
}
