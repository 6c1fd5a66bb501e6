//! Entry points shared by the cargo-fuzz targets in `fuzz/` and the stable
//! replay test `tests/fuzz_corpus.rs`, so both exercise exactly the same
//! code.  Each takes raw bytes, runs a parser on them and panics only when
//! an invariant breaks: a panic here is the bug report a fuzzer keeps.
//! Not part of the provider's interface.

use crate::mount::MountError;
use crate::proto::MountRequest;
use crate::spc::{self, Defaults, MAX_MESSAGE_BYTES, MAX_OBJECTS, ObjectName, SpcError};

/// Parses `data` as a mount request's `attributes` JSON, with the secrets
/// and file mode a driver sends.
pub fn parse_attributes(data: &[u8]) {
    let request = MountRequest {
        attributes: String::from_utf8_lossy(data).into_owned(),
        secrets: "null".into(),
        target_path: "/var/lib/kubelet/pods/uid/volumes/kubernetes.io~csi/v/mount".into(),
        permission: "420".into(),
        current_object_version: Vec::new(),
    };
    match spc::parse(&request, &Defaults::default()) {
        Ok(config) => check_objects(&config.objects),
        Err(error) => check_error(&error),
    }
}

/// Parses `data` as the `objects` YAML of a SecretProviderClass.
pub fn parse_objects(data: &[u8]) {
    match spc::parse_objects(&String::from_utf8_lossy(data)) {
        Ok(objects) => check_objects(&objects),
        Err(error) => check_error(&error),
    }
}

/// A parse that succeeded kept the promised limits and path rules.
fn check_objects(objects: &[spc::ObjectSpec]) {
    assert!(
        (1..=MAX_OBJECTS).contains(&objects.len()),
        "{} objects passed the parser",
        objects.len()
    );
    for object in objects {
        let name = object.name.as_str();
        assert_eq!(
            ObjectName::parse(name).as_ref().map(ObjectName::as_str),
            Ok(name),
            "an accepted objectName does not parse again"
        );
        let path = &object.request.path;
        assert!(
            !path.is_empty()
                && !path.starts_with('/')
                && path
                    .split('/')
                    .all(|p| !p.is_empty() && p != "." && p != ".."),
            "secretPath {path:?} passed the parser"
        );
        assert!(object.mode.is_none_or(|m| m <= 0o777));
    }
}

/// A rejection is a bounded, non-empty message for the person who wrote
/// the SecretProviderClass, with the gRPC code for bad input.
fn check_error(error: &SpcError) {
    assert!(!error.message.trim().is_empty(), "empty error message");
    assert!(
        error.message.len() <= MAX_MESSAGE_BYTES,
        "a {}-byte error message",
        error.message.len()
    );
    let code = MountError::from_spc(error.clone()).code;
    let expected = if error.missing_credential {
        tonic::Code::FailedPrecondition
    } else {
        tonic::Code::InvalidArgument
    };
    assert_eq!(code, expected, "{}", error.message);
}
