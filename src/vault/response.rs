//! Vault's response envelope, kept whole: the file for an object without
//! `secretKey` is this envelope as JSON, in HashiCorp's layout.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use zeroize::Zeroize;

/// A JSON value holding secret data, wiped on drop.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretJson(pub Value);

impl Drop for SecretJson {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

impl std::fmt::Debug for SecretJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted json]")
    }
}

/// Zeroizes every string inside a JSON value.
fn wipe(value: &mut Value) {
    match value {
        Value::String(s) => s.zeroize(),
        Value::Array(items) => items.iter_mut().for_each(wipe),
        Value::Object(map) => map.values_mut().for_each(wipe),
        _ => {}
    }
}

/// A Vault API response (`api.Secret` in Vault's Go client).  Field order
/// and null/omitted rules match Go's JSON encoding of that type.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct VaultResponse {
    /// Vault's request id; emptied before writing so unchanged secrets give
    /// unchanged files.
    #[serde(default)]
    pub request_id: String,
    /// Lease of a dynamic secret, empty for static ones.
    #[serde(default)]
    pub lease_id: String,
    /// Lease duration in seconds.
    #[serde(default)]
    pub lease_duration: i64,
    /// Whether the lease can be renewed.
    #[serde(default)]
    pub renewable: bool,
    /// The payload; `null` when Vault sent none.
    #[serde(default)]
    pub data: Option<SecretJsonMap>,
    /// Warnings from Vault; `null` when none.
    #[serde(default)]
    pub warnings: Option<Vec<String>>,
    /// Auth information (login responses only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<SecretJson>,
    /// Response-wrapping information.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wrap_info: Option<SecretJson>,
    /// Type of the mount that answered (e.g. `kv`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mount_type: String,
    /// Size of the HTTP body it was parsed from (0 when not from the wire):
    /// the response cache's cost estimate, without serialising it again.
    #[serde(skip)]
    pub wire_bytes: usize,
}

/// A JSON object holding secret data, wiped on drop.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretJsonMap(pub Map<String, Value>);

impl Drop for SecretJsonMap {
    fn drop(&mut self) {
        self.0.values_mut().for_each(wipe);
    }
}

impl std::fmt::Debug for SecretJsonMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[redacted object with {} keys]", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_in_hashicorp_layout() {
        let text = r#"{"request_id":"abc","lease_id":"","renewable":false,"lease_duration":0,
            "data":{"z":1,"a":{"y":"v","b":true}},"wrap_info":null,"warnings":null,"auth":null,"mount_type":"kv"}"#;
        let mut response: VaultResponse = serde_json::from_str(text).unwrap();
        response.request_id.clear();
        assert_eq!(
            serde_json::to_string(&response).unwrap(),
            r#"{"request_id":"","lease_id":"","lease_duration":0,"renewable":false,"data":{"a":{"b":true,"y":"v"},"z":1},"warnings":null,"mount_type":"kv"}"#
        );
    }

    #[test]
    fn debug_hides_data() {
        let response: VaultResponse =
            serde_json::from_str(r#"{"data":{"password":"canary-value"}}"#).unwrap();
        assert!(!format!("{response:?}").contains("canary"));
    }
}
