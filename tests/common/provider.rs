//! The provider binary as a real process on a temporary socket.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tonic::transport::Channel;
use vault_csi::proto::csi_driver_provider_client::CsiDriverProviderClient;
use vault_csi::proto::{MountRequest, MountResponse};

/// A running `vault-csi` process.  Killed on drop.
pub struct Provider {
    /// The process; `None` once it has exited.
    child: Option<Child>,
    /// The folder holding the socket, key file and logs; shared with
    /// restarted processes.
    dir: Arc<TempDir>,
    /// The unix socket path.
    pub socket: PathBuf,
    /// `host:port` of the health endpoint.
    pub health: String,
    /// Where this process's stderr goes.
    log: PathBuf,
    /// Arguments used, for restarts.
    args: Vec<String>,
    /// Extra environment used, for restarts.
    env: Vec<(String, String)>,
    /// Whether `--hmac-key-file` is passed, for restarts.
    key_file: bool,
}

impl Provider {
    /// Starts the provider with `args` (beyond the socket, health address and
    /// key file the helper sets) and waits until it is ready.
    pub async fn start(args: &[&str]) -> Provider {
        Self::start_with_env(args, &[]).await
    }

    /// Like [`Provider::start`], with extra environment variables.
    pub async fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Provider {
        Self::start_opts(args, env, true).await
    }

    /// Like [`Provider::start_with_env`]; without `with_key_file` no
    /// `--hmac-key-file` is passed, so the key comes from Kubernetes.
    pub async fn start_opts(args: &[&str], env: &[(&str, &str)], with_key_file: bool) -> Provider {
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        std::fs::write(dir.path().join("hmac.key"), [7u8; 32]).expect("key file");
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self::spawn(dir, args, env, with_key_file).await
    }

    /// Starts a second process in the same folder (same socket path, key,
    /// arguments and environment).
    pub async fn restart(&self) -> Provider {
        Self::spawn(
            self.dir.clone(),
            self.args.clone(),
            self.env.clone(),
            self.key_file,
        )
        .await
    }

    async fn spawn(
        dir: Arc<TempDir>,
        args: Vec<String>,
        env: Vec<(String, String)>,
        key_file: bool,
    ) -> Provider {
        let socket = dir.path().join("vault.sock");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let health = format!("127.0.0.1:{port}");
        let n = std::fs::read_dir(dir.path()).unwrap().count();
        let log = dir.path().join(format!("provider-{n}.log"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_vault-csi"));
        command
            .arg(format!("-endpoint={}", socket.display()))
            .arg(format!("-health-addr={health}"))
            .args(&args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(File::create(&log).unwrap())
            .stderr(File::options().append(true).open(&log).unwrap());
        if key_file {
            command.arg(format!(
                "--hmac-key-file={}",
                dir.path().join("hmac.key").display()
            ));
        }
        // Tests see Vault's current answer unless they test the response cache.
        if !args.iter().any(|a| a.contains("cache-ttl")) {
            command.arg("--cache-ttl=0");
        }
        if !args.iter().any(|a| a.contains("log-level")) {
            command.arg("--log-level=debug");
        }
        for (k, v) in &env {
            command.env(k, v);
        }
        let child = command.spawn().expect("spawn vault-csi");
        let mut provider = Provider {
            child: Some(child),
            dir,
            socket,
            health,
            log,
            args,
            env,
            key_file,
        };
        provider.wait_ready().await;
        provider
    }

    /// Waits for `GET /health/ready` to answer 200 (the socket is bound by then).
    async fn wait_ready(&mut self) {
        let url = format!("http://{}/health/ready", self.health);
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!("vault-csi exited during start ({status}):\n{}", self.logs());
            }
            if let Ok(r) = http.get(&url).send().await
                && r.status() == 200
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "vault-csi not ready in 20 s:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A gRPC client connected like the driver: over the unix socket.
    pub async fn client(&self) -> CsiDriverProviderClient<Channel> {
        connect(&self.socket).await
    }

    /// One Mount call on a new connection.
    pub async fn mount(&self, request: MountRequest) -> Result<MountResponse, tonic::Status> {
        self.client()
            .await
            .mount(request)
            .await
            .map(|r| r.into_inner())
    }

    /// The value of one series from `GET /metrics` (`name` or
    /// `name{labels}` exactly as the exposition writes it).
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let text = reqwest::get(format!("http://{}/metrics", self.health))
            .await
            .expect("scrape /metrics")
            .text()
            .await
            .expect("metrics body");
        text.lines().find_map(|line| {
            let rest = line.strip_prefix(series)?;
            rest.strip_prefix(' ')?.trim().parse().ok()
        })
    }

    /// Everything the process has logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The folder shared by restarts.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends SIGTERM.
    pub fn send_sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit (at most `timeout`).
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().expect("running");
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "vault-csi did not exit in {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Connects to a provider socket like the driver does.
pub async fn connect(socket: &Path) -> CsiDriverProviderClient<Channel> {
    CsiDriverProviderClient::connect(format!("unix://{}", socket.display()))
        .await
        .expect("connect to the provider socket")
}

/// Mounts `request`, which must fail with `code` and a message containing
/// every fragment, and never a JWT; returns the message.
pub async fn expect_error(
    provider: &Provider,
    request: super::MountBuilder,
    code: tonic::Code,
    fragments: &[&str],
) -> String {
    let error = provider
        .mount(request.build())
        .await
        .expect_err("the mount must fail");
    assert_status(&error, code, fragments)
}

/// Checks that `error` has `code` and a message containing every fragment,
/// and never a JWT; returns the message.
pub fn assert_status(error: &tonic::Status, code: tonic::Code, fragments: &[&str]) -> String {
    let message = error.message().to_string();
    assert_eq!(error.code(), code, "{message}");
    for fragment in fragments {
        assert!(
            message.contains(fragment),
            "missing {fragment:?} in: {message}"
        );
    }
    assert!(!message.contains("eyJ"), "a JWT in message: {message}");
    message
}
