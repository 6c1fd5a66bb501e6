//! Fetching a mount's distinct requests, each once:
//! - dynamic secrets (leases, certificates) through the lease cache;
//! - other reads through the response cache (coalesced, short TTL);
//! - other writes straight to Vault (a write may issue a credential);
//! - a 403 with a cached token triggers one shared re-login and one retry;
//! - when Vault is down, stale-if-error answers from what the identity last got.
//!
//! Every cache is keyed by the mount's identity (see `auth.rs`).

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::{FutureExt, StreamExt, TryStreamExt, stream};
use tonic::Code;

use super::auth::Authenticator;
use super::{MountError, Mounter, error};
use crate::cache::{
    FetchResult, LeaseOutcome, ResponseKey, Source, TokenHandle, TokenKey, TokenSlot,
};
use crate::metrics::CacheKind;
use crate::secret::SecretString;
use crate::spc::{DynamicReuse, MountConfig, RequestKey};
use crate::vault::{VaultClient, VaultError, VaultResponse};

/// How many distinct Vault requests of one Mount run at once.
const FETCH_CONCURRENCY: usize = 8;

impl Mounter {
    /// Authenticates (or reuses the identity's token) and performs each
    /// distinct request once, a bounded number at a time.
    pub(super) async fn fetch(
        &self,
        cfg: &MountConfig,
    ) -> Result<HashMap<RequestKey, Arc<VaultResponse>>, MountError> {
        let client = self.pool.client(&cfg.connection).map_err(|e| {
            MountError::new(
                Code::InvalidArgument,
                format!("SecretProviderClass {}: {e}", cfg.spc),
            )
        })?;
        let (identity, pod_identity, slot) = self.token_slot(cfg);
        let auth = Authenticator {
            cfg,
            client: &client,
            minter: &self.minter,
        };
        let handle = match slot
            .get_or_login(|| auth.login(), |token| auth.renew(token))
            .await
        {
            Ok(handle) => {
                let metrics = &self.pool.options().metrics;
                match handle.fresh {
                    true => metrics.cache_miss(CacheKind::Token),
                    false => metrics.cache_hit(CacheKind::Token),
                }
                handle
            }
            Err(e) if e.vault_down => {
                let lease_scope = self.lease_scope(cfg, &identity, &pod_identity);
                return self
                    .all_stale(cfg, &identity, lease_scope.as_ref())
                    .ok_or(e);
            }
            Err(e) => return Err(e),
        };

        let mut distinct: Vec<&RequestKey> = Vec::with_capacity(cfg.objects.len());
        for object in cfg.objects.iter() {
            if !distinct.contains(&&object.request) {
                distinct.push(&object.request);
            }
        }
        let lease_scope = self.lease_scope(cfg, &identity, &pod_identity);
        let ctx = FetchContext {
            mounter: self,
            cfg,
            client: &client,
            identity,
            lease_scope,
            slot: &slot,
            auth: &auth,
            handle: &handle,
        };
        // Futures are built eagerly (a Vec, not a lazy map) so the stream's
        // item type has one concrete lifetime and stays Send.
        let fetches: Vec<_> = distinct
            .into_iter()
            .map(|request| ctx.fetch_one(request))
            .collect();
        stream::iter(fetches)
            .buffer_unordered(FETCH_CONCURRENCY)
            .try_collect()
            .await
    }
}

impl Mounter {
    /// The scope dynamic secrets are kept for; `None` when not reused.
    fn lease_scope(
        &self,
        cfg: &MountConfig,
        identity: &Arc<TokenKey>,
        pod: &Arc<TokenKey>,
    ) -> Option<Arc<TokenKey>> {
        match cfg.dynamic_reuse {
            DynamicReuse::Identity => Some(identity.clone()),
            DynamicReuse::Pod => Some(pod.clone()),
            DynamicReuse::Never => None,
        }
    }

    /// The stale-if-error window for this mount; `None` when off (flag 0 or
    /// `staleIfError: "false"`).
    pub(super) fn stale_window(&self, cfg: &MountConfig) -> Option<std::time::Duration> {
        (cfg.stale_if_error && !self.stale_if_error.is_zero()).then_some(self.stale_if_error)
    }

    /// The last good answer to `request` for this identity, if stale-if-error
    /// allows serving it.
    fn stale(
        &self,
        cfg: &MountConfig,
        identity: &Arc<TokenKey>,
        lease_scope: Option<&Arc<TokenKey>>,
        request: &RequestKey,
    ) -> Option<Arc<VaultResponse>> {
        let window = self.stale_window(cfg)?;
        if let Some(scope) = lease_scope {
            let key = ResponseKey {
                identity: scope.clone(),
                request: request.clone(),
            };
            if let Some(alive) = self.leases.alive(&key, window) {
                return Some(alive);
            }
        }
        let key = ResponseKey {
            identity: identity.clone(),
            request: request.clone(),
        };
        self.responses
            .stale(&key, window)
            .filter(|r| r.lease_id.is_empty())
    }

    /// Every request of the mount from stale-if-error, or `None` if any is
    /// missing (used when even the login fails because Vault is down).
    fn all_stale(
        &self,
        cfg: &MountConfig,
        identity: &Arc<TokenKey>,
        lease_scope: Option<&Arc<TokenKey>>,
    ) -> Option<HashMap<RequestKey, Arc<VaultResponse>>> {
        let mut answers = HashMap::new();
        for object in cfg.objects.iter() {
            if !answers.contains_key(&object.request) {
                answers.insert(
                    object.request.clone(),
                    self.stale(cfg, identity, lease_scope, &object.request)?,
                );
            }
        }
        for _ in 0..answers.len() {
            self.pool.options().metrics.stale_response();
        }
        tracing::warn!(
            spc = %cfg.spc, pod = %cfg.pod.name, namespace = %cfg.pod.namespace,
            "Vault is unavailable and the login failed: serving the last good answers (stale-if-error)"
        );
        Some(answers)
    }
}

/// What every request of one Mount shares.
struct FetchContext<'a> {
    mounter: &'a Mounter,
    cfg: &'a MountConfig,
    client: &'a VaultClient,
    /// The identity cached responses are scoped to.
    identity: Arc<TokenKey>,
    /// The scope dynamic secrets are kept for; `None` when they are not
    /// reused (`dynamicSecretReuse: false`).
    lease_scope: Option<Arc<TokenKey>>,
    slot: &'a Arc<TokenSlot>,
    auth: &'a Authenticator<'a>,
    handle: &'a TokenHandle,
}

impl FetchContext<'_> {
    /// One request; a 403 with a cached token triggers one shared re-login
    /// and one retry, a 403 with a fresh token is final.
    async fn fetch_one(
        &self,
        request: &RequestKey,
    ) -> Result<(RequestKey, Arc<VaultResponse>), MountError> {
        let result = match self.send(request, self.handle).await {
            Err(VaultError::Status { status: 403, .. }) if !self.handle.fresh => {
                let renewed = self
                    .slot
                    .relogin(self.handle.generation, || self.auth.login())
                    .await?;
                self.send(request, &renewed).await
            }
            other => other,
        };
        result
            .map(|response| (request.clone(), response))
            .map_err(|e| error::read_error(self.cfg, &self.objects_of(request), request, &e))
    }

    /// Sends one request; when Vault is down (unreachable, timing out, sealed,
    /// 502/503/504) answers from what this identity last got, within the
    /// stale-if-error window and never past a lease's or certificate's end.
    async fn send(&self, request: &RequestKey, handle: &TokenHandle) -> FetchResult {
        let result = self.send_fresh(request, handle).await;
        match result {
            Err(e) if error::vault_is_down(&e) => match self.mounter.stale(
                self.cfg,
                &self.identity,
                self.lease_scope.as_ref(),
                request,
            ) {
                Some(stale) => {
                    self.metrics().stale_response();
                    tracing::warn!(
                        spc = %self.cfg.spc, pod = %self.cfg.pod.name, namespace = %self.cfg.pod.namespace,
                        request = %request, error = %e,
                        "Vault is unavailable: serving the last good answer (stale-if-error)"
                    );
                    Ok(stale)
                }
                None => Err(e),
            },
            other => other,
        }
    }

    /// Sends one request to Vault.  Dynamic secrets (leases, certificates) go
    /// through the lease cache; other reads through the response cache
    /// (coalesced, short TTL); other writes straight to Vault, since a write
    /// may issue a credential and is shared only as a lease.
    async fn send_fresh(&self, request: &RequestKey, handle: &TokenHandle) -> FetchResult {
        let leases = &self.mounter.leases;
        let lease_key = self.lease_scope.as_ref().map(|scope| ResponseKey {
            identity: scope.clone(),
            request: request.clone(),
        });
        let issue = || {
            let (client, token) = (self.client.clone(), handle.token.clone());
            async move { client.request(&token, request).await.map(Arc::new) }
        };
        let renew = |token: Arc<SecretString>, lease_id: String, increment: u64| {
            let client = self.client.clone();
            async move { client.renew_lease(&token, &lease_id, increment).await }
        };
        match &lease_key {
            Some(key) if !request.method.is_read() || leases.holds(key) => {
                let (result, outcome) = leases
                    .get(key, &self.cfg.pod.uid, handle, issue, renew)
                    .await;
                let metrics = self.metrics();
                match outcome {
                    LeaseOutcome::Reused => metrics.cache_hit(CacheKind::Lease),
                    LeaseOutcome::Renewed => {
                        metrics.cache_hit(CacheKind::Lease);
                        metrics.lease_renewed();
                    }
                    LeaseOutcome::Issued => metrics.cache_miss(CacheKind::Lease),
                    LeaseOutcome::Reissued => {
                        metrics.cache_miss(CacheKind::Lease);
                        metrics.lease_reissued();
                    }
                    LeaseOutcome::RenewedThenReissued => {
                        metrics.cache_miss(CacheKind::Lease);
                        metrics.lease_renewed();
                        metrics.lease_reissued();
                    }
                    LeaseOutcome::PassedThrough => {}
                }
                metrics.set_leases_held(leases.len());
                if outcome != LeaseOutcome::PassedThrough {
                    tracing::debug!(spc = %self.cfg.spc, request = %request, outcome = ?outcome, "dynamic secret");
                }
                return result;
            }
            None if !request.method.is_read() => return issue().await,
            _ => {}
        }
        let key = ResponseKey {
            identity: self.identity.clone(),
            request: request.clone(),
        };
        let (client, token, owned) = (self.client.clone(), handle.token.clone(), request.clone());
        let ttl = self.ttl_for(request);
        // Keep answers for reuse within the TTL, and for stale-if-error.
        let keep = !ttl.is_zero() || self.mounter.stale_window(self.cfg).is_some();
        let (result, source) = self
            .mounter
            .responses
            .get(&key, ttl, keep, move || {
                async move { client.request(&token, &owned).await }.boxed()
            })
            .await;
        match source {
            Source::Cached => self.metrics().cache_hit(CacheKind::Response),
            Source::Coalesced => self.metrics().cache_coalesced(CacheKind::Response),
            Source::Fetched => self.metrics().cache_miss(CacheKind::Response),
        }
        // A read that turned out to hold a lease (database/creds…) is kept
        // from now on, so the next poll reuses it.
        if let (Ok(response), Some(key)) = (&result, &lease_key)
            && !response.lease_id.is_empty()
        {
            leases
                .adopt(key, &self.cfg.pod.uid, response.clone(), handle)
                .await;
        }
        result
    }

    /// The metrics registry.
    fn metrics(&self) -> &crate::metrics::Metrics {
        &self.mounter.pool.options().metrics
    }

    /// The response TTL for a read: the mount's, or zero if any object using
    /// the request opts out with `cache: "false"`.
    fn ttl_for(&self, request: &RequestKey) -> std::time::Duration {
        let opted_out = self
            .cfg
            .objects
            .iter()
            .any(|o| &o.request == request && !o.cache);
        if opted_out {
            std::time::Duration::ZERO
        } else {
            self.mounter.response_ttl(self.cfg)
        }
    }

    /// `object "a"` or `objects "a", "b"`: the objects a request serves.
    fn objects_of(&self, request: &RequestKey) -> String {
        let names: Vec<String> = self
            .cfg
            .objects
            .iter()
            .filter(|o| &o.request == request)
            .map(|o| format!("{:?}", o.name.as_str()))
            .collect();
        let noun = if names.len() == 1 {
            "object"
        } else {
            "objects"
        };
        format!("{noun} {}", names.join(", "))
    }
}
