//! One Mount: parse the request, authenticate as the mount's identity,
//! fetch each distinct Vault request once (through the caches), render
//! files and versions.

mod auth;
mod error;
mod every_key;
mod fetch;
mod render;
mod template;
mod version;

use std::time::Duration;

use tonic::Code;

pub use error::MountError;
pub use render::render;
pub use version::object_version;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::cache::{LeaseCache, ResponseCache, TokenCache};
use crate::k8s::{HmacKeys, TokenMinter};
use crate::proto::{File, MountRequest, MountResponse, ObjectVersion};
use crate::secret::SecretBytes;
use crate::spc::{self, Content, Defaults, MountConfig, ObjectSpec, ObjectsCache};
use crate::vault::{ClientOptions, ClientPool};

/// Whether caches may be shared between pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheScope {
    /// Share what Vault itself treats as one identity (the default).
    Identity,
    /// Never share between pods (`--cache-scope=pod`), for per-pod audit trails.
    Pod,
}

/// Settings of a [`Mounter`].
pub struct MounterSettings {
    /// Connection defaults from flags and environment.
    pub defaults: Defaults,
    /// Vault client limits and retries.
    pub client: ClientOptions,
    /// Most cached tokens, and most cached responses (`--cache-size`);
    /// 0 disables both caches.
    pub cache_size: usize,
    /// Most bytes of cached responses (`--cache-max-bytes`).
    pub cache_max_bytes: usize,
    /// How long read responses are reused (`--cache-ttl`); 0 disables.
    pub cache_ttl: Duration,
    /// Cap on an SPC's `cacheTTL` (`--max-cache-ttl`).
    pub max_cache_ttl: Duration,
    /// Sharing between pods.
    pub cache_scope: CacheScope,
    /// Drop a dynamic secret not mounted for this long; `None`: twice the
    /// observed poll interval (`--lease-idle-timeout`).
    pub lease_idle_timeout: Option<Duration>,
    /// How long after the last good read cached content may be served while
    /// Vault is down (`--stale-if-error`); zero turns it off.
    pub stale_if_error: Duration,
    /// Where object-version keys come from.
    pub hmac: HmacKeys,
    /// Mints pod tokens when the driver passes none.
    pub minter: TokenMinter,
}

/// Refuses a response the driver would refuse: gRPC clients, the driver's
/// included, reject a message over their receive limit
/// (`--max-call-recv-msg-size`, 4 MiB by default) with an error that names
/// neither the SecretProviderClass nor the cause.  The size checked is the
/// encoded message, files, paths and versions together.
fn check_size(cfg: &MountConfig, response: &MountResponse, limit: usize) -> Result<(), MountError> {
    let size = prost::Message::encoded_len(response);
    if size <= limit {
        return Ok(());
    }
    let contents: usize = response.files.iter().map(|f| f.contents.len()).sum();
    Err(MountError::new(
        Code::ResourceExhausted,
        format!(
            "SecretProviderClass {}: the Mount response is {size} bytes ({} files holding {contents} \
             bytes), over the --max-response-bytes limit of {limit} bytes. Hint: raise the \
             provider's --max-response-bytes and the driver's --max-call-recv-msg-size together, \
             or split the objects over several SecretProviderClasses",
            cfg.spc,
            response.files.len()
        ),
    ))
}

/// Most distinct `objects` lists kept parsed: one per SecretProviderClass
/// in use on the node, rarely more than a few dozen.
const MAX_PARSED_OBJECT_LISTS: usize = 256;

/// Performs mounts; shared by every request the server handles.
pub struct Mounter {
    /// Connection defaults from flags and environment.
    defaults: Defaults,
    /// Parsed `objects` lists by their text (rotation repeats them).
    objects: ObjectsCache,
    /// Pooled HTTP clients per Vault.
    pool: ClientPool,
    /// Vault tokens per identity.
    tokens: TokenCache,
    /// Read responses per identity.
    responses: ResponseCache,
    /// Dynamic secrets per identity.
    leases: LeaseCache,
    /// The stale-if-error window.
    stale_if_error: Duration,
    /// Default and cap of the response TTL.
    cache_ttl: Duration,
    max_cache_ttl: Duration,
    /// Sharing between pods.
    scope: CacheScope,
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
            objects: ObjectsCache::new(settings.cache_size.min(MAX_PARSED_OBJECT_LISTS)),
            pool: ClientPool::new(settings.client),
            tokens: TokenCache::new(settings.cache_size),
            responses: ResponseCache::new(settings.cache_size, settings.cache_max_bytes),
            leases: LeaseCache::new(settings.cache_size, settings.lease_idle_timeout),
            stale_if_error: settings.stale_if_error,
            cache_ttl: settings.cache_ttl,
            max_cache_ttl: settings.max_cache_ttl,
            scope: settings.cache_scope,
            hmac: settings.hmac,
            minter: settings.minter,
        }
    }

    /// Parses a mount request into its typed configuration.
    pub fn parse(&self, request: &MountRequest) -> Result<MountConfig, MountError> {
        spc::parse_with(request, &self.defaults, &self.objects).map_err(|e| {
            // Name the class, so the pod's event says which one to fix.
            let e = match spc::requested_spc(request) {
                Some(spc) => e.in_spc(&spc),
                None => e,
            };
            MountError::from_spc(e)
        })
    }

    /// Fetches and renders everything `cfg` names.
    pub async fn mount(&self, cfg: &MountConfig) -> Result<MountResponse, MountError> {
        let responses = self.fetch(cfg).await?;
        let key = self.hmac.key().await;
        let mut files = Vec::with_capacity(cfg.objects.len());
        let mut versions = Vec::with_capacity(cfg.objects.len());
        // Templates see every object's response; built once, if needed.
        let mut fetched: Option<template::FetchedObjects> = None;
        for object in cfg.objects.iter() {
            let response = responses.get(&object.request).ok_or_else(|| {
                MountError::new(
                    Code::Internal,
                    format!("no response kept for {}", object.request),
                )
            })?;
            // (id, version, file contents); no contents for the id of a
            // `secretKey: "*"` object, whose name is a directory.
            let mut outputs: Vec<(String, String, Option<SecretBytes>)> = Vec::new();
            match &object.content {
                Content::Whole | Content::Key(_) => {
                    let content = render(object, response, &cfg.spc)?;
                    let version = object_version(&key, cfg, object, content.expose());
                    outputs.push((object.name.to_string(), version, Some(content)));
                }
                Content::Template(t) => {
                    let all =
                        fetched.get_or_insert_with(|| fetched_objects(&cfg.objects, &responses));
                    let content = template::render(object, t, response, all, &cfg.spc)?;
                    let version = object_version(&key, cfg, object, content.expose());
                    outputs.push((object.name.to_string(), version, Some(content)));
                }
                Content::EveryKey => {
                    let keys = every_key::render(object, response, &cfg.objects, &cfg.spc)?;
                    // The object's own version exists even for an empty secret.
                    let version = version::set_version(&key, cfg, object, &keys);
                    outputs.push((object.name.to_string(), version, None));
                    for (name, content) in keys {
                        let version =
                            version::key_version(&key, cfg, object, &name, content.expose());
                        outputs.push((format!("{}/{name}", object.name), version, Some(content)));
                    }
                }
            }
            for (id, version, content) in outputs {
                if let Some(content) = content {
                    files.push(File {
                        path: id.clone(),
                        mode: object.mode.unwrap_or(cfg.default_mode) as i32,
                        contents: content.expose().to_vec(),
                    });
                }
                versions.push(ObjectVersion { id, version });
            }
        }
        let mut response = MountResponse {
            object_version: versions,
            error: None,
            files,
        };
        if let Err(e) = check_size(cfg, &response, self.pool.options().max_response_bytes) {
            // The files hold secrets and are not sent: wipe them.
            for file in &mut response.files {
                zeroize::Zeroize::zeroize(&mut file.contents);
            }
            return Err(e);
        }
        Ok(response)
    }

    /// How busy the request slots of `cfg`'s Vault are, for the message of
    /// a mount that ran out of time.
    pub fn vault_load(&self, cfg: &MountConfig) -> Option<crate::vault::VaultLoad> {
        self.pool.load(&cfg.connection.address)
    }

    /// Drops cached responses older than any use could accept (the longest
    /// TTL or the stale-if-error window).
    pub fn sweep(&self) {
        let longest = self
            .cache_ttl
            .max(self.max_cache_ttl)
            .max(self.stale_if_error);
        self.responses.expire(longest);
    }

    /// How long this mount may reuse read responses.
    fn response_ttl(&self, cfg: &MountConfig) -> Duration {
        cfg.cache_ttl
            .map_or(self.cache_ttl, |ttl| ttl.min(self.max_cache_ttl))
    }
}

/// Every object's response by objectName, for templates' `objects`.
fn fetched_objects(
    objects: &[ObjectSpec],
    responses: &std::collections::HashMap<spc::RequestKey, Arc<crate::vault::VaultResponse>>,
) -> template::FetchedObjects {
    let map: BTreeMap<String, template::Fetched> = objects
        .iter()
        .filter_map(|o| {
            let response = responses.get(&o.request)?.clone();
            Some((
                o.name.to_string(),
                template::Fetched {
                    response,
                    request: o.request.to_string(),
                },
            ))
        })
        .collect();
    Arc::new(map)
}
