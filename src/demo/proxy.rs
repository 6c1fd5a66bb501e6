//! `bao proxy` with a unix-socket listener: the stand-in for the Vault Agent
//! sidecar that HashiCorp's Helm chart runs next to the provider
//! (`VAULT_ADDR=unix:///var/run/vault/agent.sock`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::DemoError;
use super::openbao::find_bao;
use super::watchdog::Watched;

/// A running `bao proxy` forwarding a unix socket to a Vault address.
pub struct BaoProxy {
    /// The proxy process, stopped on drop.
    _process: Watched,
    /// The proxy's unix socket.
    socket: PathBuf,
    /// The proxy's log.
    log: PathBuf,
    // Kept last: the directory must outlive the process using it.
    _dir: TempDir,
}

impl BaoProxy {
    /// Starts a proxy in front of `vault_addr` with a cache, listening on a
    /// unix socket.  With `require_request_header`, it refuses requests
    /// without `X-Vault-Request: true`, as Vault Agent can be told to.
    pub async fn start(
        vault_addr: &str,
        require_request_header: bool,
    ) -> Result<BaoProxy, DemoError> {
        Self::launch(vault_addr, require_request_header, None).await
    }

    /// Like [`BaoProxy::start`], in front of a TLS Vault (`https://…`) whose
    /// certificate is issued by the CA in `ca_cert` (PEM).
    pub async fn start_tls(
        vault_addr: &str,
        require_request_header: bool,
        ca_cert: &Path,
    ) -> Result<BaoProxy, DemoError> {
        Self::launch(vault_addr, require_request_header, Some(ca_cert)).await
    }

    /// Writes the proxy's configuration and starts it.
    async fn launch(
        vault_addr: &str,
        require_request_header: bool,
        ca_cert: Option<&Path>,
    ) -> Result<BaoProxy, DemoError> {
        let bin = find_bao()?;
        let dir = tempfile::Builder::new()
            .prefix("vault-csi-bao-proxy-")
            .tempdir()
            .map_err(|e| DemoError::io("create temp dir", e))?;
        let socket = dir.path().join("agent.sock");
        let log = dir.path().join("proxy.log");
        let config = dir.path().join("proxy.hcl");
        // JSON string literals are valid HCL strings.
        let ca = match ca_cert {
            Some(path) => format!(
                "  ca_cert = {}\n",
                serde_json::Value::from(path.to_string_lossy().as_ref())
            ),
            None => String::new(),
        };
        let hcl = format!(
            "vault {{\n  address = {addr}\n{ca}}}\n\
             listener \"unix\" {{\n  address = {sock}\n  tls_disable = true\n  require_request_header = {require}\n}}\n\
             api_proxy {{\n  use_auto_auth_token = false\n}}\n\
             cache {{}}\n",
            addr = serde_json::Value::from(vault_addr),
            sock = serde_json::Value::from(socket.to_string_lossy().as_ref()),
            require = require_request_header,
        );
        std::fs::write(&config, hcl).map_err(|e| DemoError::io("write proxy config", e))?;
        let args = ["proxy".to_string(), format!("-config={}", config.display())];
        let mut process = Watched::spawn(&bin, &args, dir.path(), &log)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = process.try_wait()? {
                return Err(DemoError::Startup {
                    reason: format!("bao proxy exited with {status}"),
                    log_tail: std::fs::read_to_string(&log).unwrap_or_default(),
                });
            }
            if tokio::net::UnixStream::connect(&socket).await.is_ok() {
                return Ok(BaoProxy {
                    _process: process,
                    socket,
                    log,
                    _dir: dir,
                });
            }
            if Instant::now() >= deadline {
                return Err(DemoError::Startup {
                    reason: "bao proxy's socket did not accept connections in 30 s".into(),
                    log_tail: std::fs::read_to_string(&log).unwrap_or_default(),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The unix socket the proxy listens on.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The proxy's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}
