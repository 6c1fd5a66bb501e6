//! The soak (issue 6, item 3): the release provider under steady rotation
//! for many minutes, sampled every [`SAMPLE_EVERY`], to show that nothing
//! it holds grows with the number of mounts served: resident memory, open
//! file descriptors, threads, tokio tasks, and cached leases.
//!
//! Load: the benchmark's node (N Deployment pods of one service account and
//! M pods of their own), each pod remounting once per compressed poll, with
//! the compressed TTLs of the rotation runs, so logins, token renewals,
//! lease renewals and reissues, certificate reissues and cache expiry all
//! happen many times over.  Every window the whole set of pods is replaced
//! by new pods (new names and UIDs) of the same workloads, so per-pod state
//! that were never dropped would accumulate.
//!
//! Tokio tasks come from the provider's `vault_csi_runtime_tasks` gauge,
//! read between windows (when no mount is in flight).

use std::time::{Duration, Instant};

use crate::infra::World;
use crate::load::{self, Samples};
use crate::provider::{ProviderProcess, metric};
use crate::timing::{self, Compressed};
use crate::{Config, IDLE_SETTLE};

/// How often the provider is sampled; also the length of one pod generation.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// Growth of the median RSS (last third over first third) that fails the
/// verdict, as a fraction, on top of [`RSS_SLACK_KIB`].
const RSS_GROWTH: f64 = 0.10;
/// Absolute RSS slack, KiB: allocator and cache churn move RSS by this much
/// without any leak.
const RSS_SLACK_KIB: u64 = 2048;
/// Growth of the largest fd or thread count (last third over first third)
/// that fails the verdict: a leak of one per mount would be thousands.
const COUNT_SLACK: u64 = 4;

/// One reading of the provider.
#[derive(Debug, Clone, Copy)]
struct Reading {
    /// Since the soak started.
    at: Duration,
    /// `VmRSS`, KiB.
    rss_kib: u64,
    /// Entries in `/proc/<pid>/fd`.
    fds: u64,
    /// `Threads` in `/proc/<pid>/status`.
    threads: u64,
    /// `vault_csi_runtime_tasks`.
    tasks: u64,
    /// `vault_csi_leases_held`.
    leases: u64,
    /// Mounts answered OK so far (`vault_csi_mounts_total{code="OK"}`).
    mounts_ok: u64,
    /// Mounts that failed in this window, as the load generator saw them.
    failed: u64,
}

/// Runs the soak for `duration`; returns the Markdown report.
pub async fn run(config: &Config, duration: Duration) -> Result<String, String> {
    let times = Compressed::new();
    let world = World::start(config.singles, &times)
        .await
        .map_err(|e| e.to_string())?;
    let args = [format!("--cache-ttl={}", timing::flag(times.cache_ttl))];
    let provider = ProviderProcess::start(&config.bin, &args).await?;
    tokio::time::sleep(IDLE_SETTLE).await;
    let client = provider.connect().await?;
    let pods_per_generation = config.deployment + config.singles;
    crate::progress!(
        "soak: {} min, {} pods ({} identities) remounting every {:?}, replaced every {:?}",
        duration.as_secs_f64() / 60.0,
        pods_per_generation,
        1 + config.singles,
        times.poll,
        SAMPLE_EVERY
    );

    let started = Instant::now();
    let mut readings = vec![read(&provider, started, 0).await?];
    let mut total = Samples::default();
    let mut generation = 0;
    while started.elapsed() < duration {
        let window = SAMPLE_EVERY.min(duration.saturating_sub(started.elapsed()));
        let cycles = (window.as_secs_f64() / times.poll.as_secs_f64())
            .round()
            .max(1.0) as u32;
        let pods = std::sync::Arc::new(load::node_from(
            generation * pods_per_generation,
            config.deployment,
            config.singles,
            world.bao.addr(),
            &world.signer,
            times.cert_ttl,
        ));
        let samples = load::rotation(&client, &pods, cycles, times.poll).await;
        generation += 1;
        let reading = read(&provider, started, samples.errors).await?;
        crate::progress!(
            "  {:>5.0}s  rss {} KiB  fds {}  threads {}  tasks {}  leases {}  mounts {}  failed {}",
            reading.at.as_secs_f64(),
            reading.rss_kib,
            reading.fds,
            reading.threads,
            reading.tasks,
            reading.leases,
            reading.mounts_ok,
            reading.failed
        );
        readings.push(reading);
        if total.first_error.is_none() {
            total.first_error.clone_from(&samples.first_error);
        }
        total.errors += samples.errors;
        total.latencies.extend(samples.latencies);
    }
    total.wall = started.elapsed();
    Ok(render(config, duration, &readings, &total, &provider))
}

/// Samples the provider now.
async fn read(
    provider: &ProviderProcess,
    started: Instant,
    failed: u64,
) -> Result<Reading, String> {
    let pid = provider.pid();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    let field = |name: &str| -> Result<u64, String> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| format!("no {name} in /proc/{pid}/status"))
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map_err(|e| format!("/proc/{pid}/fd: {e}"))?
        .count() as u64;
    let metrics = provider.metrics().await?;
    Ok(Reading {
        at: started.elapsed(),
        rss_kib: field("VmRSS:")?,
        fds,
        threads: field("Threads:")?,
        // Counts, read as floats from the text (an empty sum is -0.0).
        tasks: metric(&metrics, "vault_csi_runtime_tasks", "").max(0.0) as u64,
        leases: metric(&metrics, "vault_csi_leases_held", "").max(0.0) as u64,
        mounts_ok: metric(&metrics, "vault_csi_mounts_total", "code=\"OK\"").max(0.0) as u64,
        failed,
    })
}

/// The verdict on one quantity: its first-third and last-third values and
/// whether the growth between them is past the threshold.
struct Trend {
    /// What was measured.
    name: &'static str,
    /// The first third's value.
    first: u64,
    /// The last third's value.
    last: u64,
    /// The growth that would fail, as text.
    threshold: String,
    /// Whether `last` exceeds the threshold.
    grew: bool,
}

/// Compares the first and the last third of the readings taken under load
/// (the reading before the first mount is left out: it is the idle process).
fn trends(readings: &[Reading]) -> Vec<Trend> {
    let loaded = &readings[1.min(readings.len())..];
    let third = (loaded.len() / 3).max(1);
    let (first, last) = (
        &loaded[..third.min(loaded.len())],
        &loaded[loaded.len().saturating_sub(third)..],
    );
    let median = |rs: &[Reading]| {
        let mut v: Vec<u64> = rs.iter().map(|r| r.rss_kib).collect();
        v.sort_unstable();
        v.get(v.len() / 2).copied().unwrap_or(0)
    };
    let max = |rs: &[Reading], f: fn(&Reading) -> u64| rs.iter().map(f).max().unwrap_or(0);
    let (rss_first, rss_last) = (median(first), median(last));
    let rss_limit = (rss_first as f64 * (1.0 + RSS_GROWTH)) as u64 + RSS_SLACK_KIB;
    let count = |name, f: fn(&Reading) -> u64| {
        let (a, b) = (max(first, f), max(last, f));
        Trend {
            name,
            first: a,
            last: b,
            threshold: format!("> {}", a + COUNT_SLACK),
            grew: b > a + COUNT_SLACK,
        }
    };
    vec![
        Trend {
            name: "RSS, median (KiB)",
            first: rss_first,
            last: rss_last,
            threshold: format!("> {rss_limit}"),
            grew: rss_last > rss_limit,
        },
        count("open fds, max", |r| r.fds),
        count("threads, max", |r| r.threads),
        count("tokio tasks, max", |r| r.tasks),
        count("leases held, max", |r| r.leases),
    ]
}

/// The Markdown report: every reading, then the verdict.
fn render(
    config: &Config,
    duration: Duration,
    readings: &[Reading],
    total: &Samples,
    provider: &ProviderProcess,
) -> String {
    let mut out = format!(
        "# Soak\n\n{:.1} minutes; {} pods ({} identities), each remounting once a second \
         (compressed poll), all replaced by new pods every {} s; {} mounts OK, {} failed{}.\n\n",
        duration.as_secs_f64() / 60.0,
        config.deployment + config.singles,
        1 + config.singles,
        SAMPLE_EVERY.as_secs(),
        total.latencies.len(),
        total.errors,
        total
            .first_error
            .as_deref()
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default()
    );
    out += "| t (s) | RSS (KiB) | fds | threads | tokio tasks | leases held | mounts OK (total) | failed |\n";
    out += "|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    for r in readings {
        out += &format!(
            "| {:.0} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.at.as_secs_f64(),
            r.rss_kib,
            r.fds,
            r.threads,
            r.tasks,
            r.leases,
            r.mounts_ok,
            r.failed
        );
    }
    let trends = trends(readings);
    out += "\n| quantity | first third | last third | fails if last | verdict |\n";
    out += "|---|---:|---:|---:|---|\n";
    for t in &trends {
        out += &format!(
            "| {} | {} | {} | {} | {} |\n",
            t.name,
            t.first,
            t.last,
            t.threshold,
            if t.grew { "GROWS" } else { "flat" }
        );
    }
    let grew: Vec<&str> = trends.iter().filter(|t| t.grew).map(|t| t.name).collect();
    out += &if grew.is_empty() {
        "\nVerdict: no growth.\n".to_string()
    } else {
        format!("\nVerdict: GROWTH in {}.\n", grew.join(", "))
    };
    let warnings = provider.warnings();
    if !warnings.is_empty() {
        out += &format!(
            "\nThe provider logged {} warnings or errors; the first: `{}`\n",
            warnings.len(),
            warnings[0]
        );
    }
    out
}
