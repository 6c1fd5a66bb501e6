//! Vault tokens per identity, with single-flight logins, renewal, and the
//! proof required before a token is shared by a service account's pods.

use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

// tokio's clock, so tests can move time with `start_paused`.
use tokio::time::Instant;

use lru::LruCache;

use crate::secret::SecretString;
use crate::spc::{AuthConfig, Connection, PodInfo};

/// The login metadata keys Kubernetes auth answers with.
const SA_NAME: &str = "service_account_name";
const SA_NAMESPACE: &str = "service_account_namespace";
use crate::vault::LoginResponse;

/// Everything that decides which token a mount may use: the Vault it talks
/// to, how it logs in, and who it logs in as.  Also the scope of cached
/// responses: nothing cached under one key is returned under another.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenKey {
    /// Address, namespace and TLS settings.
    pub connection: Connection,
    /// Auth method, mount, role and audience.
    pub auth: AuthConfig,
    /// Who: a service account, a pod, or a credential's holder.
    pub identity: Identity,
}

/// Who Vault sees.  Values come from kubelet's attributes and the mount's
/// own credential, never from SecretProviderClass parameters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    /// Every pod of one service account.  Used only for Kubernetes auth, and
    /// the token is kept only if the login proves a service-account-scoped
    /// identity (see [`TokenSlot`]).
    ServiceAccount {
        /// Namespace of the service account.
        namespace: String,
        /// Name of the service account.
        name: String,
    },
    /// One pod (JWT auth, self-minted tokens, `--cache-scope=pod`).
    Pod {
        /// The pod.
        pod: PodInfo,
        /// SHA-256 of an AppRole or Vault-token credential, if any.
        credential: Option<[u8; 32]>,
    },
    /// Whoever holds an AppRole or Vault-token credential (its SHA-256).
    Credential([u8; 32]),
}

/// A token handed to one request.
#[derive(Debug, Clone)]
pub struct TokenHandle {
    /// The Vault token.
    pub token: Arc<SecretString>,
    /// Which login produced it; a re-login after a 403 names the generation
    /// that was refused, so concurrent mounts share one re-login.
    pub generation: u64,
    /// Whether this caller's own call logged in (a 403 with a fresh token is
    /// final).
    pub fresh: bool,
    /// When Vault stops accepting the token (leases issued with it die
    /// then); `None` if it does not expire.
    pub expires_at: Option<Instant>,
}

/// A cached token and when to stop using it.
struct CachedToken {
    token: Arc<SecretString>,
    /// Past this (two thirds of the TTL), renew or log in again; `None` for
    /// tokens that do not expire.
    refresh_at: Option<Instant>,
    /// When Vault will stop accepting the token.
    expires_at: Option<Instant>,
    /// Whether `renew-self` may extend it.
    renewable: bool,
    /// The TTL the token was issued with, in seconds.
    issued_ttl: u64,
}

impl CachedToken {
    /// Caches a login (or renewal) answer received at `at`.
    fn new(
        token: Arc<SecretString>,
        at: Instant,
        ttl: u64,
        renewable: bool,
        issued_ttl: u64,
    ) -> Self {
        let lifetime = Duration::from_secs(ttl);
        let (refresh_at, expires_at) = if ttl == 0 {
            (None, None)
        } else {
            (Some(at + lifetime * 2 / 3), Some(at + lifetime))
        };
        CachedToken {
            token,
            refresh_at,
            expires_at,
            renewable,
            issued_ttl,
        }
    }
}

/// State behind one slot's lock.
#[derive(Default)]
struct SlotState {
    current: Option<CachedToken>,
    generation: u64,
}

/// The token of one [`TokenKey`].  Its async lock makes logins single-flight:
/// concurrent mounts of one identity wait for one login instead of each
/// making their own.
///
/// A service-account slot keeps a token only when the login answer proves
/// the token is the service account's and nothing narrower: Kubernetes auth's
/// `service_account_name` / `service_account_namespace` metadata equal the
/// service account, and the token has unlimited uses.  Otherwise the token
/// serves only the mount that logged in, and the slot refuses sharing from
/// then on, so the service account's pods each log in for themselves.
#[derive(Default)]
pub struct TokenSlot {
    state: tokio::sync::Mutex<SlotState>,
    /// `(namespace, name)` a login must prove before its token is shared.
    proof: Option<(String, String)>,
    /// Set when a login did not prove it.
    refused: std::sync::atomic::AtomicBool,
}

impl TokenSlot {
    /// An empty slot; a service-account slot requires proof before sharing.
    pub fn for_identity(identity: &Identity) -> Self {
        let proof = match identity {
            Identity::ServiceAccount { namespace, name } => Some((namespace.clone(), name.clone())),
            Identity::Pod { .. } | Identity::Credential(_) => None,
        };
        Self {
            proof,
            ..Self::default()
        }
    }

    /// Returns the cached token.  Past two thirds of its TTL a renewable
    /// token is renewed with `renew`; when that fails, when the token is not
    /// renewable, or when renewal no longer grants a useful TTL (its max TTL
    /// is near), `login` replaces it before it expires.
    pub async fn get_or_login<E, F, Fut, R, RFut>(
        &self,
        login: F,
        renew: R,
    ) -> Result<TokenHandle, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<LoginResponse, E>>,
        R: FnOnce(Arc<SecretString>) -> RFut,
        RFut: Future<Output = Result<LoginResponse, E>>,
    {
        let mut state = self.state.lock().await;
        let now = Instant::now();
        if let Some(current) = &state.current {
            if current.refresh_at.is_none_or(|at| now < at) {
                return Ok(TokenHandle {
                    token: current.token.clone(),
                    generation: state.generation,
                    fresh: false,
                    expires_at: current.expires_at,
                });
            }
            if current.renewable && current.expires_at.is_some_and(|at| now < at) {
                let (token, issued_ttl) = (current.token.clone(), current.issued_ttl);
                // A renewal capped by the max TTL grants ever less; below a third
                // of the original TTL a fresh login is the better token.
                if let Ok(renewed) = renew(token.clone()).await
                    && renewed.lease_duration.saturating_mul(3) >= issued_ttl
                {
                    let renewed = CachedToken::new(
                        token.clone(),
                        now,
                        renewed.lease_duration,
                        renewed.renewable,
                        issued_ttl,
                    );
                    let expires_at = renewed.expires_at;
                    state.current = Some(renewed);
                    return Ok(TokenHandle {
                        token,
                        generation: state.generation,
                        fresh: false,
                        expires_at,
                    });
                }
            }
        }
        self.login_locked(&mut state, login).await
    }

    /// Whether this service-account slot found that its logins are not
    /// service-account scoped; mounts then use per-pod slots.
    pub fn refuses_sharing(&self) -> bool {
        self.refused.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Replaces a token Vault refused (403).  If another mount already
    /// replaced generation `refused`, its token is returned without a login.
    pub async fn relogin<E, F, Fut>(&self, refused: u64, login: F) -> Result<TokenHandle, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<LoginResponse, E>>,
    {
        let mut state = self.state.lock().await;
        if state.generation != refused
            && let Some(current) = &state.current
        {
            // Someone else logged in after the refusal: their token is as
            // fresh as ours would be, so a 403 with it is final.
            return Ok(TokenHandle {
                token: current.token.clone(),
                generation: state.generation,
                fresh: true,
                expires_at: current.expires_at,
            });
        }
        state.current = None;
        self.login_locked(&mut state, login).await
    }

    /// Logs in while holding the slot's lock and stores the token, unless
    /// the slot needs a proof of service-account scope the answer lacks.
    async fn login_locked<E, F, Fut>(
        &self,
        state: &mut SlotState,
        login: F,
    ) -> Result<TokenHandle, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<LoginResponse, E>>,
    {
        let started = Instant::now();
        let response = login().await?;
        let proven = self.proof.as_ref().is_none_or(|(namespace, name)| {
            response.metadata.get(SA_NAMESPACE) == Some(namespace)
                && response.metadata.get(SA_NAME) == Some(name)
                && response.num_uses == 0
        });
        let token = Arc::new(response.token);
        state.generation += 1;
        let expires_at = (response.lease_duration > 0)
            .then(|| started + Duration::from_secs(response.lease_duration));
        if !proven {
            self.refused
                .store(true, std::sync::atomic::Ordering::SeqCst);
            tracing::info!(
                "the login did not prove a service-account-scoped token; this service account's pods \
                 get tokens of their own"
            );
            return Ok(TokenHandle {
                token,
                generation: state.generation,
                fresh: true,
                expires_at,
            });
        }
        let ttl = response.lease_duration;
        state.current = Some(CachedToken::new(
            token.clone(),
            started,
            ttl,
            response.renewable,
            ttl,
        ));
        Ok(TokenHandle {
            token,
            generation: state.generation,
            fresh: true,
            expires_at,
        })
    }
}

/// Token slots, bounded by `--cache-size` with least-recently-used eviction.
pub struct TokenCache {
    /// `None` when caching is disabled (`--cache-size=0`).
    slots: Option<Mutex<LruCache<TokenKey, Arc<TokenSlot>>>>,
}

impl TokenCache {
    /// A cache of at most `capacity` tokens; 0 disables caching.
    pub fn new(capacity: usize) -> Self {
        Self {
            slots: NonZeroUsize::new(capacity).map(|c| Mutex::new(LruCache::new(c))),
        }
    }

    /// The slot for `key`; a fresh, unshared slot when caching is disabled.
    pub fn slot(&self, key: &TokenKey) -> Arc<TokenSlot> {
        let Some(slots) = &self.slots else {
            return Arc::new(TokenSlot::for_identity(&key.identity));
        };
        let mut slots = slots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = slots.get(key) {
            return slot.clone();
        }
        let slot = Arc::new(TokenSlot::for_identity(&key.identity));
        slots.put(key.clone(), slot.clone());
        slot
    }

    /// Number of cached slots.
    pub fn len(&self) -> usize {
        self.slots
            .as_ref()
            .map_or(0, |s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn login_response(ttl: u64) -> LoginResponse {
        LoginResponse {
            token: SecretString::new("t".into()),
            lease_duration: ttl,
            renewable: true,
            metadata: HashMap::new(),
            num_uses: 0,
        }
    }

    async fn no_renewal(_: Arc<SecretString>) -> Result<LoginResponse, ()> {
        Err(())
    }

    #[tokio::test(start_paused = true)]
    async fn renews_past_two_thirds_and_logs_in_when_renewal_stops_paying() {
        let slot = TokenSlot::default();
        let first = slot
            .get_or_login(|| async { Ok::<_, ()>(login_response(30)) }, no_renewal)
            .await
            .unwrap();
        // Before two thirds of the TTL: the cached token, no renewal.
        tokio::time::advance(Duration::from_secs(19)).await;
        let cached = slot
            .get_or_login(
                || async { Err::<LoginResponse, ()>(()) },
                |_| async { Err(()) },
            )
            .await
            .unwrap();
        assert_eq!(cached.generation, first.generation);
        // Past two thirds: renewed, same token and generation.
        tokio::time::advance(Duration::from_secs(2)).await;
        let renewed = slot
            .get_or_login(
                || async { Err::<LoginResponse, ()>(()) },
                |_| async { Ok(login_response(30)) },
            )
            .await
            .unwrap();
        assert_eq!(renewed.generation, first.generation);
        assert!(!renewed.fresh);
        // A renewal capped by the max TTL (5 s < 30 s / 3): a fresh login instead.
        tokio::time::advance(Duration::from_secs(21)).await;
        let relogged = slot
            .get_or_login(
                || async { Ok::<_, ()>(login_response(30)) },
                |_| async { Ok(login_response(5)) },
            )
            .await
            .unwrap();
        assert_eq!(relogged.generation, first.generation + 1);
        assert!(relogged.fresh);
    }

    #[tokio::test]
    async fn a_service_account_slot_shares_only_proven_tokens() {
        let sa = Identity::ServiceAccount {
            namespace: "ns".into(),
            name: "app".into(),
        };
        let proven = |ns: &str, name: &str, uses: u64| {
            let mut r = login_response(600);
            r.metadata.insert(SA_NAMESPACE.into(), ns.into());
            r.metadata.insert(SA_NAME.into(), name.into());
            r.num_uses = uses;
            r
        };
        let slot = TokenSlot::for_identity(&sa);
        let first = slot
            .get_or_login(|| async { Ok::<_, ()>(proven("ns", "app", 0)) }, no_renewal)
            .await
            .unwrap();
        let second = slot
            .get_or_login(|| async { Err(()) }, no_renewal)
            .await
            .unwrap();
        assert_eq!(first.generation, second.generation, "shared");
        assert!(!slot.refuses_sharing());
        for bad in [
            proven("other", "app", 0),
            proven("ns", "other", 0),
            proven("ns", "app", 5),
            login_response(600),
        ] {
            let slot = TokenSlot::for_identity(&sa);
            let handle = slot
                .get_or_login(|| async { Ok::<_, ()>(bad) }, no_renewal)
                .await
                .unwrap();
            assert!(handle.fresh);
            assert!(slot.refuses_sharing());
            // Nothing was kept: the next caller cannot get that token.
            assert!(
                slot.get_or_login(|| async { Err(()) }, no_renewal)
                    .await
                    .is_err()
            );
        }
    }

    #[tokio::test]
    async fn concurrent_first_mounts_share_one_login() {
        let slot = Arc::new(TokenSlot::default());
        let logins = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (slot, logins) = (slot.clone(), logins.clone());
            tasks.push(tokio::spawn(async move {
                slot.get_or_login(
                    || async {
                        logins.fetch_add(1, Ordering::SeqCst);
                        tokio::task::yield_now().await;
                        Ok::<_, ()>(login_response(3600))
                    },
                    no_renewal,
                )
                .await
                .unwrap()
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(logins.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn relogin_after_403_is_shared_and_marked_fresh() {
        let slot = TokenSlot::default();
        let first = slot
            .get_or_login(|| async { Ok::<_, ()>(login_response(0)) }, no_renewal)
            .await
            .unwrap();
        let again = slot
            .get_or_login(|| async { Err(()) }, no_renewal)
            .await
            .unwrap();
        assert!(!again.fresh, "a cached token is not fresh");
        let renewed = slot
            .relogin(first.generation, || async {
                Ok::<_, ()>(login_response(0))
            })
            .await
            .unwrap();
        assert!(renewed.fresh && renewed.generation == first.generation + 1);
        // A second mount refused with the same old token gets the new one without a login.
        let shared = slot
            .relogin(first.generation, || async { Err(()) })
            .await
            .unwrap();
        assert_eq!(shared.generation, renewed.generation);
        assert!(shared.fresh);
    }

    #[test]
    fn cache_is_bounded_and_can_be_disabled() {
        let key = |n: &str| (*crate::cache::test_key(n, "").identity).clone();
        let cache = TokenCache::new(2);
        let a = cache.slot(&key("a"));
        assert!(Arc::ptr_eq(&a, &cache.slot(&key("a"))));
        cache.slot(&key("b"));
        cache.slot(&key("c"));
        assert_eq!(cache.len(), 2);
        let disabled = TokenCache::new(0);
        assert!(!Arc::ptr_eq(
            &disabled.slot(&key("a")),
            &disabled.slot(&key("a"))
        ));
        assert!(disabled.is_empty());
    }
}
