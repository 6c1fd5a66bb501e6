//! Dynamic secrets kept per identity, so a rotation poll returns the same
//! database credential or certificate instead of issuing a new one.
//!
//! A response with a `lease_id` (database, RabbitMQ, AWS… credentials) is
//! kept while it is healthy.  A lease dies with the token that created it,
//! so it counts as expiring at min(lease expiry, token expiry).  Past two
//! thirds of its duration a renewable lease is renewed (on a mount that
//! uses it); when renewal is refused or the deadline nears, a fresh
//! credential is issued on a live token at least one observed poll interval
//! plus a margin before the old one expires.  A certificate-style answer
//! (`data.expiration`, no lease, e.g. `pki/issue`) is reused until two
//! thirds of its lifetime.  Nothing is ever revoked: pods may still use
//! what they were given, and leases of deleted pods expire on their own.

use std::collections::HashMap;
use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lru::LruCache;
use tokio::time::Instant;

use super::{ResponseKey, TokenHandle};
use crate::secret::SecretString;
use crate::vault::{VaultError, VaultResponse};

/// Smallest margin kept before a deadline, whatever the observed interval.
const MIN_MARGIN: Duration = Duration::from_secs(1);

/// What happened to a dynamic secret on this mount, for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseOutcome {
    /// The held credential was returned.
    Reused,
    /// The held lease was renewed, then returned.
    Renewed,
    /// A new credential was issued for the first time.
    Issued,
    /// A new credential replaced one near its end (or whose renewal failed).
    Reissued,
    /// The held lease was renewed, but too little life was granted to keep
    /// it (a max TTL near), so a new credential replaced it: both count.
    RenewedThenReissued,
    /// The answer is not reusable (no lease, no expiration): passed through.
    PassedThrough,
}

/// A credential held for an identity.
struct Held {
    /// The answer, returned unchanged while healthy.
    response: Arc<VaultResponse>,
    /// The token that created it (its lease dies with it).
    token: Arc<SecretString>,
    /// When that token expires, if it does.
    token_expires: Option<Instant>,
    /// When the lease (or certificate) expires.
    expires: Instant,
    /// When to renew a renewable lease (two thirds of its duration).
    renew_at: Option<Instant>,
    /// Until when a certificate-style answer is reused (two thirds of its
    /// lifetime); leases use `expires` and the margin instead.
    reuse_until: Option<Instant>,
    /// The lease's duration, the increment asked for on renewal.
    duration: Duration,
    /// When it was issued.
    issued: Instant,
    /// When Vault last confirmed it (issue or renewal): the "last good read"
    /// stale-if-error counts from.
    confirmed: Instant,
}

impl Held {
    /// Keeps `response` if it is a lease or a certificate; `None` otherwise.
    fn from_response(
        response: Arc<VaultResponse>,
        handle: &TokenHandle,
        now: Instant,
    ) -> Option<Held> {
        let duration = Duration::from_secs(u64::try_from(response.lease_duration).unwrap_or(0));
        if !response.lease_id.is_empty() && !duration.is_zero() {
            return Some(Held {
                token: handle.token.clone(),
                token_expires: handle.expires_at,
                expires: now + duration,
                renew_at: response.renewable.then(|| now + duration * 2 / 3),
                reuse_until: None,
                duration,
                issued: now,
                confirmed: now,
                response,
            });
        }
        // A certificate: data.expiration (and data.not_before) in Unix seconds.
        let data = response.data.as_ref()?;
        let expiration = data.0.get("expiration")?.as_u64()?;
        let unix_now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
        let not_before = data
            .0
            .get("not_before")
            .and_then(|v| v.as_u64())
            .unwrap_or(unix_now)
            .min(unix_now);
        let left = expiration.checked_sub(unix_now).filter(|s| *s > 0)?;
        let lifetime = expiration.saturating_sub(not_before);
        let reuse_for = (lifetime * 2 / 3).saturating_sub(unix_now - not_before);
        Some(Held {
            token: handle.token.clone(),
            token_expires: None,
            expires: now + Duration::from_secs(left),
            renew_at: None,
            reuse_until: Some(now + Duration::from_secs(reuse_for)),
            duration: Duration::from_secs(lifetime),
            issued: now,
            confirmed: now,
            response,
        })
    }

    /// The deadline the credential must be replaced before.
    fn deadline(&self) -> Instant {
        match self.token_expires {
            Some(token) if token < self.expires => token,
            _ => self.expires,
        }
    }
}

/// One identity's credential for one request, and how often it is mounted.
#[derive(Default)]
struct LeaseSlot {
    /// The credential; the async lock makes issuing single-flight.
    held: tokio::sync::Mutex<Option<Held>>,
    /// When it was mounted, by whom.
    seen: Mutex<Seen>,
}

/// Most pods whose last mount a slot remembers; past it, it starts over.
const MAX_PODS: usize = 4096;
/// A pod not seen for this many poll intervals is gone (replaced, a
/// finished Job): its entry is dropped, so churn does not pile them up.
const FORGET_AFTER_INTERVALS: u32 = 4;
/// How often a slot looks for pods to forget; also the least time a pod is
/// remembered.
const PRUNE_EVERY: Duration = Duration::from_secs(30);

/// When a slot was mounted.  The poll interval must be measured per pod:
/// replicas of one identity mount in turn, so the gap between any two
/// mounts is about the poll interval divided by the replicas, and a
/// credential replaced on that basis could end before a pod's next poll.
#[derive(Default)]
struct Seen {
    /// The last mount by any pod (for the idle timeout).
    last: Option<Instant>,
    /// Each pod's last mount.
    pods: HashMap<String, Instant>,
    /// The latest gap a pod left between two of its own mounts, for pods
    /// not seen before.
    interval: Option<Duration>,
    /// When pods not seen for long were last dropped.
    pruned: Option<Instant>,
}

impl Seen {
    /// Records a mount by `pod` at `now`; returns the gap since the last
    /// mount by anyone and the poll interval that applies to `pod`.
    fn record(&mut self, pod: &str, now: Instant) -> (Option<Duration>, Option<Duration>) {
        let since_any = self.last.map(|last| now - last);
        if let Some(own) = self.pods.get(pod).map(|last| now - *last) {
            self.interval = Some(own);
        }
        self.forget_gone_pods(now);
        if self.pods.len() >= MAX_PODS {
            self.pods.clear();
        }
        self.pods.insert(pod.to_string(), now);
        self.last = Some(now);
        (since_any, self.interval)
    }

    /// Drops pods not seen for [`FORGET_AFTER_INTERVALS`] poll intervals
    /// (at least [`PRUNE_EVERY`]), at most once per [`PRUNE_EVERY`].
    fn forget_gone_pods(&mut self, now: Instant) {
        let Some(interval) = self.interval else {
            return;
        };
        if self
            .pruned
            .is_some_and(|at| now.saturating_duration_since(at) < PRUNE_EVERY)
        {
            return;
        }
        self.pruned = Some(now);
        let keep = (interval * FORGET_AFTER_INTERVALS).max(PRUNE_EVERY);
        self.pods
            .retain(|_, last| now.saturating_duration_since(*last) <= keep);
        if self.pods.capacity() > 4 * self.pods.len().max(16) {
            self.pods.shrink_to_fit();
        }
    }
}

/// Dynamic secrets per (identity, request), bounded by `--cache-size`.
pub struct LeaseCache {
    /// `None` when caching is disabled.
    slots: Option<Mutex<LruCache<ResponseKey, Arc<LeaseSlot>>>>,
    /// Drop a credential not mounted for this long (`--lease-idle-timeout`);
    /// `None` means twice the observed poll interval.
    idle_timeout: Option<Duration>,
}

impl LeaseCache {
    /// A cache of at most `entries` credentials.
    pub fn new(entries: usize, idle_timeout: Option<Duration>) -> Self {
        Self {
            slots: NonZeroUsize::new(entries).map(|n| Mutex::new(LruCache::new(n))),
            idle_timeout,
        }
    }

    /// Whether a credential is held for `key` (reads check this before the
    /// response cache).
    pub fn holds(&self, key: &ResponseKey) -> bool {
        let Some(slots) = &self.slots else {
            return false;
        };
        slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .peek(key)
            .is_some()
    }

    /// The slot for `key`, created on first use.
    fn slot(&self, key: &ResponseKey) -> Option<Arc<LeaseSlot>> {
        let mut slots = self
            .slots
            .as_ref()?
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = slots.get(key) {
            return Some(slot.clone());
        }
        let slot = Arc::new(LeaseSlot::default());
        slots.put(key.clone(), slot.clone());
        Some(slot)
    }

    /// Returns the credential held for `key` while it is healthy (renewing
    /// it when due), else issues one with `issue` on `handle`'s token and
    /// keeps it if it is a lease or certificate.
    pub async fn get<I, IFut, R, RFut>(
        &self,
        key: &ResponseKey,
        pod: &str,
        handle: &TokenHandle,
        issue: I,
        renew: R,
    ) -> (Result<Arc<VaultResponse>, VaultError>, LeaseOutcome)
    where
        I: FnOnce() -> IFut,
        IFut: Future<Output = Result<Arc<VaultResponse>, VaultError>>,
        R: FnOnce(Arc<SecretString>, String, u64) -> RFut,
        RFut: Future<Output = Result<VaultResponse, VaultError>>,
    {
        let Some(slot) = self.slot(key) else {
            return (issue().await, LeaseOutcome::PassedThrough);
        };
        let now = Instant::now();
        let (interval, idle) = {
            let mut seen = slot.seen.lock().unwrap_or_else(|e| e.into_inner());
            let (since_any, interval) = seen.record(pod, now);
            let idle = match (self.idle_timeout, since_any, interval) {
                (Some(limit), Some(gap), _) => gap > limit,
                (None, Some(gap), Some(interval)) => gap > interval * 2 && gap > MIN_MARGIN * 10,
                _ => false,
            };
            (interval.unwrap_or(Duration::ZERO), idle)
        };
        let mut held = slot.held.lock().await;
        // Whether this call renewed the held lease, even if it then replaced it.
        let mut renewed_now = false;
        if idle {
            // Not mounted for long: the identity may be gone; start afresh.
            *held = None;
        }
        if let Some(current) = held.as_mut() {
            if Arc::ptr_eq(&current.token, &handle.token) {
                // The token cache may have renewed the token since.
                current.token_expires = handle.expires_at;
            }
            // Replace it at least one poll interval, plus a tenth of its
            // useful life, before it dies: the next poll may be too late.
            let margin = interval + ((current.deadline() - current.issued) / 10).max(MIN_MARGIN);
            let mut outcome = LeaseOutcome::Reused;
            // Renew at two thirds, or earlier if the margin would otherwise
            // replace it (short leases polled at long intervals).
            let due = current
                .renew_at
                .is_some_and(|at| now >= at || now + margin >= current.deadline());
            if due && now < current.deadline() {
                let lease_id = current.response.lease_id.clone();
                match renew(current.token.clone(), lease_id, current.duration.as_secs()).await {
                    Ok(renewed) if renewed.lease_duration > 0 => {
                        let granted =
                            Duration::from_secs(u64::try_from(renewed.lease_duration).unwrap_or(0));
                        current.expires = now + granted;
                        current.confirmed = now;
                        current.renew_at = renewed.renewable.then(|| now + granted * 2 / 3);
                        outcome = LeaseOutcome::Renewed;
                        renewed_now = true;
                    }
                    // Refused: keep using it until the deadline nears.
                    _ => current.renew_at = None,
                }
            }
            let fresh_enough = current.reuse_until.is_none_or(|until| now < until);
            if fresh_enough && now + margin < current.deadline() {
                return (Ok(current.response.clone()), outcome);
            }
        }
        let replacing = held.is_some();
        match issue().await {
            Ok(response) => {
                *held = Held::from_response(response.clone(), handle, Instant::now());
                let outcome = match (held.is_some(), replacing, renewed_now) {
                    (false, _, _) => LeaseOutcome::PassedThrough,
                    (true, false, _) => LeaseOutcome::Issued,
                    (true, true, false) => LeaseOutcome::Reissued,
                    (true, true, true) => LeaseOutcome::RenewedThenReissued,
                };
                (Ok(response), outcome)
            }
            Err(e) => (Err(e), LeaseOutcome::PassedThrough),
        }
    }

    /// The credential held for `key` if it is still alive (before its
    /// lease, certificate or token expiry) and Vault last confirmed it (issue
    /// or renewal) less than `window` ago: what stale-if-error may serve.
    pub fn alive(&self, key: &ResponseKey, window: Duration) -> Option<Arc<VaultResponse>> {
        let slots = self.slots.as_ref()?;
        let slot = slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .peek(key)
            .cloned()?;
        // A slot busy issuing is not waited for: the caller is already failing.
        let held = slot.held.try_lock().ok()?;
        let held = held.as_ref()?;
        let now = Instant::now();
        (now < held.deadline() && now - held.confirmed < window).then(|| held.response.clone())
    }

    /// Number of (identity, request) slots; an upper bound on credentials held.
    pub fn len(&self) -> usize {
        self.slots
            .as_ref()
            .map_or(0, |s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps a leased answer obtained elsewhere (a coalesced read), unless
    /// one is already held.
    pub async fn adopt(
        &self,
        key: &ResponseKey,
        pod: &str,
        response: Arc<VaultResponse>,
        handle: &TokenHandle,
    ) {
        let Some(slot) = self.slot(key) else { return };
        let mut held = slot.held.lock().await;
        if held.is_none() {
            *held = Held::from_response(response, handle, Instant::now());
            let _ = slot
                .seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .record(pod, Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ResponseKey {
        crate::cache::test_key("", "database/creds/app")
    }

    fn handle(token_ttl: Option<u64>) -> TokenHandle {
        TokenHandle {
            token: Arc::new(SecretString::new("t".into())),
            generation: 1,
            fresh: false,
            expires_at: token_ttl.map(|s| Instant::now() + Duration::from_secs(s)),
        }
    }

    fn lease(id: &str, ttl: i64, renewable: bool) -> Arc<VaultResponse> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "lease_id": id, "lease_duration": ttl, "renewable": renewable, "data": {"username": id}
            }))
            .unwrap(),
        )
    }

    async fn refuse(_: Arc<SecretString>, _: String, _: u64) -> Result<VaultResponse, VaultError> {
        Err(VaultError::Body {
            detail: "no".into(),
        })
    }

    /// Polls every `every` for `times`, refusing renewals; returns the outcomes.
    async fn poll(
        cache: &LeaseCache,
        token: &TokenHandle,
        every: u64,
        times: usize,
        issue: impl Fn() -> Arc<VaultResponse>,
    ) -> Vec<LeaseOutcome> {
        let mut outcomes = Vec::new();
        for _ in 0..times {
            tokio::time::advance(Duration::from_secs(every)).await;
            let response = issue();
            outcomes.push(
                cache
                    .get(&key(), "p", token, || async { Ok(response) }, refuse)
                    .await
                    .1,
            );
        }
        outcomes
    }

    #[tokio::test(start_paused = true)]
    async fn reuses_renews_and_reissues_before_the_deadline() {
        use LeaseOutcome::*;
        let cache = LeaseCache::new(10, None);
        let token = handle(None);
        let (first, outcome) = cache
            .get(
                &key(),
                "p",
                &token,
                || async { Ok(lease("l0", 30, true)) },
                refuse,
            )
            .await;
        assert_eq!(outcome, Issued);
        // Polled every 5 s: reused until two thirds (20 s), then renewed.
        assert_eq!(
            poll(&cache, &token, 5, 3, || lease("new", 30, true)).await,
            [Reused, Reused, Reused]
        );
        tokio::time::advance(Duration::from_secs(6)).await;
        let renew_ok = |_: Arc<SecretString>, id: String, _: u64| async move {
            Ok(serde_json::from_value::<VaultResponse>(
                serde_json::json!({"lease_id": id, "lease_duration": 30, "renewable": true}),
            )
            .unwrap())
        };
        let (renewed, outcome) = cache
            .get(
                &key(),
                "p",
                &token,
                || async { Ok(lease("new", 30, true)) },
                renew_ok,
            )
            .await;
        assert_eq!(outcome, Renewed);
        assert!(Arc::ptr_eq(
            first.as_ref().unwrap(),
            renewed.as_ref().unwrap()
        ));
        // Renewal is refused from its next due time (41 s, e.g. max TTL):
        // reused while one more poll plus a margin (5 s + a tenth of its
        // 51 s life) fits before the lease ends at 51 s, then reissued, and
        // the new one reused.
        let outcomes = poll(&cache, &token, 5, 5, || lease("l1", 30, true)).await;
        assert_eq!(outcomes, [Reused, Reused, Reused, Reissued, Reused]);
    }

    #[tokio::test(start_paused = true)]
    async fn pods_that_stopped_mounting_are_forgotten() {
        let mut seen = Seen::default();
        let start = Instant::now();
        // One pod polls every second; a thousand short-lived pods (a Job
        // every second) each mount once.
        for i in 0..1000u64 {
            let now = start + Duration::from_secs(i);
            seen.record("steady", now);
            seen.record(&format!("job-{i}"), now);
        }
        // Kept: the steady pod and the jobs of the last minute at most (30 s
        // kept at a prune, plus those since), not a thousand.
        assert!(seen.pods.len() <= 62, "{} pods remembered", seen.pods.len());
        assert!(seen.pods.contains_key("steady"));
        assert_eq!(seen.interval, Some(Duration::from_secs(1)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_renewal_that_grants_too_little_still_counts_as_a_renewal() {
        let cache = LeaseCache::new(10, None);
        let token = handle(None);
        let (_, outcome) = cache
            .get(
                &key(),
                "p",
                &token,
                || async { Ok(lease("l0", 30, true)) },
                refuse,
            )
            .await;
        assert_eq!(outcome, LeaseOutcome::Issued);
        // Past two thirds; the renewal succeeds but its max TTL leaves 1 s,
        // so the same call replaces it: the metric must see both.
        tokio::time::advance(Duration::from_secs(21)).await;
        let renew_short = |_: Arc<SecretString>, id: String, _: u64| async move {
            Ok(serde_json::from_value::<VaultResponse>(
                serde_json::json!({"lease_id": id, "lease_duration": 1, "renewable": true}),
            )
            .unwrap())
        };
        let (_, outcome) = cache
            .get(
                &key(),
                "p",
                &token,
                || async { Ok(lease("l1", 30, true)) },
                renew_short,
            )
            .await;
        assert_eq!(outcome, LeaseOutcome::RenewedThenReissued);
    }

    #[tokio::test(start_paused = true)]
    async fn every_replica_gets_a_credential_that_outlives_its_next_poll() {
        // Ten replicas poll every 60 s, 6 s apart: mounts of the identity come
        // every 6 s, but each pod's own interval is 60 s.
        let cache = LeaseCache::new(10, None);
        let token = handle(None);
        let mut ends: std::collections::HashMap<String, u64> = Default::default();
        let mut issued = 0u32;
        for step in 0..120u64 {
            let now = step * 6;
            let name = format!("l{issued}");
            let (response, outcome) = cache
                .get(
                    &key(),
                    &format!("pod-{}", step % 10),
                    &token,
                    || async { Ok(lease(&name, 300, false)) },
                    refuse,
                )
                .await;
            if matches!(outcome, LeaseOutcome::Issued | LeaseOutcome::Reissued) {
                ends.insert(name.clone(), now + 300);
                issued += 1;
            }
            let id = response.unwrap().lease_id.clone();
            assert!(
                ends[&id] > now + 60,
                "at {now} s, {id} ends at {} s, before this pod's next poll",
                ends[&id]
            );
            tokio::time::advance(Duration::from_secs(6)).await;
        }
        assert!(
            issued <= 5,
            "one credential per lease period, not per poll: {issued}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn stale_use_is_bounded_by_the_window_and_the_lease() {
        let cache = LeaseCache::new(10, None);
        let token = handle(None);
        let _ = cache
            .get(
                &key(),
                "p",
                &token,
                || async { Ok(lease("l0", 60, true)) },
                refuse,
            )
            .await;
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(cache.alive(&key(), Duration::from_secs(10)).is_some());
        // Past the stale window since Vault last confirmed it.
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(cache.alive(&key(), Duration::from_secs(10)).is_none());
        // Past the lease's end, whatever the window.
        tokio::time::advance(Duration::from_secs(50)).await;
        assert!(cache.alive(&key(), Duration::from_secs(3600)).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_dies_with_its_token() {
        use LeaseOutcome::*;
        let cache = LeaseCache::new(10, None);
        let short_token = handle(Some(60));
        let _ = cache
            .get(
                &key(),
                "p",
                &short_token,
                || async { Ok(lease("l0", 3600, true)) },
                refuse,
            )
            .await;
        // The one-hour lease would be kept, but its token ends at 60 s: it is
        // replaced (on a live token) a poll plus a margin before that.
        let outcomes = poll(&cache, &handle(Some(3600)), 5, 10, || {
            lease("l1", 3600, true)
        })
        .await;
        assert_eq!(outcomes[..9], [Reused; 9]);
        assert_eq!(outcomes[9], Reissued);
    }

    #[tokio::test(start_paused = true)]
    async fn certificates_are_reused_for_two_thirds_of_their_lifetime() {
        use LeaseOutcome::*;
        let cache = LeaseCache::new(10, None);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let cert = move |serial: u64| {
            Arc::new(
                serde_json::from_value::<VaultResponse>(serde_json::json!({
                    "data": {"certificate": "c", "serial_number": serial, "not_before": now, "expiration": now + 300}
                }))
                .unwrap(),
            )
        };
        let token = handle(None);
        let _ = cache
            .get(&key(), "p", &token, || async move { Ok(cert(1)) }, refuse)
            .await;
        // Polled every 10 s: the same certificate until two thirds of 300 s.
        let outcomes = poll(&cache, &token, 10, 20, move || cert(2)).await;
        assert!(outcomes[..19].iter().all(|o| *o == Reused), "{outcomes:?}");
        assert_eq!(outcomes[19], Reissued);
        // Answers with neither a lease nor an expiration are never kept.
        let plain = || async {
            Ok(Arc::new(
                serde_json::from_value::<VaultResponse>(serde_json::json!({"data": {"x": 1}}))
                    .unwrap(),
            ))
        };
        let fresh = LeaseCache::new(10, None);
        assert_eq!(
            fresh.get(&key(), "p", &token, plain, refuse).await.1,
            PassedThrough
        );
        assert_eq!(
            fresh.get(&key(), "p", &token, plain, refuse).await.1,
            PassedThrough
        );
    }
}
