//! Shared test helpers: one real OpenBao per test binary, the provider as a
//! real process on a temporary socket, a gRPC client like the driver's, and
//! mount requests shaped like the driver's.
//!
//! Tests are plain `#[test]` functions that call [`run`]: every test of a
//! binary shares one multi-thread runtime, so the OpenBao child process and
//! the fake TokenReview server (spawned on it) serve all of them.

// Each test binary uses a subset of these helpers.
#![allow(dead_code, unused_imports)]

pub mod cli;
pub mod fault_proxy;
pub mod kube_api;
pub mod manifests;
pub mod postgres;
pub mod provider;
pub mod proxy;
pub mod requests;

use std::future::Future;
use std::sync::LazyLock;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::OnceCell;
use vault_csi::demo::openbao::DevServer;
use vault_csi::demo::sa_token::TokenSigner;
use vault_csi::demo::token_review::{self, TokenReviewServer};

pub use provider::Provider;
pub use requests::{MountBuilder, TestPod};

/// Held by tests that depend on TTLs or seal the server, so they run one at
/// a time even though the test harness runs tests in parallel.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The runtime every test of a binary runs on.
static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("test runtime")
});

/// Runs a test body on the shared runtime.
pub fn run<F: Future>(body: F) -> F::Output {
    RUNTIME.block_on(body)
}

/// The real components a test binary shares.
pub struct Env {
    /// The OpenBao dev server.
    pub bao: DevServer,
    /// Signs pods' service-account tokens.
    pub signer: TokenSigner,
    /// The fake API server's TokenReview endpoint, for Kubernetes auth.
    pub review: TokenReviewServer,
}

static ENV: OnceCell<Env> = OnceCell::const_new();

/// The shared environment: OpenBao with Kubernetes auth at `kubernetes/` and
/// JWT auth at `jwt/`, both trusting [`Env::signer`].
pub async fn env() -> &'static Env {
    ENV.get_or_init(|| async {
        let bao = DevServer::start()
            .await
            .expect("start OpenBao (run scripts/install-openbao.sh)");
        let signer = TokenSigner::new().expect("signer");
        let review = TokenReviewServer::start(&signer)
            .await
            .expect("TokenReview server");
        token_review::configure_kubernetes_auth(&bao, "kubernetes", &review, None)
            .await
            .expect("k8s auth");
        token_review::configure_jwt_auth(&bao, "jwt", &signer, None)
            .await
            .expect("jwt auth");
        Env {
            bao,
            signer,
            review,
        }
    })
    .await
}

/// The shared environment once it exists (for sync helpers in tests that
/// already awaited [`env`]).
pub fn env_now() -> &'static Env {
    ENV.get().expect("call common::env().await first")
}

/// The shared OpenBao's address (after [`env`] was awaited).
pub fn bao_addr() -> &'static str {
    env_now().bao.addr()
}

impl Env {
    /// Calls the OpenBao API as root, panicking on failure (test setup).
    pub async fn api(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.bao
            .api(method.clone(), path, body)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// Writes a KV v2 secret at `secret/data/<path>`.
    pub async fn kv2_put(&self, path: &str, data: Value) {
        self.api(
            reqwest::Method::POST,
            &format!("secret/data/{path}"),
            Some(json!({ "data": data })),
        )
        .await;
    }

    /// A policy granting `capabilities` on each path, and a Kubernetes auth
    /// role `role` bound to `sa` in `ns` with that policy.
    pub async fn k8s_role(
        &self,
        role: &str,
        sa: &str,
        ns: &str,
        paths: &[(&str, &str)],
        ttl: Duration,
    ) {
        self.policy(role, paths).await;
        token_review::kubernetes_role(&self.bao, "kubernetes", role, &[sa], &[ns], &[role], ttl)
            .await
            .expect("kubernetes role");
    }

    /// A policy named `name` with `(path, capabilities)` rules.
    pub async fn policy(&self, name: &str, paths: &[(&str, &str)]) {
        let hcl: String = paths
            .iter()
            .map(|(p, caps)| format!("path \"{p}\" {{ capabilities = [{caps}] }}\n"))
            .collect();
        self.bao.write_policy(name, &hcl).await.expect("policy");
    }

    /// Audit-log entries (responses) for requests to `path`.
    pub fn audit_requests(&self, path: &str) -> usize {
        self.bao
            .audit_entries()
            .iter()
            .filter(|e| e["type"] == "request" && e["request"]["path"] == path)
            .count()
    }
}
