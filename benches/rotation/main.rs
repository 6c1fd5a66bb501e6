//! The rotation benchmark (issue 4, item 8): what a node's worth of pods
//! under rotation costs Vault, and what the provider costs the node.
//!
//! Real OpenBao (its file audit device is the authoritative count of Vault
//! requests), a real PostgreSQL behind the database engine, PKI and KV v2,
//! Kubernetes auth through the TokenReview fake, and the provider as a real
//! release process.  A simulated node of N Deployment pods plus M pods of
//! distinct service accounts, each with a K = 5 object SecretProviderClass,
//! mounts all at once and then remounts for R rotation polls, with every
//! interval compressed by one factor ([`timing::FACTOR`]).
//!
//! Run with `scripts/bench.sh` (or `cargo bench --bench rotation`); with
//! `--soak` (`scripts/soak.sh`), the soak of [`soak`] runs instead.  Under
//! `cargo test --all-targets` cargo runs this binary without `--bench`, and
//! then it exits at once: the benchmark is never part of the test suite.

mod audit;
mod direct;
mod infra;
mod load;
mod provider;
mod report;
mod soak;
mod timing;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use vault_csi::demo::sa_token::PodTokenClaims;

use audit::{AuditCounts, AuditTail};
use direct::DirectVault;
use infra::World;
use load::Samples;
use provider::{ProcStats, ProviderProcess, first_child, machine_cpu, metric};
use timing::Compressed;

/// The whole benchmark stops after this, whatever state it is in.
const TIME_LIMIT: Duration = Duration::from_secs(9 * 60);
/// The soak stops after its duration plus this (setup and the last window).
const SOAK_MARGIN: Duration = Duration::from_secs(3 * 60);
/// Concurrencies at which Mount latency is reported.
const CONCURRENCIES: [usize; 3] = [1, 32, 256];
/// Concurrency of the served-from-cache throughput phase.
const CACHE_CONCURRENCY: usize = 64;
/// Unrecorded start of each closed-loop phase.
const WARMUP: Duration = Duration::from_millis(500);
/// Recorded length of each closed-loop phase.
const PHASE: Duration = Duration::from_secs(3);
/// Mount / direct-read pairs of the overhead phase.
const OVERHEAD_ROUNDS: usize = 1000;
/// `Version` calls that measure the gRPC round trip alone.
const TRANSPORT_ROUNDS: usize = 300;
/// Longest the benchmark waits for other load on the machine to stop
/// (`BENCH_QUIET_WAIT` seconds overrides; 0 skips the wait).
const QUIET_WAIT: Duration = Duration::from_secs(180);
/// Share of one core other processes may use for the machine to count as quiet.
const QUIET_LOAD: f64 = 0.15;
/// Settling time before the idle RSS is read.
const IDLE_SETTLE: Duration = Duration::from_secs(1);

/// What to run, from the environment (defaults: the targets).
#[derive(Debug, Clone)]
pub struct Config {
    /// N: replicas of the Deployment (one service account).
    pub deployment: usize,
    /// N of the second rotation run, which shows requests do not grow with N.
    pub large_deployment: usize,
    /// M: pods with a service account each.
    pub singles: usize,
    /// R: rotation polls after the first mount.
    pub cycles: u32,
    /// The provider binary.
    pub bin: PathBuf,
    /// Where the Markdown report is also written.
    pub report: PathBuf,
    /// Longest wait for the machine to go quiet before starting.
    pub quiet_wait: Duration,
}

impl Config {
    /// `BENCH_N`, `BENCH_N_LARGE`, `BENCH_M`, `BENCH_R`, `VAULT_CSI_BIN`,
    /// `BENCH_REPORT`, `BENCH_QUIET_WAIT`.
    fn from_env() -> Result<Self, String> {
        fn number<T: std::str::FromStr>(name: &str, default: T) -> Result<T, String> {
            match std::env::var(name) {
                Ok(v) => v
                    .parse()
                    .map_err(|_| format!("{name}={v:?} is not a number")),
                Err(_) => Ok(default),
            }
        }
        // Under `cargo bench` this is target/release/vault-csi: the bench
        // profile inherits the release profile.
        let bin = std::env::var_os("VAULT_CSI_BIN").map_or_else(
            || PathBuf::from(env!("CARGO_BIN_EXE_vault-csi")),
            PathBuf::from,
        );
        Ok(Self {
            deployment: number("BENCH_N", 100)?,
            large_deployment: number("BENCH_N_LARGE", 200)?,
            singles: number("BENCH_M", 20)?,
            cycles: number("BENCH_R", 30)?,
            bin,
            quiet_wait: Duration::from_secs(number("BENCH_QUIET_WAIT", QUIET_WAIT.as_secs())?),
            report: std::env::var_os("BENCH_REPORT").map_or_else(
                || PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("rotation-report.md"),
                PathBuf::from,
            ),
        })
    }
}

fn main() -> ExitCode {
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!(
            "rotation benchmark: skipped (it runs only under `cargo bench --bench rotation`; \
             see scripts/bench.sh)"
        );
        return ExitCode::SUCCESS;
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("rotation benchmark: {e}");
            return ExitCode::FAILURE;
        }
    };
    // One thread: the load generator should take as little of the node's
    // two cores as it can, and a thread is enough to keep 256 calls in flight.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rotation benchmark: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let soak = if std::env::args().any(|a| a == "--soak") {
        match soak_duration() {
            Ok(duration) => Some(duration),
            Err(e) => {
                eprintln!("rotation benchmark: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    let outcome = runtime.block_on(async {
        // The soak stops by itself after its duration; the limit is a backstop.
        let limit = soak.map_or(TIME_LIMIT, |d| d + SOAK_MARGIN);
        let work = async {
            match soak {
                Some(duration) => soak::run(&config, duration).await,
                None => run(&config).await,
            }
        };
        tokio::time::timeout(limit, work)
            .await
            .unwrap_or_else(|_| Err(format!("did not finish within {limit:?}")))
    });
    match outcome {
        Ok(markdown) => {
            if let Err(e) = std::fs::write(&config.report, &markdown) {
                eprintln!("rotation benchmark: write {}: {e}", config.report.display());
            }
            println!("{markdown}");
            eprintln!("(report also written to {})", config.report.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rotation benchmark failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Prints progress to stderr, so stdout holds only the report.
macro_rules! progress {
    ($($arg:tt)*) => { eprintln!("[bench {:>6.1}s] {}", $crate::elapsed(), format!($($arg)*)) };
}
pub(crate) use progress;

/// How long the soak runs: `BENCH_SOAK_MINUTES` (decimals allowed), 10 by default.
fn soak_duration() -> Result<Duration, String> {
    let minutes = match std::env::var("BENCH_SOAK_MINUTES") {
        Ok(v) => v
            .parse::<f64>()
            .ok()
            .filter(|m| m.is_finite() && *m > 0.0 && *m <= 24.0 * 60.0)
            .ok_or_else(|| format!("BENCH_SOAK_MINUTES={v:?} is not a number of minutes"))?,
        Err(_) => 10.0,
    };
    Ok(Duration::from_secs_f64(minutes * 60.0))
}

/// Seconds since the benchmark started, for progress lines.
fn elapsed() -> f64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}

/// Every phase, in order; returns the Markdown report.
async fn run(config: &Config) -> Result<String, String> {
    elapsed();
    let times = Compressed::new();
    progress!("provider binary: {}", config.bin.display());
    wait_for_quiet(config.quiet_wait).await?;
    let world = World::start(config.singles, &times)
        .await
        .map_err(|e| e.to_string())?;
    progress!(
        "OpenBao at {}, PostgreSQL, PKI and Kubernetes auth ready",
        world.bao.addr()
    );

    let (main_run, latency) = node_run(config, &world, &times, config.deployment, true).await?;
    let large_run = node_run(config, &world, &times, config.large_deployment, false)
        .await?
        .0;
    let overhead = overhead(config, &world).await?;
    let cache = cache_throughput(config, &world, &times).await?;

    Ok(report::render(&report::Results {
        config,
        times: &times,
        main_run: &main_run,
        large_run: &large_run,
        latency: &latency,
        overhead: &overhead,
        cache: &cache,
        versions: format!(
            "OpenBao {}, PostgreSQL {}",
            world.bao_version, world.pg_version
        ),
    }))
}

/// Waits (at most `limit`) until other processes leave the machine nearly
/// idle for two seconds: on two cores, a compiler running next to the
/// benchmark would halve every rate.  Starts anyway after `limit`; the
/// report then shows the load and warns.
async fn wait_for_quiet(limit: Duration) -> Result<(), String> {
    const WINDOW: Duration = Duration::from_secs(2);
    let deadline = Instant::now() + limit;
    while !limit.is_zero() {
        let (busy, own) = (machine_cpu()?.0, ProcStats::own()?);
        tokio::time::sleep(WINDOW).await;
        let others = (machine_cpu()?.0.saturating_sub(busy))
            .saturating_sub(ProcStats::own()?.saturating_sub(own));
        let load = others.as_secs_f64() / WINDOW.as_secs_f64();
        if load < QUIET_LOAD {
            break;
        }
        if Instant::now() >= deadline {
            progress!(
                "the machine is still busy ({:.0} % of a core); starting anyway",
                load * 100.0
            );
            break;
        }
        progress!(
            "waiting for the machine to go quiet: other processes use {:.0} % of a core",
            load * 100.0
        );
    }
    Ok(())
}

/// A rotation run: the node's pods mounted at once, then R polls.
pub struct NodeRun {
    /// N of this run.
    pub deployment: usize,
    /// Pods on the node (N + M).
    pub pods: usize,
    /// Distinct service accounts (1 + M).
    pub identities: usize,
    /// The provider's RSS once started, before any mount.
    pub idle_rss_kib: u64,
    /// The first mount of every pod, all at once.
    pub initial: Samples,
    /// The rotation polls.
    pub rotation: Samples,
    /// Everything OpenBao received during the run.
    pub counts: AuditCounts,
    /// Length of the run (first mounts and polls).
    pub wall: Duration,
    /// CPU used during the run by the provider, the load generator, OpenBao.
    pub cpu: Cpu,
    /// The provider's peak RSS at the end of the run and, for the main run,
    /// of the latency phases after it.
    pub peak_rss_kib: u64,
    /// The provider's own counters at the end of the run.
    pub metrics: MetricsSnapshot,
    /// Warnings and errors the provider logged.
    pub warnings: Vec<String>,
}

/// CPU time used by each process during a phase.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu {
    /// The provider.
    pub provider: Duration,
    /// This program (load generator and TokenReview fake).
    pub generator: Duration,
    /// OpenBao.
    pub bao: Duration,
    /// Every other process on the machine (PostgreSQL, and anything else
    /// running: other load skews the numbers, so it is shown).
    pub others: Duration,
    /// Time the hypervisor gave the machine's vCPUs to someone else.
    pub steal: Duration,
}

/// Reads the three processes' CPU counters, to subtract later.
struct CpuMeter {
    /// The provider's pid.
    provider: u32,
    /// OpenBao's pid, if found.
    bao: Option<u32>,
    /// The counters at the start.
    start: Cpu,
}

impl CpuMeter {
    /// Starts measuring.
    fn start(provider: &ProviderProcess, world: &World) -> Result<Self, String> {
        // The dev server runs under a `sh` watchdog: OpenBao is its child.
        let bao = world.bao.pid().and_then(first_child);
        let mut meter = Self {
            provider: provider.pid(),
            bao,
            start: Cpu::default(),
        };
        meter.start = meter.now()?;
        Ok(meter)
    }

    /// The counters now; `others` holds the whole machine's busy time
    /// until [`CpuMeter::used`] subtracts ours.
    fn now(&self) -> Result<Cpu, String> {
        let (busy, steal) = machine_cpu()?;
        Ok(Cpu {
            provider: ProcStats::of(self.provider)?.cpu,
            generator: ProcStats::own()?,
            bao: self
                .bao
                .and_then(|pid| ProcStats::of(pid).ok())
                .map_or(Duration::ZERO, |s| s.cpu),
            others: busy,
            steal,
        })
    }

    /// CPU used since [`CpuMeter::start`].
    fn used(&self) -> Result<Cpu, String> {
        let now = self.now()?;
        let since = |now: Duration, then: Duration| now.saturating_sub(then);
        let (provider, generator, bao) = (
            since(now.provider, self.start.provider),
            since(now.generator, self.start.generator),
            since(now.bao, self.start.bao),
        );
        Ok(Cpu {
            provider,
            generator,
            bao,
            others: since(now.others, self.start.others).saturating_sub(provider + generator + bao),
            steal: since(now.steal, self.start.steal),
        })
    }
}

/// The provider's counters that explain the audit log's numbers.
#[derive(Debug, Clone, Copy, Default)]
pub struct MetricsSnapshot {
    /// `vault_csi_vault_requests_total`.
    pub vault_requests: f64,
    /// `vault_csi_vault_logins_total`.
    pub logins: f64,
    /// Response cache hits, misses and coalesced callers.
    pub response_hits: f64,
    /// See `response_hits`.
    pub response_misses: f64,
    /// See `response_hits`.
    pub response_coalesced: f64,
    /// Token cache hits and misses.
    pub token_hits: f64,
    /// See `token_hits`.
    pub token_misses: f64,
    /// Lease cache hits and misses.
    pub lease_hits: f64,
    /// See `lease_hits`.
    pub lease_misses: f64,
    /// `vault_csi_leases_renewed_total`.
    pub leases_renewed: f64,
    /// `vault_csi_leases_reissued_total`.
    pub leases_reissued: f64,
}

impl MetricsSnapshot {
    /// Scrapes the provider's `/metrics`.
    async fn scrape(provider: &ProviderProcess) -> Result<Self, String> {
        let text = provider.metrics().await?;
        let cache = |name: &str, kind: &str| {
            metric(
                &text,
                &format!("vault_csi_cache_{name}_total"),
                &format!("cache=\"{kind}\""),
            )
        };
        Ok(Self {
            vault_requests: metric(&text, "vault_csi_vault_requests_total", ""),
            logins: metric(&text, "vault_csi_vault_logins_total", ""),
            response_hits: cache("hits", "response"),
            response_misses: cache("misses", "response"),
            response_coalesced: cache("coalesced", "response"),
            token_hits: cache("hits", "token"),
            token_misses: cache("misses", "token"),
            lease_hits: cache("hits", "lease"),
            lease_misses: cache("misses", "lease"),
            leases_renewed: metric(&text, "vault_csi_leases_renewed_total", ""),
            leases_reissued: metric(&text, "vault_csi_leases_reissued_total", ""),
        })
    }
}

/// A closed loop at one concurrency.
pub struct LatencyRun {
    /// Callers in flight.
    pub concurrency: usize,
    /// The recorded mounts.
    pub samples: Samples,
    /// Requests OpenBao received during the phase.
    pub vault_requests: u64,
    /// CPU during the phase.
    pub cpu: Cpu,
}

/// One rotation run with N = `deployment`, on a fresh provider with the
/// compressed default cache TTL; with `latency`, followed by the
/// closed-loop latency phases on the same provider.
async fn node_run(
    config: &Config,
    world: &World,
    times: &Compressed,
    deployment: usize,
    latency: bool,
) -> Result<(NodeRun, Vec<LatencyRun>), String> {
    let args = [format!("--cache-ttl={}", timing::flag(times.cache_ttl))];
    let provider = ProviderProcess::start(&config.bin, &args).await?;
    tokio::time::sleep(IDLE_SETTLE).await;
    let idle_rss_kib = provider.stats()?.rss_kib;
    let pods = Arc::new(load::node(
        deployment,
        config.singles,
        world.bao.addr(),
        &world.signer,
        times.cert_ttl,
    ));
    let client = provider.connect().await?;
    progress!(
        "rotation run N={deployment} M={} R={}: {} pods mount at once, then poll every {:?}",
        config.singles,
        config.cycles,
        pods.len(),
        times.poll
    );
    let mut audit = AuditTail::from_now(world.bao.audit_log_path());
    let meter = CpuMeter::start(&provider, world)?;
    let started = Instant::now();
    let initial = load::all_at_once(&client, &pods).await;
    let rotation = load::rotation(&client, &pods, config.cycles, times.poll).await;
    let wall = started.elapsed();
    let cpu = meter.used()?;
    let counts = audit.count_new();
    let metrics = MetricsSnapshot::scrape(&provider).await?;
    progress!(
        "  {} mounts ({} failed), {} Vault requests, {} logins, {} database credentials",
        initial.latencies.len() + rotation.latencies.len(),
        initial.errors + rotation.errors,
        counts.total(),
        counts.logins,
        counts.leases
    );

    let mut phases = Vec::new();
    if latency {
        for concurrency in CONCURRENCIES {
            let meter = CpuMeter::start(&provider, world)?;
            let samples = load::closed_loop(&client, &pods, concurrency, WARMUP, PHASE).await;
            let cpu = meter.used()?;
            let vault_requests = audit.count_new().total();
            progress!(
                "  concurrency {concurrency}: {} mounts, p50 {:?}, p99 {:?}",
                samples.latencies.len(),
                samples.quantile(0.5),
                samples.quantile(0.99)
            );
            phases.push(LatencyRun {
                concurrency,
                samples,
                vault_requests,
                cpu,
            });
        }
    }
    let run = NodeRun {
        deployment,
        pods: pods.len(),
        identities: 1 + config.singles,
        idle_rss_kib,
        initial,
        rotation,
        counts,
        wall,
        cpu,
        peak_rss_kib: provider.stats()?.hwm_kib,
        metrics,
        warnings: provider.warnings(),
    };
    Ok((run, phases))
}

/// The provider's overhead per Mount at concurrency 1.
pub struct Overhead {
    /// Mount latencies (`--cache-ttl=0`, warm token).
    pub mount: Vec<Duration>,
    /// Latencies of the same reads sent straight to OpenBao.
    pub direct: Vec<Duration>,
    /// Latencies of `Version` calls on the same connection after the same
    /// idle gap: the gRPC round trip alone.
    pub transport: Vec<Duration>,
    /// Latencies of Mounts answered wholly from cache (a provider with
    /// default settings) after the same idle gap: the provider's fixed cost.
    pub cached: Vec<Duration>,
    /// The provider's CPU time per Mount.
    pub provider_cpu_per_mount: Duration,
    /// OpenBao's CPU time per Vault request (both the provider's and the
    /// direct ones).
    pub bao_cpu_per_read: Duration,
    /// CPU during the alternating loop.
    pub cpu: Cpu,
    /// Length of the alternating loop.
    pub wall: Duration,
    /// Vault requests per Mount, from the audit log (3 expected: the KV
    /// reads; the credential and certificate come from the lease cache).
    pub requests_per_mount: f64,
    /// Mean Mount time as the provider measured it (`vault_csi_mount_duration_seconds`),
    /// which leaves out the gRPC transport.
    pub server_mean: Duration,
    /// Mean time of one Vault read as the provider measured it
    /// (`vault_csi_vault_request_duration_seconds`).
    pub provider_read_mean: Duration,
    /// Failed mounts or reads.
    pub errors: u64,
}

/// Alternates a Mount with `--cache-ttl=0` and the same KV reads issued
/// directly, so drift in OpenBao's speed hits both alike.
async fn overhead(config: &Config, world: &World) -> Result<Overhead, String> {
    progress!("overhead: {OVERHEAD_ROUNDS} Mounts with --cache-ttl=0 vs the same reads direct");
    let provider = ProviderProcess::start(&config.bin, &["--cache-ttl=0".to_owned()]).await?;
    let pods = load::node(
        1,
        0,
        world.bao.addr(),
        &world.signer,
        Duration::from_secs(3600),
    );
    let pod = &pods[0];
    let mut client = provider.connect().await?;
    // Warm: login, credential and certificate cached, connections open.
    for _ in 0..20 {
        load::mount(&mut client, pod).await?;
    }
    let jwt = world.signer.sign(&PodTokenClaims::new(
        infra::NAMESPACE,
        audit::SHARED_SERVICE_ACCOUNT,
        "vault",
    ));
    let vault = DirectVault::login(world.bao.addr(), infra::ROLE, &jwt).await?;
    for _ in 0..20 {
        vault.read_all(&infra::KV_PATHS).await?;
    }
    let before = provider.metrics().await?;
    let mut audit = AuditTail::from_now(world.bao.audit_log_path());
    let meter = CpuMeter::start(&provider, world)?;
    let started = Instant::now();
    let (mut mount, mut direct, mut errors) = (Vec::new(), Vec::new(), 0);
    for _ in 0..OVERHEAD_ROUNDS {
        match load::mount(&mut client, pod).await {
            Ok(latency) => mount.push(latency),
            Err(_) => errors += 1,
        }
        match vault.read_all(&infra::KV_PATHS).await {
            Ok(latency) => direct.push(latency),
            Err(_) => errors += 1,
        }
    }
    let cpu = meter.used()?;
    let wall = started.elapsed();
    let counts = audit.count_new();
    let after = provider.metrics().await?;
    // The transport floor: a call that does no work, after the same idle
    // gap (the direct reads) as each Mount above.
    let mut transport = Vec::with_capacity(TRANSPORT_ROUNDS);
    for _ in 0..TRANSPORT_ROUNDS {
        transport.push(load::version(&mut client).await?);
        vault.read_all(&infra::KV_PATHS).await?;
    }
    drop(provider);
    let cached = cached_after_idle(config, pod, &vault).await?;
    // Means from histogram sums and counts, over this loop only.
    let mean = |name: &str, label: &str| {
        let delta = |suffix: &str| {
            let name = format!("{name}_{suffix}");
            metric(&after, &name, label) - metric(&before, &name, label)
        };
        Duration::from_secs_f64(delta("sum").max(0.0) / delta("count").max(1.0))
    };
    let server_mean = mean("vault_csi_mount_duration_seconds", "code=\"OK\"");
    let provider_read_mean = mean(
        "vault_csi_vault_request_duration_seconds",
        "operation=\"read\"",
    );
    let direct_requests = (direct.len() * infra::KV_PATHS.len()) as f64;
    let requests_per_mount = (counts.total() as f64 - direct_requests) / mount.len().max(1) as f64;
    let per = |d: Duration, n: usize| d / u32::try_from(n.max(1)).unwrap_or(u32::MAX);
    Ok(Overhead {
        provider_cpu_per_mount: per(cpu.provider, mount.len()),
        bao_cpu_per_read: per(cpu.bao, counts.total() as usize),
        cpu,
        wall,
        mount,
        direct,
        transport,
        cached,
        requests_per_mount,
        server_mean,
        provider_read_mean,
        errors,
    })
}

/// The same pod's Mount on a provider with default settings, where
/// everything comes from cache, each after the same idle gap (the direct
/// reads) as in the overhead loop: what a Mount costs without Vault.
async fn cached_after_idle(
    config: &Config,
    pod: &load::Pod,
    vault: &DirectVault,
) -> Result<Vec<Duration>, String> {
    let provider = ProviderProcess::start(&config.bin, &[]).await?;
    let mut client = provider.connect().await?;
    for _ in 0..20 {
        load::mount(&mut client, pod).await?;
    }
    let mut cached = Vec::with_capacity(TRANSPORT_ROUNDS);
    for _ in 0..TRANSPORT_ROUNDS {
        cached.push(load::mount(&mut client, pod).await?);
        vault.read_all(&infra::KV_PATHS).await?;
    }
    Ok(cached)
}

/// Mounts served from cache on a provider with default settings.
pub struct CacheRun {
    /// The recorded mounts.
    pub samples: Samples,
    /// Requests OpenBao received during the phase.
    pub vault_requests: u64,
    /// CPU during the phase.
    pub cpu: Cpu,
    /// The provider's RSS once started, before any mount.
    pub idle_rss_kib: u64,
    /// Its peak RSS at the end.
    pub peak_rss_kib: u64,
}

/// The node's pods remounted back to back by 64 callers on a provider with
/// every setting at its default (`--cache-ttl=30s`), after one warm-up mount
/// each: what rotation costs the node when everything is cached.
async fn cache_throughput(
    config: &Config,
    world: &World,
    times: &Compressed,
) -> Result<CacheRun, String> {
    progress!("cache throughput: default settings, concurrency {CACHE_CONCURRENCY}");
    let provider = ProviderProcess::start(&config.bin, &[]).await?;
    tokio::time::sleep(IDLE_SETTLE).await;
    let idle_rss_kib = provider.stats()?.rss_kib;
    let pods = Arc::new(load::node(
        config.deployment,
        config.singles,
        world.bao.addr(),
        &world.signer,
        times.cert_ttl,
    ));
    let client = provider.connect().await?;
    let warm = load::all_at_once(&client, &pods).await;
    if let Some(e) = warm.first_error {
        return Err(format!("warm-up mount failed: {e}"));
    }
    let mut audit = AuditTail::from_now(world.bao.audit_log_path());
    let meter = CpuMeter::start(&provider, world)?;
    let samples = load::closed_loop(&client, &pods, CACHE_CONCURRENCY, WARMUP, PHASE).await;
    let cpu = meter.used()?;
    let vault_requests = audit.count_new().total();
    progress!(
        "  {} mounts, {:.0}/s, {} Vault requests",
        samples.latencies.len(),
        samples.rate(),
        vault_requests
    );
    Ok(CacheRun {
        samples,
        vault_requests,
        cpu,
        idle_rss_kib,
        peak_rss_kib: provider.stats()?.hwm_kib,
    })
}
