//! The key behind object versions.
//!
//! Versions must survive a restart, so the key is persistent: a file
//! (`--hmac-key-file`), or the Kubernetes Secret HashiCorp's provider uses
//! (`--hmac-secret-name`, data key `key`), created immutable with 32 random
//! bytes when missing.  Keeping HashiCorp's Secret means a migration keeps
//! the key.  Without either, a per-process random key is used with a warning.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::hmac;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, PostParams};
use zeroize::Zeroizing;

/// Key length generated for new keys.
const KEY_BYTES: usize = 32;
/// Timeout of one Kubernetes API call.
const API_TIMEOUT: Duration = Duration::from_secs(10);
/// After a failed API attempt, wait this long before the next one.
const RETRY_AFTER: Duration = Duration::from_secs(30);

/// Where the key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HmacKeySource {
    /// The bytes of a file (at least 32).
    File(PathBuf),
    /// A Kubernetes Secret in the provider's namespace.
    Kubernetes {
        /// Name of the Secret.
        secret_name: String,
    },
}

/// The Kubernetes side of [`HmacKeys`].
struct KubeKey {
    api: Api<Secret>,
    namespace: String,
    name: String,
    /// The key once read or created.
    resolved: Option<Arc<hmac::Key>>,
    /// When the last failed attempt was made.
    last_failure: Option<Instant>,
}

/// Provides the object-version key.
pub struct HmacKeys {
    /// A fixed key (file or random).
    fixed: Option<Arc<hmac::Key>>,
    /// The Kubernetes Secret, read lazily and cached.
    kube: Option<tokio::sync::Mutex<KubeKey>>,
    /// Used while the Kubernetes Secret cannot be read.
    fallback: Arc<hmac::Key>,
}

impl HmacKeys {
    /// Sets up the key source.  A bad key file is an error; a missing
    /// Kubernetes configuration falls back to a random key with a warning.
    pub async fn new(source: &HmacKeySource) -> Result<Self, String> {
        let fallback = random_key()?;
        match source {
            HmacKeySource::File(path) => {
                let bytes =
                    Zeroizing::new(std::fs::read(path).map_err(|e| {
                        format!("cannot read --hmac-key-file {}: {e}", path.display())
                    })?);
                if bytes.len() < KEY_BYTES {
                    return Err(format!(
                        "--hmac-key-file {} holds {} bytes; it needs at least {KEY_BYTES} (e.g. head -c 32 /dev/urandom > file)",
                        path.display(),
                        bytes.len()
                    ));
                }
                Ok(Self {
                    fixed: Some(Arc::new(hmac::Key::new(hmac::HMAC_SHA256, &bytes))),
                    kube: None,
                    fallback,
                })
            }
            HmacKeySource::Kubernetes { secret_name } => match kube::Config::infer().await {
                Ok(config) => {
                    let namespace = config.default_namespace.clone();
                    let client = kube::Client::try_from(config)
                        .map_err(|e| format!("cannot build a Kubernetes client: {e}"))?;
                    let kube = KubeKey {
                        api: Api::namespaced(client, &namespace),
                        namespace,
                        name: secret_name.clone(),
                        resolved: None,
                        last_failure: None,
                    };
                    Ok(Self {
                        fixed: None,
                        kube: Some(tokio::sync::Mutex::new(kube)),
                        fallback,
                    })
                }
                Err(e) => {
                    tracing::warn!(
                        error = %e,
                        "no Kubernetes configuration: object versions use a random per-process key and \
                         will change when the provider restarts; set --hmac-key-file to keep them"
                    );
                    Ok(Self::random_with(fallback))
                }
            },
        }
    }

    /// A random per-process key.
    pub fn random() -> Result<Self, String> {
        Ok(Self::random_with(random_key()?))
    }

    fn random_with(key: Arc<hmac::Key>) -> Self {
        Self {
            fixed: Some(key.clone()),
            kube: None,
            fallback: key,
        }
    }

    /// The key to use now.
    pub async fn key(&self) -> Arc<hmac::Key> {
        if let Some(key) = &self.fixed {
            return key.clone();
        }
        let Some(kube) = &self.kube else {
            return self.fallback.clone();
        };
        let mut kube = kube.lock().await;
        if let Some(key) = &kube.resolved {
            return key.clone();
        }
        if kube.last_failure.is_some_and(|t| t.elapsed() < RETRY_AFTER) {
            return self.fallback.clone();
        }
        match tokio::time::timeout(API_TIMEOUT, read_or_create(&kube.api, &kube.name)).await {
            Ok(Ok(key)) => {
                tracing::info!(secret = %format!("{}/{}", kube.namespace, kube.name), "object-version key loaded");
                kube.resolved = Some(key.clone());
                key
            }
            failure => {
                let why = match failure {
                    Ok(Err(e)) => e,
                    _ => format!("no answer within {API_TIMEOUT:?}"),
                };
                tracing::warn!(
                    secret = %format!("{}/{}", kube.namespace, kube.name),
                    error = %why,
                    "cannot read or create the object-version key Secret; using a per-process key for \
                     now (versions may change once). The provider needs get on this Secret and create \
                     on secrets in its namespace"
                );
                kube.last_failure = Some(Instant::now());
                self.fallback.clone()
            }
        }
    }
}

/// Reads the key Secret, creating it (immutable, 32 random bytes) if missing;
/// when another replica wins the creation race, reads theirs.
async fn read_or_create(api: &Api<Secret>, name: &str) -> Result<Arc<hmac::Key>, String> {
    if let Some(secret) = api.get_opt(name).await.map_err(|e| format!("get: {e}"))? {
        return key_from(&secret);
    }
    let mut bytes = Zeroizing::new([0u8; KEY_BYTES]);
    aws_lc_rs::rand::fill(bytes.as_mut()).map_err(|_| "no randomness available".to_string())?;
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..Default::default()
        },
        immutable: Some(true),
        data: Some(BTreeMap::from([(
            "key".to_string(),
            ByteString(bytes.to_vec()),
        )])),
        ..Default::default()
    };
    match api.create(&PostParams::default(), &secret).await {
        Ok(created) => key_from(&created),
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let secret = api
                .get(name)
                .await
                .map_err(|e| format!("get after losing the create race: {e}"))?;
            key_from(&secret)
        }
        Err(e) => Err(format!("create: {e}")),
    }
}

/// The key in a Secret's `key` data.
fn key_from(secret: &Secret) -> Result<Arc<hmac::Key>, String> {
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get("key"))
        .map(|b| b.0.as_slice())
        .filter(|b| !b.is_empty())
        .ok_or(
            "the Secret has no data key \"key\"; delete it and the provider will create a new one",
        )?;
    Ok(Arc::new(hmac::Key::new(hmac::HMAC_SHA256, bytes)))
}

/// A fresh random key.
fn random_key() -> Result<Arc<hmac::Key>, String> {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    hmac::Key::generate(hmac::HMAC_SHA256, &rng)
        .map(Arc::new)
        .map_err(|_| "no randomness available for the object-version key".to_string())
}
