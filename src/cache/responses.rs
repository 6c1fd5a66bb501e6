//! Read responses shared within one identity: concurrent identical reads
//! coalesce into one Vault call, and a response without a lease is reused
//! for a short TTL.
//!
//! Only reads (GET/LIST) come here: a write may issue a credential, and
//! sharing those is the lease cache's job.  Entries are keyed by the
//! identity (the token cache's key) and the request, so nothing cached for
//! one identity is ever returned to another.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use lru::LruCache;
use tokio::time::Instant;

use super::TokenKey;
use crate::spc::RequestKey;
use crate::vault::{TransportKind, VaultError, VaultResponse};

/// Which identity asked for what.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResponseKey {
    /// The identity: connection, auth and who (see [`TokenKey`]).
    pub identity: Arc<TokenKey>,
    /// The request.
    pub request: RequestKey,
}

/// The outcome of a shared fetch.
pub type FetchResult = Result<Arc<VaultResponse>, VaultError>;

/// A fetch in flight that later callers join.
type InFlight = Shared<BoxFuture<'static, FetchResult>>;

/// A stored response.
struct Entry {
    /// The response (its secret data is wiped when the last user drops it).
    response: Arc<VaultResponse>,
    /// When Vault answered.
    fetched: Instant,
    /// Approximate size in bytes, for the byte bound.
    size: usize,
}

/// Stored responses, bounded by count and bytes.
struct Store {
    entries: LruCache<ResponseKey, Entry>,
    bytes: usize,
}

/// How a read was answered, for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// From the cache, without asking Vault.
    Cached,
    /// By joining a fetch another mount had started.
    Coalesced,
    /// By a fetch of its own.
    Fetched,
}

/// The response cache.
pub struct ResponseCache {
    /// Stored responses; `None` when caching is disabled (`--cache-size=0`).
    /// Shared with fetch tasks, which store their result before anyone
    /// sees it, so no caller can fall between "in flight" and "stored".
    store: Option<Arc<Mutex<Store>>>,
    /// Most bytes stored.
    max_bytes: usize,
    /// Fetches in flight, by key.
    in_flight: Mutex<HashMap<ResponseKey, InFlight>>,
}

impl ResponseCache {
    /// A cache of at most `entries` responses and `max_bytes` bytes.
    pub fn new(entries: usize, max_bytes: usize) -> Self {
        Self {
            store: NonZeroUsize::new(entries).map(|n| {
                Arc::new(Mutex::new(Store {
                    entries: LruCache::new(n),
                    bytes: 0,
                }))
            }),
            max_bytes,
            in_flight: Mutex::new(HashMap::new()),
        }
    }

    /// A stored response for `key` fetched less than `ttl` ago.
    pub fn fresh(&self, key: &ResponseKey, ttl: Duration) -> Option<Arc<VaultResponse>> {
        if ttl.is_zero() {
            return None;
        }
        self.fetched_within(key, ttl)
    }

    /// A stored response fetched less than `max_age` ago, whatever the TTL:
    /// what stale-if-error may serve while Vault is unreachable.
    pub fn stale(&self, key: &ResponseKey, max_age: Duration) -> Option<Arc<VaultResponse>> {
        self.fetched_within(key, max_age)
    }

    /// A stored response fetched less than `age` ago.
    fn fetched_within(&self, key: &ResponseKey, age: Duration) -> Option<Arc<VaultResponse>> {
        let mut store = self
            .store
            .as_ref()?
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match store.entries.get(key) {
            Some(entry) if entry.fetched.elapsed() < age => Some(entry.response.clone()),
            _ => None,
        }
    }

    /// Drops entries older than `max_age` (the longest TTL or stale-if-error
    /// window): nothing may use them any more, so they leave memory.
    pub fn expire(&self, max_age: Duration) {
        let Some(store) = &self.store else { return };
        let mut store = store.lock().unwrap_or_else(|e| e.into_inner());
        let old: Vec<ResponseKey> = store
            .entries
            .iter()
            .filter(|(_, e)| e.fetched.elapsed() >= max_age)
            .map(|(k, _)| k.clone())
            .collect();
        for key in old {
            if let Some(entry) = store.entries.pop(&key) {
                store.bytes -= entry.size;
            }
        }
    }

    /// Answers `key` from the cache when fresh (within `ttl`), else joins an
    /// identical fetch in flight, else starts `fetch` as a task of its own:
    /// a caller whose deadline passes stops waiting, but the fetch goes on
    /// for the others.  A successful response without a lease is stored
    /// when `keep` (for reuse within the TTL, or for stale-if-error).
    pub async fn get(
        &self,
        key: &ResponseKey,
        ttl: Duration,
        keep: bool,
        fetch: impl FnOnce() -> BoxFuture<'static, Result<VaultResponse, VaultError>>,
    ) -> (FetchResult, Source) {
        if let Some(hit) = self.fresh(key, ttl) {
            return (Ok(hit), Source::Cached);
        }
        let (shared, source) = {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            match in_flight.get(key) {
                Some(shared) => (shared.clone(), Source::Coalesced),
                None => {
                    let task = tokio::spawn(fetch());
                    let (store, max_bytes) = (self.store.clone(), self.max_bytes);
                    let stored_key = key.clone();
                    let shared = async move {
                        let result = match task.await {
                            Ok(result) => result.map(Arc::new),
                            Err(e) => Err(VaultError::Transport {
                                kind: TransportKind::Broken,
                                detail: format!("the shared fetch stopped: {e}"),
                            }),
                        };
                        if let (Ok(response), Some(store), true) = (&result, &store, keep)
                            && response.lease_id.is_empty()
                        {
                            insert(store, max_bytes, stored_key, response.clone());
                        }
                        result
                    }
                    .boxed()
                    .shared();
                    in_flight.insert(key.clone(), shared.clone());
                    (shared, Source::Fetched)
                }
            }
        };
        let result = shared.clone().await;
        {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            if in_flight.get(key).is_some_and(|s| s.ptr_eq(&shared)) {
                in_flight.remove(key);
            }
        }
        (result, source)
    }

    /// Number of stored responses and their approximate bytes.
    pub fn usage(&self) -> (usize, usize) {
        self.store.as_ref().map_or((0, 0), |s| {
            let s = s.lock().unwrap_or_else(|e| e.into_inner());
            (s.entries.len(), s.bytes)
        })
    }
}

/// Stores a response, evicting least recently used entries to stay within
/// the byte bound.
fn insert(store: &Mutex<Store>, max_bytes: usize, key: ResponseKey, response: Arc<VaultResponse>) {
    // The body's size is a fair estimate of what the parsed tree holds; a
    // response not from the wire (tests) is measured by serialising it.
    let body = match response.wire_bytes {
        0 => serde_json::to_vec(&*response).map_or(0, |v| v.len()),
        n => n,
    };
    let size = body + 256;
    if size > max_bytes {
        return;
    }
    let mut store = store.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(old) = store.entries.pop(&key) {
        store.bytes -= old.size;
    }
    while store.bytes + size > max_bytes {
        match store.entries.pop_lru() {
            Some((_, old)) => store.bytes -= old.size,
            None => break,
        }
    }
    if let Some((_, evicted)) = store.entries.push(
        key,
        Entry {
            response,
            fetched: Instant::now(),
            size,
        },
    ) {
        store.bytes -= evicted.size;
    }
    store.bytes += size;
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn key(identity: &str, path: &str) -> ResponseKey {
        crate::cache::test_key(identity, path)
    }

    fn response(value: &str, lease: &str) -> VaultResponse {
        serde_json::from_value(serde_json::json!({"lease_id": lease, "data": {"v": value}}))
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn reuses_within_ttl_per_identity_only() {
        let cache = ResponseCache::new(10, 1 << 20);
        let calls = Arc::new(AtomicUsize::new(0));
        let fetch = |calls: Arc<AtomicUsize>, v: &'static str| {
            move || {
                calls.fetch_add(1, Ordering::SeqCst);
                async move { Ok(response(v, "")) }.boxed()
            }
        };
        let ttl = Duration::from_secs(30);
        let (first, source) = cache
            .get(&key("a", "p"), ttl, true, fetch(calls.clone(), "1"))
            .await;
        assert_eq!(source, Source::Fetched);
        let (again, source) = cache
            .get(&key("a", "p"), ttl, true, fetch(calls.clone(), "2"))
            .await;
        assert_eq!(source, Source::Cached);
        assert!(Arc::ptr_eq(&first.unwrap(), &again.unwrap()));
        // Another identity never sees it.
        let (_, source) = cache
            .get(&key("b", "p"), ttl, true, fetch(calls.clone(), "3"))
            .await;
        assert_eq!(source, Source::Fetched);
        // After the TTL, Vault is asked again.
        tokio::time::advance(Duration::from_secs(31)).await;
        let (_, source) = cache
            .get(&key("a", "p"), ttl, true, fetch(calls.clone(), "4"))
            .await;
        assert_eq!(source, Source::Fetched);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn leased_responses_and_zero_ttl_are_not_stored() {
        let cache = ResponseCache::new(10, 1 << 20);
        let ttl = Duration::from_secs(30);
        let _ = cache
            .get(&key("a", "leased"), ttl, true, || {
                async { Ok(response("x", "db/creds/1")) }.boxed()
            })
            .await;
        let _ = cache
            .get(&key("a", "nottl"), Duration::ZERO, false, || {
                async { Ok(response("x", "")) }.boxed()
            })
            .await;
        assert_eq!(cache.usage().0, 0);
    }

    #[tokio::test]
    async fn concurrent_identical_reads_share_one_fetch_that_outlives_its_first_caller() {
        let cache = Arc::new(ResponseCache::new(10, 1 << 20));
        let calls = Arc::new(AtomicUsize::new(0));
        let (release, released) = tokio::sync::watch::channel(false);
        let start = |cache: Arc<ResponseCache>| {
            let (calls, released) = (calls.clone(), released.clone());
            async move {
                cache
                    .get(&key("a", "p"), Duration::from_secs(30), true, move || {
                        calls.fetch_add(1, Ordering::SeqCst);
                        let mut released = released.clone();
                        async move {
                            let _ = released.wait_for(|r| *r).await;
                            Ok(response("v", ""))
                        }
                        .boxed()
                    })
                    .await
            }
        };
        // The first caller gives up (its deadline passes) while the fetch runs.
        let first = tokio::spawn(start(cache.clone()));
        tokio::task::yield_now().await;
        let second = tokio::spawn(start(cache.clone()));
        tokio::task::yield_now().await;
        first.abort();
        release.send(true).unwrap();
        let (result, source) = second.await.unwrap();
        assert_eq!(source, Source::Coalesced);
        assert!(result.is_ok());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn expired_entries_leave_memory() {
        let cache = ResponseCache::new(10, 1 << 20);
        for p in ["a", "b"] {
            let _ = cache
                .get(&key("x", p), Duration::from_secs(30), true, || {
                    async { Ok(response("v", "")) }.boxed()
                })
                .await;
        }
        tokio::time::advance(Duration::from_secs(40)).await;
        let _ = cache
            .get(&key("x", "c"), Duration::from_secs(30), true, || {
                async { Ok(response("v", "")) }.boxed()
            })
            .await;
        cache.expire(Duration::from_secs(35));
        assert_eq!(cache.usage().0, 1);
        assert!(
            cache
                .stale(&key("x", "a"), Duration::from_secs(3600))
                .is_none()
        );
    }

    #[tokio::test]
    async fn bounded_by_entries_and_bytes() {
        let cache = ResponseCache::new(2, 1 << 20);
        for p in ["a", "b", "c"] {
            let _ = cache
                .get(&key("x", p), Duration::from_secs(30), true, || {
                    async { Ok(response("v", "")) }.boxed()
                })
                .await;
        }
        assert_eq!(cache.usage().0, 2);
        let small = ResponseCache::new(100, 700);
        for p in ["a", "b", "c", "d"] {
            let _ = small
                .get(&key("x", p), Duration::from_secs(30), true, || {
                    async { Ok(response("v", "")) }.boxed()
                })
                .await;
        }
        assert!(small.usage().1 <= 700, "{:?}", small.usage());
        assert!(small.usage().0 < 4);
    }
}
