//! The real components the benchmark runs against, configured the way a
//! cluster would configure them: OpenBao (dev server with its file audit
//! device), Kubernetes auth through the TokenReview fake, KV v2 secrets, the
//! database engine on a real PostgreSQL, and a PKI engine.

use reqwest::Method;
use serde_json::{Value, json};
use vault_csi::demo::DemoError;
use vault_csi::demo::openbao::DevServer;
use vault_csi::demo::postgres::{self, DatabaseRole, Postgres};
use vault_csi::demo::sa_token::TokenSigner;
use vault_csi::demo::token_review::{self, TokenReviewServer};

use crate::audit::SHARED_SERVICE_ACCOUNT;
use crate::timing::{Compressed, flag};

/// The namespace every simulated pod runs in.
pub const NAMESPACE: &str = "bench";
/// The Vault role (and policy) every pod logs in with.
pub const ROLE: &str = "bench";
/// The KV v2 paths each SecretProviderClass reads.
pub const KV_PATHS: [&str; 3] = [
    "secret/data/bench/app-config",
    "secret/data/bench/api-key",
    "secret/data/bench/feature-flags",
];
/// The leased database credential.
pub const DB_PATH: &str = "database/creds/app";
/// The certificate, issued with `PUT`.
pub const PKI_PATH: &str = "pki/issue/web";

/// Everything the provider talks to; dropping it stops all of it.
pub struct World {
    /// The OpenBao dev server.
    pub bao: DevServer,
    /// Signs the pods' projected service-account tokens.
    pub signer: TokenSigner,
    /// OpenBao's version, from `sys/seal-status`.
    pub bao_version: String,
    /// PostgreSQL's version, from `SHOW server_version`.
    pub pg_version: String,
    /// Answers OpenBao's TokenReviews; kept alive for the whole run.
    _review: TokenReviewServer,
    /// The database behind `database/creds/app`; kept alive for the run.
    _pg: Postgres,
}

impl World {
    /// Starts and configures everything; `singles` service accounts get one
    /// pod each next to the Deployment's [`SHARED_SERVICE_ACCOUNT`].
    pub async fn start(singles: usize, times: &Compressed) -> Result<World, DemoError> {
        let bao = DevServer::start().await?;
        let pg = Postgres::start().await?;
        let signer = TokenSigner::new()?;
        let review = TokenReviewServer::start(&signer).await?;
        token_review::configure_kubernetes_auth(&bao, "kubernetes", &review, None).await?;

        let policy = format!(
            "path \"secret/data/bench/*\" {{ capabilities = [\"read\"] }}\n\
             path \"{DB_PATH}\" {{ capabilities = [\"read\"] }}\n\
             path \"{PKI_PATH}\" {{ capabilities = [\"update\"] }}\n"
        );
        bao.write_policy(ROLE, &policy).await?;
        let mut accounts = vec![SHARED_SERVICE_ACCOUNT.to_owned()];
        accounts.extend((1..=singles).map(single_account));
        // One role for all: identities differ by service account, which is
        // what the provider's sharing decision looks at.
        bao.api(
            Method::POST,
            &format!("auth/kubernetes/role/{ROLE}"),
            Some(json!({
                "bound_service_account_names": accounts,
                "bound_service_account_namespaces": [NAMESPACE],
                "token_policies": [ROLE],
                "token_ttl": times.token_ttl.as_secs(),
            })),
        )
        .await?;

        for (i, path) in KV_PATHS.iter().enumerate() {
            let data =
                json!({ "data": { "value": format!("bench-value-{i}-{}", "x".repeat(64)) } });
            bao.api(Method::POST, path, Some(data)).await?;
        }

        let (default_ttl, max_ttl) = (flag(times.lease_ttl), flag(times.lease_max_ttl));
        postgres::database_engine(
            &bao,
            &pg,
            "database",
            &[DatabaseRole {
                name: "app",
                default_ttl: &default_ttl,
                max_ttl: &max_ttl,
            }],
        )
        .await?;

        pki(&bao, times).await?;
        let status = bao.api(Method::GET, "sys/seal-status", None).await?;
        let bao_version = status["version"].as_str().unwrap_or("?").to_owned();
        let pg_version = pg.query("SHOW server_version")?;
        Ok(World {
            bao,
            signer,
            bao_version,
            pg_version,
            _review: review,
            _pg: pg,
        })
    }
}

/// The service account of the `i`th single-pod workload.
pub fn single_account(i: usize) -> String {
    format!("svc-{i:02}")
}

/// A PKI engine with an EC root (EC keys keep issuing cheap for OpenBao, so
/// RSA key generation does not dominate its CPU) and a role `web`.
async fn pki(bao: &DevServer, times: &Compressed) -> Result<(), DemoError> {
    bao.api(
        Method::POST,
        "sys/mounts/pki",
        Some(json!({ "type": "pki", "config": { "max_lease_ttl": "87600h" } })),
    )
    .await?;
    bao.api(
        Method::POST,
        "pki/root/generate/internal",
        Some(json!({ "common_name": "bench-ca", "ttl": "87600h", "key_type": "ec", "key_bits": 256 })),
    )
    .await?;
    let role: Value = json!({
        "allowed_domains": "example.com",
        "allow_subdomains": true,
        "max_ttl": "72h",
        "key_type": "ec",
        "key_bits": 256,
        // Compressed like the rest: OpenBao back-dates certificates by 30 s
        // by default, which would eat half of a 30 s compressed lifetime.
        "not_before_duration": flag(times.cert_backdate),
    });
    bao.api(Method::POST, "pki/roles/web", Some(role)).await?;
    Ok(())
}
