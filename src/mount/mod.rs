//! One Mount: parse the request, log in, fetch each distinct Vault request
//! once, render files and versions.

mod error;
mod render;
mod version;

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt, stream};
use tonic::Code;

pub use error::MountError;
pub use render::render;
pub use version::object_version;

use crate::cache::{TokenCache, TokenHandle, TokenKey, TokenSlot};
use crate::k8s::HmacKeys;
use crate::proto::{File, MountRequest, MountResponse, ObjectVersion};
use crate::spc::{self, Defaults, MountConfig, RequestKey, ServiceAccountToken};
use crate::vault::{ClientOptions, ClientPool, VaultClient, VaultError, VaultResponse};

/// How many distinct Vault requests of one Mount run at once.
const FETCH_CONCURRENCY: usize = 8;

/// Settings of a [`Mounter`].
pub struct MounterSettings {
    /// Connection defaults from flags and environment.
    pub defaults: Defaults,
    /// Vault client limits and retries.
    pub client: ClientOptions,
    /// Most cached Vault tokens (`--cache-size`); 0 disables the cache.
    pub cache_size: usize,
    /// Where object-version keys come from.
    pub hmac: HmacKeys,
}

/// Performs mounts; shared by every request the server handles.
pub struct Mounter {
    /// Connection defaults from flags and environment.
    defaults: Defaults,
    /// Pooled HTTP clients per Vault.
    pool: ClientPool,
    /// Vault tokens per pod and connection.
    tokens: TokenCache,
    /// Object-version key.
    hmac: HmacKeys,
}

impl Mounter {
    /// A mounter with empty caches.
    pub fn new(settings: MounterSettings) -> Self {
        Self {
            defaults: settings.defaults,
            pool: ClientPool::new(settings.client),
            tokens: TokenCache::new(settings.cache_size),
            hmac: settings.hmac,
        }
    }

    /// Parses a mount request into its typed configuration.
    pub fn parse(&self, request: &MountRequest) -> Result<MountConfig, MountError> {
        spc::parse(request, &self.defaults).map_err(MountError::from_spc)
    }

    /// Fetches and renders everything `cfg` names.
    pub async fn mount(&self, cfg: &MountConfig) -> Result<MountResponse, MountError> {
        let responses = self.fetch(cfg).await?;
        let key = self.hmac.key().await;
        let limit = self.pool.options().max_response_bytes;
        let mut total = 0usize;
        let mut files = Vec::with_capacity(cfg.objects.len());
        let mut versions = Vec::with_capacity(cfg.objects.len());
        for object in &cfg.objects {
            let response = responses.get(&object.request).ok_or_else(|| {
                MountError::new(
                    Code::Internal,
                    format!("no response kept for {}", object.request),
                )
            })?;
            let content = render(object, response, &cfg.spc)?;
            total += content.len();
            versions.push(ObjectVersion {
                id: object.name.as_str().to_string(),
                version: object_version(&key, cfg, object, content.expose()),
            });
            files.push(File {
                path: object.name.as_str().to_string(),
                mode: object.mode.unwrap_or(cfg.default_mode) as i32,
                contents: content.expose().to_vec(),
            });
        }
        if total > limit {
            return Err(MountError::new(
                Code::ResourceExhausted,
                format!(
                    "SecretProviderClass {}: the files total {total} bytes, over the {limit}-byte limit. \
                     Hint: split the objects over several SecretProviderClasses, or raise \
                     --max-response-bytes and the driver's --max-call-recv-msg-size together",
                    cfg.spc
                ),
            ));
        }
        Ok(MountResponse {
            object_version: versions,
            error: None,
            files,
        })
    }

    /// Logs in (or reuses the pod's token) and performs each distinct request
    /// once, a bounded number at a time.
    async fn fetch(
        &self,
        cfg: &MountConfig,
    ) -> Result<HashMap<RequestKey, VaultResponse>, MountError> {
        let jwt = cfg
            .token
            .as_ref()
            .ok_or_else(|| error::missing_token(cfg))?;
        let client = self.pool.client(&cfg.connection).map_err(|e| {
            MountError::new(
                Code::InvalidArgument,
                format!("SecretProviderClass {}: {e}", cfg.spc),
            )
        })?;
        let slot = self.tokens.slot(&TokenKey {
            connection: cfg.connection.clone(),
            auth: cfg.auth.clone(),
            pod: cfg.pod.clone(),
        });
        let handle = slot.get_or_login(|| login(&client, cfg, jwt)).await?;

        let mut distinct: Vec<&RequestKey> = Vec::with_capacity(cfg.objects.len());
        for object in &cfg.objects {
            if !distinct.contains(&&object.request) {
                distinct.push(&object.request);
            }
        }
        let ctx = FetchContext {
            cfg,
            client: &client,
            slot: &slot,
            jwt,
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

/// What every request of one Mount shares.
struct FetchContext<'a> {
    cfg: &'a MountConfig,
    client: &'a VaultClient,
    slot: &'a Arc<TokenSlot>,
    jwt: &'a ServiceAccountToken,
    handle: &'a TokenHandle,
}

impl FetchContext<'_> {
    /// One request; a 403 with a cached token triggers one shared re-login
    /// and one retry, a 403 with a fresh token is final.
    async fn fetch_one(
        &self,
        request: &RequestKey,
    ) -> Result<(RequestKey, VaultResponse), MountError> {
        let first = self.client.request(&self.handle.token, request).await;
        let result = match first {
            Err(VaultError::Status { status: 403, .. }) if !self.handle.fresh => {
                let renewed = self
                    .slot
                    .relogin(self.handle.generation, || {
                        login(self.client, self.cfg, self.jwt)
                    })
                    .await?;
                self.client.request(&renewed.token, request).await
            }
            other => other,
        };
        result
            .map(|response| (request.clone(), response))
            .map_err(|e| error::read_error(self.cfg, &self.objects_of(request), request, &e))
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

/// Logs in as the pod with its service-account token.
async fn login(
    client: &VaultClient,
    cfg: &MountConfig,
    jwt: &ServiceAccountToken,
) -> Result<crate::vault::LoginResponse, MountError> {
    client
        .login_jwt(&cfg.auth.mount, &cfg.auth.role, &jwt.token)
        .await
        .map_err(|e| error::login_error(cfg, &e))
}
