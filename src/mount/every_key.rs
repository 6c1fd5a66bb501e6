//! `secretKey: "*"`: every key of a secret as its own file
//! `objectName/<key>`.  Key names come from Vault, so each must be one safe
//! path element and must not land on another object's file or directory.

use tonic::Code;

use super::error::MountError;
use super::render::{object_at, require_keys, value_contents};
use crate::secret::SecretBytes;
use crate::spc::{ObjectSpec, is_safe_key};
use crate::vault::VaultResponse;

/// The files of a `secretKey: "*"` object, as `(key, contents)` sorted by
/// key; empty when the secret has no keys.
pub fn render(
    object: &ObjectSpec,
    response: &VaultResponse,
    objects: &[ObjectSpec],
    context: &str,
) -> Result<Vec<(String, SecretBytes)>, MountError> {
    let keys = require_keys(object, response, context)?;
    let mut files = Vec::with_capacity(keys.len());
    for (key, value) in keys {
        check_key(object, key, objects, context)?;
        files.push((key.clone(), value_contents(object, key, value, context)?));
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(files)
}

/// The key is a safe file name, and `objectName/<key>` is neither another
/// object's file (or `secretKey: "*"` directory) nor a directory another
/// object writes into.
fn check_key(
    object: &ObjectSpec,
    key: &str,
    objects: &[ObjectSpec],
    context: &str,
) -> Result<(), MountError> {
    let at = || format!("{} (secretKey \"*\")", object_at(object, context));
    if !is_safe_key(key) {
        return Err(MountError::new(
            Code::InvalidArgument,
            format!(
                "{}: key {} cannot be a file name: a key must be one path element (no '/'), not \
                 empty, not \".\" or \"..\", not starting with \"..\", at most 255 bytes. Hint: \
                 rename the key in Vault, or read it with an object of its own (secretKey: <key>)",
                at(),
                show_key(key)
            ),
        ));
    }
    let path = format!("{}/{key}", object.name.as_str());
    let below = format!("{path}/");
    if let Some(other) = objects.iter().find(|o| {
        !std::ptr::eq(*o, object)
            && (o.name.as_str() == path || o.name.as_str().starts_with(&below))
    }) {
        return Err(MountError::new(
            Code::InvalidArgument,
            format!(
                "{}: key {} would be written to {path:?}, where object {:?} is written. Hint: \
                 rename that object or the key",
                at(),
                show_key(key),
                other.name.as_str()
            ),
        ));
    }
    Ok(())
}

/// A key name for a message: quoted, and cut at 80 characters (a key may be
/// long; its name is not secret, but a message should stay readable).
fn show_key(key: &str) -> String {
    if key.chars().count() <= 80 {
        format!("{key:?}")
    } else {
        let head: String = key.chars().take(80).collect();
        format!("{head:?}… ({} bytes)", key.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spc::parse_objects;

    fn response(json: &str) -> VaultResponse {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn every_key_sorted_with_encoding() {
        let objects = parse_objects(
            "- objectName: all\n  secretPath: secret/data/x\n  secretKey: \"*\"\n  encoding: base64\n",
        )
        .unwrap();
        let r = response(r#"{"data":{"data":{"b":"aGk=","a":"eW8="},"metadata":{}}}"#);
        let files = render(&objects[0], &r, &objects, "s").unwrap();
        let names: Vec<&str> = files.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(files[0].1.expose(), b"yo");
        let empty = response(r#"{"data":{"data":{},"metadata":{}}}"#);
        assert!(
            render(&objects[0], &empty, &objects, "s")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn unsafe_keys_are_named() {
        let objects =
            parse_objects("- objectName: all\n  secretPath: kv/x\n  secretKey: \"*\"\n").unwrap();
        for key in ["../x", "a/b", "..hidden", ".", "", &"k".repeat(256)] {
            let r = serde_json::json!({"data": {key: "canary-value"}});
            let r: VaultResponse = serde_json::from_value(r).unwrap();
            let err = render(&objects[0], &r, &objects, "s").unwrap_err();
            assert_eq!(err.code, Code::InvalidArgument, "{key}");
            assert!(
                err.message.contains("cannot be a file name"),
                "{}",
                err.message
            );
            assert!(!err.message.contains("canary"), "{}", err.message);
        }
    }

    #[test]
    fn collisions_with_other_objects_are_named() {
        let objects = parse_objects(
            "- objectName: all\n  secretPath: kv/x\n  secretKey: \"*\"\n\
             - objectName: all/user\n  secretPath: kv/y\n\
             - objectName: all/dir/f\n  secretPath: kv/y\n",
        )
        .unwrap();
        for key in ["user", "dir"] {
            let r: VaultResponse =
                serde_json::from_value(serde_json::json!({"data": {key: "v"}})).unwrap();
            let err = render(&objects[0], &r, &objects, "s").unwrap_err();
            assert_eq!(err.code, Code::InvalidArgument);
            assert!(
                err.message.contains(&format!("key {key:?}")),
                "{}",
                err.message
            );
        }
        let r: VaultResponse =
            serde_json::from_value(serde_json::json!({"data": {"other": "v"}})).unwrap();
        assert_eq!(render(&objects[0], &r, &objects, "s").unwrap().len(), 1);
    }
}
