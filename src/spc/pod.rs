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
            "the {TOKENS_ATTRIBUTE} attribute is not the JSON the driver sends ({e}); this is a driver bug"
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
            token: SecretString::new(e.token),
            expiration: e.expiration,
        }))
}
