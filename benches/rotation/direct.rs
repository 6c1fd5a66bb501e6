//! The baseline for the provider's overhead: the same Vault reads a Mount
//! sends, issued straight to OpenBao with reqwest and a warm token.

use std::time::{Duration, Instant};

use futures_util::future::try_join_all;
use serde_json::{Value, json};

/// A Vault client holding a token of the role the pods log in with.
pub struct DirectVault {
    /// Pooled keep-alive connections, as the provider keeps.
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT`.
    addr: String,
    /// The warm token.
    token: String,
}

impl DirectVault {
    /// Logs in once with Kubernetes auth as the pod whose token is `jwt`.
    pub async fn login(addr: &str, role: &str, jwt: &str) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(|e| e.to_string())?;
        let url = format!("{addr}/v1/auth/kubernetes/login");
        let answer: Value = http
            .post(&url)
            .header("X-Vault-Request", "true")
            .json(&json!({ "role": role, "jwt": jwt }))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| format!("POST {url}: {e}"))?
            .json()
            .await
            .map_err(|e| format!("POST {url}: {e}"))?;
        let token = answer["auth"]["client_token"]
            .as_str()
            .ok_or_else(|| format!("no client_token in the login answer: {answer}"))?
            .to_owned();
        Ok(Self {
            http,
            addr: addr.to_owned(),
            token,
        })
    }

    /// GETs every path at once (the provider sends a Mount's distinct
    /// requests concurrently too) and parses each JSON answer; the wall time.
    pub async fn read_all(&self, paths: &[&str]) -> Result<Duration, String> {
        let started = Instant::now();
        try_join_all(paths.iter().map(|path| self.read(path))).await?;
        Ok(started.elapsed())
    }

    /// One GET, its body parsed.
    async fn read(&self, path: &str) -> Result<Value, String> {
        let url = format!("{}/v1/{path}", self.addr);
        self.http
            .get(&url)
            .header("X-Vault-Token", &self.token)
            .header("X-Vault-Request", "true")
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| format!("GET {url}: {e}"))?
            .json()
            .await
            .map_err(|e| format!("GET {url}: {e}"))
    }
}
