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
use crate::k8s::{HmacKeys, TokenMinter};
use crate::proto::{File, MountRequest, MountResponse, ObjectVersion};
use crate::secret::SecretString;
use crate::spc::{self, Credential, Defaults, MountConfig, RequestKey};
use crate::vault::{
    ClientOptions, ClientPool, LoginResponse, VaultClient, VaultError, VaultResponse,
};

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
    /// Mints pod tokens when the driver passes none.
    pub minter: TokenMinter,
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
    /// Mints pod tokens when the driver passes none.
    minter: TokenMinter,
}

impl Mounter {
    /// A mounter with empty caches.
    pub fn new(settings: MounterSettings) -> Self {
        Self {
            defaults: settings.defaults,
            pool: ClientPool::new(settings.client),
            tokens: TokenCache::new(settings.cache_size),
            hmac: settings.hmac,
            minter: settings.minter,
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
            credential: credential_digest(&cfg.credential),
        });
        let auth = Authenticator {
            cfg,
            client: &client,
            minter: &self.minter,
        };
        let handle = slot
            .get_or_login(|| auth.login(), |token| auth.renew(token))
            .await?;

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

/// Logs in with a mount's credential, and renews the tokens it got.
struct Authenticator<'a> {
    cfg: &'a MountConfig,
    client: &'a VaultClient,
    minter: &'a TokenMinter,
}

impl Authenticator<'_> {
    /// Logs in with the mount's auth method.
    async fn login(&self) -> Result<LoginResponse, MountError> {
        let cfg = self.cfg;
        let (mount, role) = (&cfg.auth.mount, &cfg.auth.role);
        let result = match &cfg.credential {
            Credential::ServiceAccount(sa) => self.client.login_jwt(mount, role, &sa.token).await,
            Credential::SelfMint => {
                let jwt = self
                    .minter
                    .mint(&cfg.pod, &cfg.auth.mint_audiences)
                    .await
                    .map_err(|e| error::mint_error(cfg, &e))?;
                self.client.login_jwt(mount, role, &jwt).await
            }
            Credential::AppRole { role_id, secret_id } => {
                self.client.login_approle(mount, role_id, secret_id).await
            }
            Credential::VaultToken(token) => self.client.lookup_self(token).await,
        };
        result.map_err(|e| error::login_error(cfg, &e))
    }

    /// Renews a token (`renew-self`).
    async fn renew(&self, token: Arc<SecretString>) -> Result<LoginResponse, MountError> {
        let renewed = self.client.renew_self(&token).await;
        if let Err(e) = &renewed {
            tracing::debug!(spc = %self.cfg.spc, error = %e, "token renewal failed; logging in again");
        }
        renewed.map_err(|e| error::login_error(self.cfg, &e))
    }
}

/// SHA-256 of an AppRole or Vault-token credential.
fn credential_digest(credential: &Credential) -> Option<[u8; 32]> {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    match credential {
        Credential::AppRole { role_id, secret_id } => {
            ctx.update(role_id.expose().as_bytes());
            ctx.update(&[0]);
            ctx.update(secret_id.expose().as_bytes());
        }
        Credential::VaultToken(token) => ctx.update(token.expose().as_bytes()),
        Credential::ServiceAccount(_) | Credential::SelfMint => return None,
    }
    ctx.finish().as_ref().try_into().ok()
}

/// What every request of one Mount shares.
struct FetchContext<'a> {
    cfg: &'a MountConfig,
    client: &'a VaultClient,
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
    ) -> Result<(RequestKey, VaultResponse), MountError> {
        let first = self.client.request(&self.handle.token, request).await;
        let result = match first {
            Err(VaultError::Status { status: 403, .. }) if !self.handle.fresh => {
                let renewed = self
                    .slot
                    .relogin(self.handle.generation, || self.auth.login())
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
