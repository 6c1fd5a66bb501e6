//! The pod behind a mount, and its service-account token.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use super::{SpcError, TOKENS_ATTRIBUTE};
use crate::secret::SecretString;

/// The pod a volume is mounted for, from kubelet's `csi.storage.k8s.io/*`
/// attributes (set by kubelet, never by the SecretProviderClass author).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct PodInfo {
    /// Pod name.
    pub name: String,
    /// Pod namespace.
    pub namespace: String,
    /// Pod UID.
    pub uid: String,
    /// The pod's service account.
    pub service_account: String,
}

impl PodInfo {
    /// Reads the kubelet-set pod attributes; missing ones are empty.
    pub fn from_attributes(attributes: &HashMap<String, String>) -> Self {
        let get = |k: &str| attributes.get(k).cloned().unwrap_or_default();
        Self {
            name: get("csi.storage.k8s.io/pod.name"),
            namespace: get("csi.storage.k8s.io/pod.namespace"),
            uid: get("csi.storage.k8s.io/pod.uid"),
            service_account: get("csi.storage.k8s.io/serviceAccount.name"),
        }
    }
}

/// The pod's service-account token for one audience, as passed by the driver.
#[derive(Debug, Clone)]
pub struct ServiceAccountToken {
    /// The JWT.
    pub token: SecretString,
    /// Expiry as written by kubelet (RFC 3339), if given.
    pub expiration: Option<String>,
    /// The token's claims, read without verifying the signature (Vault
    /// verifies it at login); `None` when the token is not a readable JWT.
    pub claims: Option<TokenClaims>,
}

/// What a projected service-account token says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    /// `sub`: `system:serviceaccount:<namespace>:<name>`.
    pub subject: String,
    /// `kubernetes.io.pod.uid`: the pod the token is bound to.
    pub pod_uid: Option<String>,
    /// `exp`, seconds since the epoch.
    pub expires: Option<u64>,
    /// `aud`: the audiences the token is for.
    pub audiences: Vec<String>,
}

impl ServiceAccountToken {
    /// Whether the token was issued for exactly this pod and `audience` and
    /// is unexpired: the condition for using a token shared by its service
    /// account.
    pub fn belongs_to(&self, pod: &PodInfo, audience: &str) -> bool {
        let Some(claims) = &self.claims else {
            return false;
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        claims.subject
            == format!(
                "system:serviceaccount:{}:{}",
                pod.namespace, pod.service_account
            )
            && !pod.uid.is_empty()
            && claims.pod_uid.as_deref() == Some(pod.uid.as_str())
            && claims.expires.is_some_and(|exp| exp > now)
            && claims.audiences.iter().any(|a| a == audience)
    }
}

/// Reads a JWT's payload claims (no signature check).
fn read_claims(jwt: &str) -> Option<TokenClaims> {
    #[derive(Deserialize)]
    struct Object {
        uid: Option<String>,
    }
    #[derive(Deserialize)]
    struct Kubernetes {
        pod: Option<Object>,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Audience {
        One(String),
        Many(Vec<String>),
    }
    #[derive(Deserialize)]
    struct Claims {
        sub: String,
        exp: Option<u64>,
        aud: Option<Audience>,
        #[serde(rename = "kubernetes.io")]
        kubernetes: Option<Kubernetes>,
    }
    use base64::Engine;
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Claims = serde_json::from_slice(&bytes).ok()?;
    Some(TokenClaims {
        subject: claims.sub,
        pod_uid: claims.kubernetes.and_then(|k| k.pod).and_then(|p| p.uid),
        expires: claims.exp,
        audiences: match claims.aud {
            Some(Audience::One(a)) => vec![a],
            Some(Audience::Many(a)) => a,
            None => Vec::new(),
        },
    })
}

/// One entry of the tokens attribute.
#[derive(Deserialize)]
struct TokenEntry {
    token: String,
    #[serde(rename = "expirationTimestamp", default)]
    expiration: Option<String>,
}

/// Finds the token for `audience`: first in the request's secrets (driver
/// ≥ 1.6 with `serviceAccountTokenInSecrets`), then in the attributes.
pub(super) fn find_token(
    secrets: &BTreeMap<String, SecretString>,
    attributes: &HashMap<String, String>,
    audience: &str,
) -> Result<Option<ServiceAccountToken>, SpcError> {
    let text = match secrets.get(TOKENS_ATTRIBUTE) {
        Some(s) => s.expose(),
        None => match attributes.get(TOKENS_ATTRIBUTE) {
            Some(s) => s.as_str(),
            None => return Ok(None),
        },
    };
    if text.trim().is_empty() {
        return Ok(None);
    }
    let mut entries: HashMap<String, TokenEntry> = serde_json::from_str(text).map_err(|e| {
        SpcError::new(format!(
            "the {TOKENS_ATTRIBUTE} attribute is not the JSON the driver sends ({}); this is a driver bug",
            super::shown::json_error_without_values(&e)
        ))
    })?;
    let entry = entries.remove(audience);
    // Wipe the tokens of other audiences now rather than leave them to the allocator.
    for (_, other) in entries.drain() {
        drop(SecretString::new(other.token));
    }
    Ok(entry
        .filter(|e| !e.token.is_empty())
        .map(|e| ServiceAccountToken {
            claims: read_claims(&e.token),
            token: SecretString::new(e.token),
            expiration: e.expiration,
        }))
}
