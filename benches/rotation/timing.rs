//! The one time-compression factor of the rotation runs: every interval and
//! TTL of a real node is divided by it, so 30 rotation polls take 30 s
//! instead of 30 minutes while their ratios (and so the request counts)
//! stay those of a real node.

use std::time::Duration;

/// Real time / benchmark time.  60 turns the driver's one-minute poll into
/// one second, and keeps the shortest TTL (the database lease's 5 minutes)
/// at 5 s, above the 3 s floor below which scheduling noise on a loaded
/// 2-core machine would decide renewals.
pub const FACTOR: u32 = 60;

/// A real-world interval and its compressed value.
#[derive(Debug, Clone, Copy)]
pub struct Scaled {
    /// What it is on a real node.
    pub real: Duration,
    /// What the benchmark uses.
    pub compressed: Duration,
}

impl Scaled {
    /// `real` divided by [`FACTOR`].
    fn of(real: Duration) -> Self {
        Self {
            real,
            compressed: real / FACTOR,
        }
    }
}

/// The compressed intervals and TTLs of a rotation run.
#[derive(Debug, Clone)]
pub struct Compressed {
    /// The driver's rotation poll (60 s → 1 s).
    pub poll: Duration,
    /// The provider's default `--cache-ttl` (30 s → 0.5 s).
    pub cache_ttl: Duration,
    /// The database role's `default_ttl` (5 min → 5 s).
    pub lease_ttl: Duration,
    /// The database role's `max_ttl` (15 min → 15 s).
    pub lease_max_ttl: Duration,
    /// The certificates' `ttl` (30 min → 30 s).
    pub cert_ttl: Duration,
    /// The PKI role's `not_before_duration` (60 s → 1 s).
    pub cert_backdate: Duration,
    /// The Kubernetes auth role's `token_ttl` (20 min → 20 s, renewable).
    pub token_ttl: Duration,
    /// Each of the above with its real value, for the report.
    pub table: Vec<(&'static str, Scaled)>,
}

impl Compressed {
    /// The benchmark's intervals: real values divided by [`FACTOR`].
    pub fn new() -> Self {
        let minutes = |m: u64| Duration::from_secs(m * 60);
        let poll = Scaled::of(minutes(1));
        let cache_ttl = Scaled::of(Duration::from_secs(30));
        let lease_ttl = Scaled::of(minutes(5));
        let lease_max_ttl = Scaled::of(minutes(15));
        let cert_ttl = Scaled::of(minutes(30));
        let cert_backdate = Scaled::of(minutes(1));
        let token_ttl = Scaled::of(minutes(20));
        Self {
            poll: poll.compressed,
            cache_ttl: cache_ttl.compressed,
            lease_ttl: lease_ttl.compressed,
            lease_max_ttl: lease_max_ttl.compressed,
            cert_ttl: cert_ttl.compressed,
            cert_backdate: cert_backdate.compressed,
            token_ttl: token_ttl.compressed,
            table: vec![
                ("rotation poll interval", poll),
                ("`--cache-ttl` (provider default)", cache_ttl),
                ("database lease `default_ttl`", lease_ttl),
                ("database lease `max_ttl`", lease_max_ttl),
                ("certificate `ttl`", cert_ttl),
                ("PKI `not_before_duration`", cert_backdate),
                ("Vault token `token_ttl` (renewable)", token_ttl),
            ],
        }
    }
}

/// A duration as OpenBao and the provider's flags take it: whole seconds
/// when it has no fraction, else milliseconds.
pub fn flag(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// A duration for humans: `1 s`, `500 ms`, `15 min`.
pub fn human(d: Duration) -> String {
    let secs = d.as_secs();
    if d.subsec_millis() != 0 {
        format!("{} ms", d.as_millis())
    } else if secs >= 60 && secs.is_multiple_of(60) {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
}
