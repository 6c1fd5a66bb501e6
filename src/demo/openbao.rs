//! A real OpenBao dev server (`bao server -dev`) on a free loopback port, with
//! a file audit device so tests can wait on what the server actually received.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use tempfile::TempDir;

use super::DemoError;
use super::watchdog::Watched;

/// How long `start` waits for the server to answer `sys/health`.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Interval of every polling loop here (health, audit log, unseal).
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Attempts at finding a port nobody else grabs between our probe and bao's bind.
const PORT_ATTEMPTS: usize = 5;
/// The dev root token; fixed so logs and examples are readable.
const ROOT_TOKEN: &str = "root";

/// An extra TLS listener for a dev server, next to its plain-HTTP one
/// (which the helpers here keep using).  The files are read by bao at start.
#[derive(Debug, Clone)]
pub struct TlsListener {
    /// The server's certificate chain (PEM).
    pub cert_file: PathBuf,
    /// The server's private key (PEM).
    pub key_file: PathBuf,
    /// When set, clients must present a certificate issued by this CA
    /// (`tls_require_and_verify_client_cert`).
    pub client_ca_file: Option<PathBuf>,
    /// Offer TLS 1.2 at most (`tls_max_version = "tls12"`), where the server
    /// judges a client certificate before the handshake ends.
    pub tls12_only: bool,
}

/// A running `bao server -dev` on `127.0.0.1:<free port>`, owned by this value.
///
/// The server keeps everything in memory, starts unsealed with KV v2 at
/// `secret/`, and writes every request and response to a raw (unhashed) file
/// audit log inside a temp dir. Dropping the value kills and reaps the
/// process and deletes the temp dir.
pub struct DevServer {
    /// The bao process, stopped when this value is dropped.
    process: Watched,
    port: u16,
    addr: String,
    /// `https://127.0.0.1:PORT` of each extra TLS listener, in order.
    tls_addrs: Vec<String>,
    unseal_key: String,
    audit_log: PathBuf,
    server_log: PathBuf,
    http: reqwest::Client,
    // Kept last: the directory must outlive the process writing into it.
    _dir: TempDir,
}

/// Why one launch attempt failed: a port clash is retried, anything else is not.
enum LaunchError {
    PortInUse(DemoError),
    Fatal(DemoError),
}

impl DevServer {
    /// Starts a dev server on a free loopback port and waits until it is
    /// unsealed and answering. Fails (never skips) if no `bao` binary exists.
    pub async fn start() -> Result<DevServer, DemoError> {
        Self::start_tls(&[]).await
    }

    /// Like [`DevServer::start`], with extra TLS listeners on their own free
    /// loopback ports (see [`DevServer::tls_addrs`]).
    pub async fn start_tls(listeners: &[TlsListener]) -> Result<DevServer, DemoError> {
        let bin = find_bao()?;
        let mut last = None;
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port()?;
            match launch(&bin, port, listeners).await {
                Ok(server) => return Ok(server),
                Err(LaunchError::PortInUse(e)) => last = Some(e),
                Err(LaunchError::Fatal(e)) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| DemoError::Startup {
            reason: "no free port found".into(),
            log_tail: String::new(),
        }))
    }

    /// The server's base URL, `http://127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// `https://127.0.0.1:PORT` of each TLS listener given to
    /// [`DevServer::start_tls`], in the same order.
    pub fn tls_addrs(&self) -> &[String] {
        &self.tls_addrs
    }

    /// The TCP port the API listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id (the `bao` entry point execs the real binary).
    pub fn pid(&self) -> Option<u32> {
        self.process.id()
    }

    /// The root token (`root`).
    pub fn root_token(&self) -> &str {
        ROOT_TOKEN
    }

    /// The unseal key the dev server printed at start (single Shamir share).
    pub fn unseal_key(&self) -> &str {
        &self.unseal_key
    }

    /// The file audit device's log: one JSON object per request and response.
    pub fn audit_log_path(&self) -> &Path {
        &self.audit_log
    }

    /// The server's own stdout/stderr log.
    pub fn server_log_path(&self) -> &Path {
        &self.server_log
    }

    /// The last lines of the server's own log, for error messages.
    pub fn server_log_tail(&self) -> String {
        log_tail(&self.server_log)
    }

    /// Calls the API with the root token; returns the JSON body, or `Null`
    /// for an empty (204) body. A non-2xx answer is a [`DemoError::Api`].
    pub async fn api(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, DemoError> {
        self.api_inner(None, method, path, body).await
    }

    /// Like [`DevServer::api`], inside an OpenBao namespace (`X-Vault-Namespace`).
    pub async fn api_ns(
        &self,
        namespace: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, DemoError> {
        self.api_inner(Some(namespace), method, path, body).await
    }

    /// Sends one request with an optional token and namespace and returns the
    /// status and parsed body (`Null` if empty) whatever the status: for
    /// tests that assert on how the server refuses something.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        namespace: Option<&str>,
        body: Option<Value>,
    ) -> Result<(u16, Value), DemoError> {
        let url = format!("{}/v1/{}", self.addr, api_path(path));
        let mut req = self
            .http
            .request(method.clone(), &url)
            .header("X-Vault-Request", "true");
        if let Some(token) = token {
            req = req.header("X-Vault-Token", token);
        }
        if let Some(ns) = namespace {
            req = req.header("X-Vault-Namespace", ns);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let http_err = |source| DemoError::Http {
            method: method.to_string(),
            url: url.clone(),
            source,
        };
        let resp = req.send().await.map_err(http_err)?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(http_err)?;
        let value = if text.trim().is_empty() {
            Value::Null
        } else {
            // Error bodies are JSON too; keep non-JSON text visible instead of failing.
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok((status, value))
    }

    async fn api_inner(
        &self,
        namespace: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, DemoError> {
        let (status, value) = self
            .raw(method.clone(), path, Some(ROOT_TOKEN), namespace, body)
            .await?;
        if (200..300).contains(&status) {
            Ok(value)
        } else {
            Err(DemoError::Api {
                method: method.to_string(),
                path: api_path(path).to_owned(),
                status,
                body: match value {
                    Value::String(s) => s,
                    other => other.to_string(),
                },
            })
        }
    }

    /// Writes an ACL policy (HCL text) under `name`.
    pub async fn write_policy(&self, name: &str, hcl: &str) -> Result<(), DemoError> {
        self.api(
            Method::PUT,
            &format!("sys/policies/acl/{name}"),
            Some(json!({ "policy": hcl })),
        )
        .await
        .map(drop)
    }

    /// All complete entries of the audit log so far, in order. A line still
    /// being written (no trailing newline yet) is left for the next call.
    pub fn audit_entries(&self) -> Vec<Value> {
        let Ok(text) = std::fs::read_to_string(&self.audit_log) else {
            return Vec::new();
        };
        let complete = match text.rfind('\n') {
            Some(end) => &text[..end],
            None => "",
        };
        complete
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// Waits until at least `count` audit entries satisfy `pred` and returns
    /// the matching ones. This is how tests wait for server-side events
    /// instead of sleeping; the error says how many matched in time.
    pub async fn wait_for_audit(
        &self,
        pred: impl Fn(&Value) -> bool,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<Value>, DemoError> {
        let deadline = Instant::now() + timeout;
        loop {
            let matching: Vec<Value> = self.audit_entries().into_iter().filter(&pred).collect();
            if matching.len() >= count {
                return Ok(matching);
            }
            if Instant::now() >= deadline {
                return Err(DemoError::Timeout {
                    waited: timeout,
                    what: format!(
                        "{count} matching audit entries in {} (saw {})",
                        self.audit_log.display(),
                        matching.len()
                    ),
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Seals the server (`PUT sys/seal`); every request then gets 503.
    pub async fn seal(&self) -> Result<(), DemoError> {
        self.api(Method::PUT, "sys/seal", None).await.map(drop)
    }

    /// Unseals with the dev unseal key and waits until `sys/health` reports an
    /// active, unsealed node again (200), so callers can use it at once.
    pub async fn unseal(&self) -> Result<(), DemoError> {
        let key = self.unseal_key.clone();
        let status = self
            .api(Method::PUT, "sys/unseal", Some(json!({ "key": key })))
            .await?;
        if status.get("sealed") != Some(&Value::Bool(false)) {
            return Err(DemoError::BadResponse {
                what: "PUT sys/unseal".into(),
                detail: format!("still sealed: {status}"),
            });
        }
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while !health_ok(&self.http, &self.addr).await {
            if Instant::now() >= deadline {
                return Err(DemoError::Timeout {
                    waited: STARTUP_TIMEOUT,
                    what: "sys/health to report active after unseal".into(),
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        Ok(())
    }
}

/// Accepts `sys/health`, `/sys/health` and `/v1/sys/health` alike.
fn api_path(path: &str) -> &str {
    let p = path.trim_start_matches('/');
    p.strip_prefix("v1/").unwrap_or(p)
}

/// `BAO_BIN`, else `.venv/bin/bao` under the current dir, else `bao` on PATH.
pub(super) fn find_bao() -> Result<PathBuf, DemoError> {
    if let Some(bin) = std::env::var_os("BAO_BIN") {
        let bin = PathBuf::from(bin);
        return if is_executable(&bin) {
            Ok(bin)
        } else {
            Err(DemoError::BaoNotFound(format!(
                "BAO_BIN={} is not an executable file",
                bin.display()
            )))
        };
    }
    let venv = std::env::current_dir()
        .map_err(|e| DemoError::io("current dir", e))?
        .join(".venv/bin/bao");
    if is_executable(&venv) {
        return Ok(venv);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("bao");
            if is_executable(&candidate) {
                return Ok(candidate);
            }
        }
    }
    Err(DemoError::BaoNotFound(format!(
        "no BAO_BIN, no {}, no bao on PATH",
        venv.display()
    )))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A port the kernel just handed out. Another process may still take it
/// before bao binds; `start` retries that case.
fn free_port() -> Result<u16, DemoError> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| DemoError::io("bind 127.0.0.1:0", e))?;
    let port = listener
        .local_addr()
        .map_err(|e| DemoError::io("local_addr", e))?
        .port();
    Ok(port)
}

/// HCL string literal (the temp dir path could in theory hold `"` or `\`).
fn hcl_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

async fn launch(
    bin: &Path,
    port: u16,
    listeners: &[TlsListener],
) -> Result<DevServer, LaunchError> {
    let fatal = LaunchError::Fatal;
    let dir = tempfile::Builder::new()
        .prefix("vault-csi-bao-")
        .tempdir()
        .map_err(|e| fatal(DemoError::io("create temp dir", e)))?;
    let audit_log = dir.path().join("audit.log");
    let server_log = dir.path().join("server.log");
    let config = dir.path().join("config.hcl");
    // OpenBao 2.7 refuses `sys/audit` over the API, so the device is declared in
    // config. `log_raw` must be the string "true": a bare HCL bool is rejected.
    let mut hcl = format!(
        "audit \"file\" \"demo\" {{\n  options {{\n    file_path = {}\n    log_raw = \"true\"\n  }}\n}}\n",
        hcl_string(&audit_log.to_string_lossy())
    );
    let mut tls_addrs = Vec::with_capacity(listeners.len());
    for listener in listeners {
        let tls_port = free_port().map_err(fatal)?;
        hcl.push_str(&tls_listener_hcl(listener, tls_port));
        tls_addrs.push(format!("https://127.0.0.1:{tls_port}"));
    }
    std::fs::write(&config, hcl).map_err(|e| fatal(DemoError::io("write bao config", e)))?;
    let args = [
        "server".to_string(),
        "-dev".to_string(),
        format!("-dev-root-token-id={ROOT_TOKEN}"),
        format!("-dev-listen-address=127.0.0.1:{port}"),
        // Without this the dev server writes ~/.vault-token, outside the temp dir.
        "-dev-no-store-token".to_string(),
        format!("-config={}", config.display()),
    ];
    let mut child = Watched::spawn(bin, &args, dir.path(), &server_log).map_err(fatal)?;

    let http = reqwest::Client::builder()
        // Loopback only: a proxy from the environment must not intercept it.
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|source| {
            fatal(DemoError::Http {
                method: "-".into(),
                url: "client builder".into(),
                source,
            })
        })?;
    let addr = format!("http://127.0.0.1:{port}");

    let deadline = Instant::now() + STARTUP_TIMEOUT;
    let mut unseal_key = None;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let tail = log_tail(&server_log);
                let err = DemoError::Startup {
                    reason: format!("bao exited with {status}"),
                    log_tail: tail.clone(),
                };
                return Err(if tail.contains("address already in use") {
                    LaunchError::PortInUse(err)
                } else {
                    fatal(err)
                });
            }
            Ok(None) => {}
            Err(e) => return Err(fatal(e)),
        }
        // The key is printed in the banner, just after the server starts answering.
        if unseal_key.is_none() {
            unseal_key = std::fs::read_to_string(&server_log)
                .ok()
                .and_then(|text| parse_unseal_key(&text));
        }
        if let Some(key) = &unseal_key
            && health_ok(&http, &addr).await
        {
            return Ok(DevServer {
                process: child,
                port,
                addr,
                tls_addrs,
                unseal_key: key.clone(),
                audit_log,
                server_log,
                http,
                _dir: dir,
            });
        }
        if Instant::now() >= deadline {
            drop(child);
            return Err(fatal(DemoError::Startup {
                reason: format!("not ready after {STARTUP_TIMEOUT:?} at {addr}"),
                log_tail: log_tail(&server_log),
            }));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// A `listener "tcp"` block serving TLS on `127.0.0.1:port`, added next to
/// `-dev`'s own listener (bao accepts both).
fn tls_listener_hcl(listener: &TlsListener, port: u16) -> String {
    let path = |p: &Path| hcl_string(&p.to_string_lossy());
    // An explicit cluster port 0: the default (port + 1) may be taken.
    let mut hcl = format!(
        "listener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  cluster_address = \"127.0.0.1:0\"\n  \
         tls_cert_file = {}\n  tls_key_file = {}\n",
        path(&listener.cert_file),
        path(&listener.key_file),
    );
    if listener.tls12_only {
        hcl.push_str("  tls_max_version = \"tls12\"\n");
    }
    if let Some(ca) = &listener.client_ca_file {
        hcl.push_str(&format!(
            "  tls_client_ca_file = {}\n  tls_require_and_verify_client_cert = true\n",
            path(ca)
        ));
    }
    hcl.push_str("}\n");
    hcl
}

/// True when `sys/health` answers 200: initialized, unsealed and active.
async fn health_ok(http: &reqwest::Client, addr: &str) -> bool {
    http.get(format!("{addr}/v1/sys/health"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .is_ok_and(|r| r.status().as_u16() == 200)
}

/// The dev banner's `Unseal Key: <base64>` line.
fn parse_unseal_key(log: &str) -> Option<String> {
    log.lines()
        .find_map(|line| line.trim().strip_prefix("Unseal Key:"))
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty())
}

fn log_tail(path: &Path) -> String {
    const LINES: usize = 40;
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LINES)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unseal_key_is_parsed_from_the_banner() {
        let banner = "The unseal key and root token are displayed below\n\n\
                      Unseal Key: 7iXsCCvITEwBWSq0DCvNWM/7jkcBMlK3S+bO2GNPhZY=\n\
                      Root Token: root\n";
        assert_eq!(
            parse_unseal_key(banner).as_deref(),
            Some("7iXsCCvITEwBWSq0DCvNWM/7jkcBMlK3S+bO2GNPhZY=")
        );
        assert_eq!(parse_unseal_key("Unseal Key: \n"), None);
    }

    #[test]
    fn api_paths_are_normalised() {
        assert_eq!(api_path("sys/health"), "sys/health");
        assert_eq!(api_path("/sys/health"), "sys/health");
        assert_eq!(api_path("/v1/sys/health"), "sys/health");
    }

    #[test]
    fn tls_listeners_are_written_with_their_files() {
        let plain = tls_listener_hcl(
            &TlsListener {
                cert_file: "/d/cert.pem".into(),
                key_file: "/d/key.pem".into(),
                client_ca_file: None,
                tls12_only: false,
            },
            8443,
        );
        assert!(plain.contains("address = \"127.0.0.1:8443\""), "{plain}");
        assert!(plain.contains("tls_cert_file = \"/d/cert.pem\""), "{plain}");
        assert!(
            !plain.contains("tls_require_and_verify_client_cert"),
            "{plain}"
        );
        assert!(!plain.contains("tls_max_version"), "{plain}");
        let mutual = tls_listener_hcl(
            &TlsListener {
                cert_file: "/d/cert.pem".into(),
                key_file: "/d/key.pem".into(),
                client_ca_file: Some("/d/ca.pem".into()),
                tls12_only: true,
            },
            8444,
        );
        assert!(
            mutual.contains("tls_client_ca_file = \"/d/ca.pem\""),
            "{mutual}"
        );
        assert!(
            mutual.contains("tls_require_and_verify_client_cert = true"),
            "{mutual}"
        );
        assert!(mutual.contains("tls_max_version = \"tls12\""), "{mutual}");
    }

    #[test]
    fn hcl_strings_are_escaped() {
        assert_eq!(hcl_string(r#"/tmp/a"b\c"#), r#""/tmp/a\"b\\c""#);
    }
}
