//! Turns a Vault response into one object's file contents.

use base64::Engine;
use serde_json::{Map, Value};
use tonic::Code;

use super::error::MountError;
use crate::secret::SecretBytes;
use crate::spc::{Content, Encoding, ObjectSpec};
use crate::vault::VaultResponse;

/// Renders a single-file object (`secretKey: name` or no `secretKey`) from
/// `response`.  `context` names the SPC for messages.  Templates and
/// `secretKey: "*"` are rendered by `template.rs` and `every_key.rs`.
pub fn render(
    object: &ObjectSpec,
    response: &VaultResponse,
    context: &str,
) -> Result<SecretBytes, MountError> {
    match &object.content {
        Content::Whole => whole_response(response, object, context),
        Content::Key(key) => one_key(object, key, response, context),
        Content::EveryKey | Content::Template(_) => Err(MountError::new(
            Code::Internal,
            format!(
                "SecretProviderClass {context}, object {:?}: rendered as a single file by mistake",
                object.name.as_str()
            ),
        )),
    }
}

/// `SecretProviderClass ns/name, object "o": GET path`, the start of messages.
pub(super) fn object_at(object: &ObjectSpec, context: &str) -> String {
    format!(
        "SecretProviderClass {context}, object {:?}: {}",
        object.name.as_str(),
        object.request
    )
}

/// The secret's keys: KV v2's inner `data.data` (as HashiCorp's provider
/// looks there first), otherwise the response's `data`.  `None` when Vault
/// sent no data.
pub(super) fn keys_of(response: &VaultResponse) -> Option<&Map<String, Value>> {
    let data = response.data.as_ref()?;
    Some(match data.0.get("data") {
        Some(Value::Object(inner)) => inner,
        _ => &data.0,
    })
}

/// [`keys_of`], or NotFound when Vault sent no data.
pub(super) fn require_keys<'a>(
    object: &ObjectSpec,
    response: &'a VaultResponse,
    context: &str,
) -> Result<&'a Map<String, Value>, MountError> {
    keys_of(response).ok_or_else(|| {
        MountError::new(
            Code::NotFound,
            format!(
                "{}: Vault returned no data. Hint: check that the path holds a secret",
                object_at(object, context)
            ),
        )
    })
}

/// Up to 20 key names, sorted, for hints (names only, never values).
pub(super) fn key_list<'a>(keys: impl Iterator<Item = &'a String>) -> String {
    let mut names: Vec<&str> = keys.map(String::as_str).take(20).collect();
    names.sort_unstable();
    if names.is_empty() {
        "(none)".to_string()
    } else {
        names.join(", ")
    }
}

/// One key's value as file contents: strings raw, other values as JSON,
/// then decoded per the object's encoding.
pub(super) fn value_contents(
    object: &ObjectSpec,
    key: &str,
    value: &Value,
    context: &str,
) -> Result<SecretBytes, MountError> {
    let text = match value {
        Value::String(s) => SecretBytes::new(s.as_bytes().to_vec()),
        other => SecretBytes::new(serde_json::to_vec(other).map_err(|e| {
            MountError::new(
                Code::Internal,
                format!(
                    "{}: cannot encode key {key:?} as JSON: {e}",
                    object_at(object, context)
                ),
            )
        })?),
    };
    decode(text, object.encoding).map_err(|why| {
        MountError::new(
            Code::InvalidArgument,
            format!(
                "{}: the value of key {key:?} is not {why}. Hint: fix the value or the object's encoding",
                object_at(object, context)
            ),
        )
    })
}

/// The value of `key`, or NotFound naming the keys that exist.
fn one_key(
    object: &ObjectSpec,
    key: &str,
    response: &VaultResponse,
    context: &str,
) -> Result<SecretBytes, MountError> {
    let fields = require_keys(object, response, context)?;
    let value = fields.get(key).ok_or_else(|| {
        MountError::new(
            Code::NotFound,
            format!(
                "{}: key {key:?} does not exist at the secret path. Hint: the keys there are: {}",
                object_at(object, context),
                key_list(fields.keys())
            ),
        )
    })?;
    value_contents(object, key, value, context)
}

/// The whole response as JSON in HashiCorp's layout, with `request_id`
/// emptied so that an unchanged secret gives an unchanged file.
fn whole_response(
    response: &VaultResponse,
    object: &ObjectSpec,
    context: &str,
) -> Result<SecretBytes, MountError> {
    if response.data.is_none() {
        return Err(MountError::new(
            Code::NotFound,
            format!(
                "SecretProviderClass {context}, object {:?}: empty response from {}",
                object.name.as_str(),
                object.request
            ),
        ));
    }
    let mut writer = Vec::with_capacity(256);
    let mut serializer = serde_json::Serializer::new(&mut writer);
    serde::Serialize::serialize(&WithoutRequestId(response), &mut serializer).map_err(|e| {
        MountError::new(
            Code::Internal,
            format!("cannot encode the Vault response: {e}"),
        )
    })?;
    Ok(SecretBytes::new(writer))
}

/// Serialises a response as if its `request_id` were empty, without cloning
/// the secret data.
struct WithoutRequestId<'a>(&'a VaultResponse);

impl serde::Serialize for WithoutRequestId<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let r = self.0;
        let optional = usize::from(r.auth.is_some())
            + usize::from(r.wrap_info.is_some())
            + usize::from(!r.mount_type.is_empty());
        let mut s = serializer.serialize_struct("Secret", 6 + optional)?;
        s.serialize_field("request_id", "")?;
        s.serialize_field("lease_id", &r.lease_id)?;
        s.serialize_field("lease_duration", &r.lease_duration)?;
        s.serialize_field("renewable", &r.renewable)?;
        s.serialize_field("data", &r.data)?;
        s.serialize_field("warnings", &r.warnings)?;
        if let Some(auth) = &r.auth {
            s.serialize_field("auth", auth)?;
        }
        if let Some(wrap_info) = &r.wrap_info {
            s.serialize_field("wrap_info", wrap_info)?;
        }
        if !r.mount_type.is_empty() {
            s.serialize_field("mount_type", &r.mount_type)?;
        }
        s.end()
    }
}

/// Decodes base64 or hex text; the error says which encoding failed.
fn decode(text: SecretBytes, encoding: Encoding) -> Result<SecretBytes, &'static str> {
    match encoding {
        Encoding::Utf8 => Ok(text),
        Encoding::Base64 => base64::engine::general_purpose::STANDARD
            .decode(text.expose())
            .map(SecretBytes::new)
            .map_err(|_| "valid base64 (standard alphabet, padded)"),
        Encoding::Hex => hex::decode(text.expose())
            .map(SecretBytes::new)
            .map_err(|_| "valid hex"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spc::parse_objects;

    fn object(extra: &str) -> ObjectSpec {
        parse_objects(&format!(
            "- objectName: o\n  secretPath: secret/data/x\n{extra}"
        ))
        .unwrap()
        .remove(0)
    }

    fn response(json: &str) -> VaultResponse {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn extracts_from_kv2_and_kv1_and_encodes_non_strings() {
        let kv2 = response(
            r#"{"request_id":"r","data":{"data":{"user":"u","n":5,"o":{"b":1,"a":2}},"metadata":{"version":1}}}"#,
        );
        assert_eq!(
            render(&object("  secretKey: user\n"), &kv2, "ns/spc")
                .unwrap()
                .expose(),
            b"u"
        );
        assert_eq!(
            render(&object("  secretKey: n\n"), &kv2, "ns/spc")
                .unwrap()
                .expose(),
            b"5"
        );
        assert_eq!(
            render(&object("  secretKey: o\n"), &kv2, "ns/spc")
                .unwrap()
                .expose(),
            br#"{"a":2,"b":1}"#
        );
        let kv1 = response(r#"{"data":{"user":"v1"}}"#);
        assert_eq!(
            render(&object("  secretKey: user\n"), &kv1, "ns/spc")
                .unwrap()
                .expose(),
            b"v1"
        );
    }

    #[test]
    fn decodes_base64_and_hex() {
        let r = response(r#"{"data":{"b":"aGVsbG8=","h":"68656c6c6f","bad":"%%%"}}"#);
        assert_eq!(
            render(&object("  secretKey: b\n  encoding: base64\n"), &r, "s")
                .unwrap()
                .expose(),
            b"hello"
        );
        assert_eq!(
            render(&object("  secretKey: h\n  encoding: HEX\n"), &r, "s")
                .unwrap()
                .expose(),
            b"hello"
        );
        let err = render(&object("  secretKey: bad\n  encoding: base64\n"), &r, "s").unwrap_err();
        assert_eq!(err.code, Code::InvalidArgument);
        assert!(!err.message.contains("%%%"));
    }

    #[test]
    fn missing_key_names_the_key_and_the_available_ones_but_no_values() {
        let r = response(r#"{"data":{"data":{"user":"secret-canary"}}}"#);
        let err = render(&object("  secretKey: pass\n"), &r, "ns/spc").unwrap_err();
        assert_eq!(err.code, Code::NotFound);
        assert!(
            err.message.contains("key \"pass\" does not exist") && err.message.contains("user"),
            "{}",
            err.message
        );
        assert!(!err.message.contains("canary"));
    }

    #[test]
    fn whole_response_empties_request_id() {
        let r = response(
            r#"{"request_id":"abc","lease_id":"","renewable":false,"lease_duration":0,"data":{"k":"v"},"warnings":null}"#,
        );
        let out = render(&object(""), &r, "s").unwrap();
        assert_eq!(
            std::str::from_utf8(out.expose()).unwrap(),
            r#"{"request_id":"","lease_id":"","lease_duration":0,"renewable":false,"data":{"k":"v"},"warnings":null}"#
        );
        assert_eq!(
            render(&object(""), &VaultResponse::default(), "s")
                .unwrap_err()
                .code,
            Code::NotFound
        );
    }
}
