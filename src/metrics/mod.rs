//! Prometheus metrics, served as OpenMetrics text at `GET /metrics` on the
//! health address.
//!
//! Callers record through typed methods on [`Metrics`]; label values come
//! from closed enums ([`labels`]), so nothing a SecretProviderClass or pod
//! controls (paths, names, secret values) can become a label or blow up the
//! number of series.

mod labels;

use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use tonic::Code;

pub use labels::{CacheKind, GrpcCode, VaultOperation, VaultStatus};
use labels::{CacheLabels, MountLabels, OperationLabels, RequestLabels};

/// The `Content-Type` of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Prefix of every metric name.
const PREFIX: &str = "vault_csi";

/// Mount latency buckets, seconds: from a cache hit (well under 1 ms) to
/// kubelet's 120 s limit, so both the fast path and timeouts are visible.
const MOUNT_BUCKETS: [f64; 17] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 120.0,
];

/// Vault request latency buckets, seconds, up to the default 60 s request
/// timeout.
const REQUEST_BUCKETS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// A histogram family whose members are built by a plain function.
type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The provider's metrics.  Cheap to clone: every clone records into the same
/// registry, so one handle can be given to the server and the Vault client.
#[derive(Clone)]
pub struct Metrics {
    /// The shared registry and metric handles.
    inner: Arc<Inner>,
}

/// The registry and a handle to each metric in it.
struct Inner {
    /// Owns every family below, for encoding.
    registry: Registry,
    /// `vault_csi_mount_duration_seconds{code}`.
    mount_duration: HistogramFamily<MountLabels>,
    /// `vault_csi_mounts_total{code}`.
    mounts: Family<MountLabels, Counter>,
    /// `vault_csi_vault_requests_total{operation, status}`.
    vault_requests: Family<RequestLabels, Counter>,
    /// `vault_csi_vault_request_duration_seconds{operation}`.
    vault_request_duration: HistogramFamily<OperationLabels>,
    /// `vault_csi_vault_logins_total`.
    vault_logins: Counter,
    /// `vault_csi_cache_hits_total{cache}`.
    cache_hits: Family<CacheLabels, Counter>,
    /// `vault_csi_cache_misses_total{cache}`.
    cache_misses: Family<CacheLabels, Counter>,
    /// `vault_csi_cache_coalesced_total{cache}`.
    cache_coalesced: Family<CacheLabels, Counter>,
    /// `vault_csi_leases_held`.
    leases_held: Gauge,
    /// `vault_csi_leases_renewed_total`.
    leases_renewed: Counter,
    /// `vault_csi_leases_reissued_total`.
    leases_reissued: Counter,
    /// `vault_csi_stale_responses_total`.
    stale_responses: Counter,
    /// `vault_csi_rotation_failures_total`.
    rotation_failures: Counter,
    /// `vault_csi_mounts_in_flight`.
    mounts_in_flight: Gauge,
    /// `vault_csi_vault_requests_in_flight`.
    vault_requests_in_flight: Gauge,
    /// `vault_csi_vault_requests_waiting`.
    vault_requests_waiting: Gauge,
    /// `vault_csi_runtime_tasks`, read from the runtime at each scrape.
    runtime_tasks: Gauge,
}

/// A mount-duration histogram.
fn mount_histogram() -> Histogram {
    Histogram::new(MOUNT_BUCKETS)
}

/// A Vault-request-duration histogram.
fn request_histogram() -> Histogram {
    Histogram::new(REQUEST_BUCKETS)
}

impl Metrics {
    /// A fresh registry with every family registered and zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
        let mount_duration: HistogramFamily<MountLabels> =
            Family::new_with_constructor(mount_histogram as fn() -> Histogram);
        let mounts = Family::<MountLabels, Counter>::default();
        let vault_requests = Family::<RequestLabels, Counter>::default();
        let vault_request_duration: HistogramFamily<OperationLabels> =
            Family::new_with_constructor(request_histogram as fn() -> Histogram);
        let vault_logins = Counter::default();
        let cache_hits = Family::<CacheLabels, Counter>::default();
        let cache_misses = Family::<CacheLabels, Counter>::default();
        let cache_coalesced = Family::<CacheLabels, Counter>::default();
        let leases_held = Gauge::default();
        let leases_renewed = Counter::default();
        let leases_reissued = Counter::default();
        let stale_responses = Counter::default();
        let rotation_failures = Counter::default();
        let mounts_in_flight = Gauge::default();
        let vault_requests_in_flight = Gauge::default();
        let vault_requests_waiting = Gauge::default();
        let runtime_tasks = Gauge::default();
        // The cache set is closed and small: creating its series up front
        // lets `rate()` and hit ratios work before the first event.
        for cache in CacheKind::ALL {
            let labels = CacheLabels { cache };
            let _ = cache_hits.get_or_create(&labels);
            let _ = cache_misses.get_or_create(&labels);
            let _ = cache_coalesced.get_or_create(&labels);
        }

        // Help texts: the registry adds the final full stop, and the
        // counter `_total` suffix and the `_seconds` unit suffix itself.
        registry.register_with_unit(
            "mount_duration",
            "Time to answer a Mount call, by gRPC code",
            Unit::Seconds,
            mount_duration.clone(),
        );
        registry.register(
            "mounts",
            "Mount calls answered, by gRPC code (OK, InvalidArgument, NotFound, ...)",
            mounts.clone(),
        );
        registry.register(
            "vault_requests",
            "HTTP requests sent to Vault, by operation (login, read, write, renew, lookup) \
             and HTTP status (\"error\" when no answer came)",
            vault_requests.clone(),
        );
        registry.register_with_unit(
            "vault_request_duration",
            "Time of one HTTP exchange with Vault, by operation",
            Unit::Seconds,
            vault_request_duration.clone(),
        );
        registry.register(
            "vault_logins",
            "Successful Vault logins",
            vault_logins.clone(),
        );
        registry.register(
            "cache_hits",
            "Lookups answered from a cache (token, response, lease)",
            cache_hits.clone(),
        );
        registry.register(
            "cache_misses",
            "Lookups a cache (token, response, lease) could not answer",
            cache_misses.clone(),
        );
        registry.register(
            "cache_coalesced",
            "Callers that waited on an identical in-flight Vault call instead of sending their own",
            cache_coalesced.clone(),
        );
        registry.register(
            "leases_held",
            "Vault leases (dynamic credentials) currently cached",
            leases_held.clone(),
        );
        registry.register(
            "leases_renewed",
            "Successful renewals of cached leases",
            leases_renewed.clone(),
        );
        registry.register(
            "leases_reissued",
            "Fresh credentials issued to replace a cached lease near its end",
            leases_reissued.clone(),
        );
        registry.register(
            "stale_responses",
            "Mounts answered with cached content because Vault was unavailable",
            stale_responses.clone(),
        );
        registry.register(
            "rotation_failures",
            "Remounts (rotation) that failed; the driver hides these from users",
            rotation_failures.clone(),
        );
        registry.register(
            "mounts_in_flight",
            "Mount calls being answered now",
            mounts_in_flight.clone(),
        );
        registry.register(
            "vault_requests_in_flight",
            "HTTP requests to Vault in flight now, all addresses together",
            vault_requests_in_flight.clone(),
        );
        registry.register(
            "vault_requests_waiting",
            "HTTP requests to Vault waiting for a slot under --vault-max-concurrent-requests",
            vault_requests_waiting.clone(),
        );
        registry.register(
            "runtime_tasks",
            "Tokio tasks alive in the provider (a count that keeps growing is a leak)",
            runtime_tasks.clone(),
        );
        Self {
            inner: Arc::new(Inner {
                registry,
                mount_duration,
                mounts,
                vault_requests,
                vault_request_duration,
                vault_logins,
                cache_hits,
                cache_misses,
                cache_coalesced,
                leases_held,
                leases_renewed,
                leases_reissued,
                stale_responses,
                rotation_failures,
                mounts_in_flight,
                vault_requests_in_flight,
                vault_requests_waiting,
                runtime_tasks,
            }),
        }
    }

    /// Every metric in OpenMetrics text, ending with `# EOF`.
    pub fn encode(&self) -> String {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let tasks = runtime.metrics().num_alive_tasks();
            self.inner
                .runtime_tasks
                .set(i64::try_from(tasks).unwrap_or(i64::MAX));
        }
        let mut text = String::new();
        // Writing to a String cannot fail and no label value's encoder
        // returns an error, so this is only a guard against a library change.
        if let Err(e) = encode(&mut text, &self.inner.registry) {
            tracing::error!(error = %e, "could not encode the metrics");
        }
        text
    }

    /// Starts timing one Mount.  Dropping the timer without
    /// [`MountTimer::finish`] records `Canceled`: tonic drops the call when
    /// the driver goes away, and that mount must still be counted.
    pub fn mount_timer(&self) -> MountTimer {
        self.inner.mounts_in_flight.inc();
        MountTimer {
            metrics: self.clone(),
            started: Instant::now(),
            finished: false,
        }
    }

    /// Records a finished Mount.
    pub fn mount(&self, code: Code, duration: Duration) {
        let labels = MountLabels {
            code: GrpcCode(code),
        };
        self.inner.mounts.get_or_create(&labels).inc();
        self.inner
            .mount_duration
            .get_or_create(&labels)
            .observe(duration.as_secs_f64());
    }

    /// Records one HTTP exchange with Vault.
    pub fn vault_request(
        &self,
        operation: VaultOperation,
        status: VaultStatus,
        duration: Duration,
    ) {
        self.inner
            .vault_requests
            .get_or_create(&RequestLabels { operation, status })
            .inc();
        self.inner
            .vault_request_duration
            .get_or_create(&OperationLabels { operation })
            .observe(duration.as_secs_f64());
    }

    /// Counts one HTTP exchange with Vault as in flight until the returned
    /// guard is dropped (also when the caller is cancelled).
    pub fn vault_request_in_flight(&self) -> InFlight {
        self.inner.vault_requests_in_flight.inc();
        InFlight {
            gauge: self.inner.vault_requests_in_flight.clone(),
        }
    }

    /// Adds `delta` (+1 or -1) to the requests waiting for a slot.
    pub fn vault_request_waiting(&self, delta: i64) {
        self.inner.vault_requests_waiting.inc_by(delta);
    }

    /// Records a successful login.
    pub fn vault_login(&self) {
        self.inner.vault_logins.inc();
    }

    /// Records a lookup answered from `cache`.
    pub fn cache_hit(&self, cache: CacheKind) {
        self.inner
            .cache_hits
            .get_or_create(&CacheLabels { cache })
            .inc();
    }

    /// Records a lookup `cache` could not answer.
    pub fn cache_miss(&self, cache: CacheKind) {
        self.inner
            .cache_misses
            .get_or_create(&CacheLabels { cache })
            .inc();
    }

    /// Records a caller that joined an in-flight call for `cache` instead of
    /// making its own.
    pub fn cache_coalesced(&self, cache: CacheKind) {
        self.inner
            .cache_coalesced
            .get_or_create(&CacheLabels { cache })
            .inc();
    }

    /// Sets the number of leases currently cached (for owners that count).
    pub fn set_leases_held(&self, count: usize) {
        self.inner
            .leases_held
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// One more lease is cached.
    pub fn lease_added(&self) {
        self.inner.leases_held.inc();
    }

    /// One cached lease was dropped.
    pub fn lease_removed(&self) {
        self.inner.leases_held.dec();
    }

    /// A cached lease was renewed.
    pub fn lease_renewed(&self) {
        self.inner.leases_renewed.inc();
    }

    /// A fresh credential replaced a cached lease.
    pub fn lease_reissued(&self) {
        self.inner.leases_reissued.inc();
    }

    /// A mount was answered with stale content because Vault was unavailable.
    pub fn stale_response(&self) {
        self.inner.stale_responses.inc();
    }

    /// A remount (rotation) failed.
    pub fn rotation_failure(&self) {
        self.inner.rotation_failures.inc();
    }
}

impl Default for Metrics {
    /// A fresh, unshared registry (tests and tools that never serve it).
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Metrics {
    // The values are not configuration: keep settings dumps short.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics { .. }")
    }
}

impl PartialEq for Metrics {
    /// Handles are equal when they record into the same registry.
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for Metrics {}

/// Times one Mount; see [`Metrics::mount_timer`].
#[must_use = "a dropped timer records the mount as Canceled"]
pub struct MountTimer {
    /// Where to record.
    metrics: Metrics,
    /// When the Mount started.
    started: Instant,
    /// Whether the outcome was recorded (so drop does not record again).
    finished: bool,
}

impl MountTimer {
    /// When the Mount started, for logs that report the same duration.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Records the Mount's outcome and duration.
    pub fn finish(mut self, code: Code) {
        self.record(code);
    }

    /// Records once.
    fn record(&mut self, code: Code) {
        if !self.finished {
            self.finished = true;
            self.metrics.inner.mounts_in_flight.dec();
            self.metrics.mount(code, self.started.elapsed());
        }
    }
}

impl Drop for MountTimer {
    fn drop(&mut self) {
        self.record(Code::Cancelled);
    }
}

/// One HTTP exchange counted in `vault_csi_vault_requests_in_flight`; see
/// [`Metrics::vault_request_in_flight`].
#[must_use = "the exchange stops counting when the guard is dropped"]
pub struct InFlight {
    /// The gauge to decrement on drop.
    gauge: Gauge,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

#[cfg(test)]
mod tests;
