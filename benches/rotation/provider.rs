//! The provider as a real release process on a temporary socket, and what
//! the kernel says it costs: resident memory and CPU time from `/proc`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tonic::transport::Channel;
use vault_csi::proto::csi_driver_provider_client::CsiDriverProviderClient;

/// How long the provider may take to answer `/health/ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A running `vault-csi`; killed (and reaped) when dropped.
pub struct ProviderProcess {
    /// The process.
    child: Child,
    /// `host:port` of its health and metrics endpoint.
    health: String,
    /// Its unix socket.
    socket: PathBuf,
    /// Its stdout and stderr.
    log: PathBuf,
    // Kept last: socket, key and log live here.
    _dir: TempDir,
}

impl ProviderProcess {
    /// Starts `bin` with the socket, health address and key file set here,
    /// plus `args`, and waits until it is ready.  The environment is cleared
    /// (no `KUBECONFIG`, no `VAULT_*`): every setting comes from the flags
    /// and the SecretProviderClass, and no proxy can reroute loopback.
    pub async fn start(bin: &Path, args: &[String]) -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("vault-csi-bench-")
            .tempdir()
            .map_err(|e| format!("temp dir for the provider: {e}"))?;
        let key = dir.path().join("hmac.key");
        let mut bytes = [0u8; 32];
        aws_lc_rs::rand::fill(&mut bytes).map_err(|_| "random HMAC key".to_string())?;
        std::fs::write(&key, bytes).map_err(|e| format!("write {}: {e}", key.display()))?;
        let socket = dir.path().join("vault.sock");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("free port: {e}"))?
            .port();
        let health = format!("127.0.0.1:{port}");
        let log = dir.path().join("provider.log");
        let out = File::create(&log).map_err(|e| format!("create {}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| format!("log handle: {e}"))?;
        let child = Command::new(bin)
            .arg(format!("--endpoint={}", socket.display()))
            .arg(format!("--health-addr={health}"))
            .arg(format!("--hmac-key-file={}", key.display()))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", bin.display()))?;
        let mut provider = Self {
            child,
            health,
            socket,
            log,
            _dir: dir,
        };
        provider.wait_ready().await?;
        Ok(provider)
    }

    /// Polls `GET /health/ready` (the socket is bound once it answers 200).
    async fn wait_ready(&mut self) -> Result<(), String> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(|e| e.to_string())?;
        let url = format!("http://{}/health/ready", self.health);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "vault-csi exited during start ({status}):\n{}",
                    self.log_tail()
                ));
            }
            if let Ok(r) = http.get(&url).send().await
                && r.status() == 200
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "vault-csi not ready in {READY_TIMEOUT:?}:\n{}",
                    self.log_tail()
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// One gRPC connection over the unix socket, as the driver keeps one.
    pub async fn connect(&self) -> Result<CsiDriverProviderClient<Channel>, String> {
        CsiDriverProviderClient::connect(format!("unix://{}", self.socket.display()))
            .await
            .map_err(|e| format!("connect to {}: {e}", self.socket.display()))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Memory and CPU so far.
    pub fn stats(&self) -> Result<ProcStats, String> {
        ProcStats::of(self.child.id())
    }

    /// The OpenMetrics text of `/metrics`.
    pub async fn metrics(&self) -> Result<String, String> {
        let url = format!("http://{}/metrics", self.health);
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(|e| e.to_string())?;
        http.get(&url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| format!("GET {url}: {e}"))?
            .text()
            .await
            .map_err(|e| format!("GET {url}: {e}"))
    }

    /// The last lines of the provider's log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Log lines at `WARN` or `ERROR`, to show anything the run provoked.
    pub fn warnings(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for ProviderProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A process's memory and CPU from `/proc/<pid>/status` and `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy)]
pub struct ProcStats {
    /// Resident set size now (`VmRSS`), KiB.
    pub rss_kib: u64,
    /// Peak resident set size (`VmHWM`), KiB.
    pub hwm_kib: u64,
    /// User plus system CPU time of all threads.
    pub cpu: Duration,
}

impl ProcStats {
    /// Reads them for `pid`.
    pub fn of(pid: u32) -> Result<Self, String> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
        let kib = |name: &str| -> Result<u64, String> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
                .ok_or_else(|| format!("no {name} in /proc/{pid}/status"))
        };
        Ok(Self {
            rss_kib: kib("VmRSS:")?,
            hwm_kib: kib("VmHWM:")?,
            cpu: cpu_time(&format!("/proc/{pid}/stat"))?,
        })
    }

    /// This process (the load generator).
    pub fn own() -> Result<Duration, String> {
        cpu_time("/proc/self/stat")
    }
}

/// `utime + stime` from a `stat` file (the whole thread group's).
fn cpu_time(path: &str) -> Result<Duration, String> {
    let stat = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| format!("{path}: no ')'"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); `rest` starts at field 3.
    let ticks = |i: usize| -> Result<u64, String> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| format!("{path}: field {} missing", i + 3))
    };
    let total = ticks(11)? + ticks(12)?;
    Ok(Duration::from_secs_f64(total as f64 / clock_ticks() as f64))
}

/// The whole machine's busy CPU time (all CPUs, everything but idle and
/// I/O wait) and steal time, from the first line of `/proc/stat`.
pub fn machine_cpu() -> Result<(Duration, Duration), String> {
    let stat = std::fs::read_to_string("/proc/stat").map_err(|e| format!("/proc/stat: {e}"))?;
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("cpu "))
        .ok_or("/proc/stat: no cpu line")?
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let field = |i: usize| ticks.get(i).copied().unwrap_or(0);
    let busy = field(0) + field(1) + field(2) + field(5) + field(6);
    let seconds = |t: u64| Duration::from_secs_f64(t as f64 / clock_ticks() as f64);
    Ok((seconds(busy), seconds(field(7))))
}

/// `sysconf(_SC_CLK_TCK)` via `getconf` (no libc dependency); 100 on Linux
/// in practice, which is the fallback.
fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .filter(|t| *t > 0)
            .unwrap_or(100)
    })
}

/// The first child process of `pid` (OpenBao runs under a `sh` watchdog,
/// and its CPU is worth reporting).
pub fn first_child(pid: u32) -> Option<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A counter's value from OpenMetrics text, summed over the series whose
/// labels contain `label` (e.g. `cache="response"`; `""` for all).
pub fn metric(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#') && l.contains(label))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let bare = series.split('{').next()?;
            (bare == name).then(|| value.parse::<f64>().ok())?
        })
        .sum()
}
