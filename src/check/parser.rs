//! The server's own parser ([`crate::spc::parse`]) run over a manifest, so
//! that `check` refuses exactly what a mount would refuse.
//!
//! The parser stops at the first problem; `check` wants every one, tied to
//! its parameter or object.  So each parameter is parsed on its own (next
//! to valid placeholders), each object on its own and each of its fields on
//! its own, and finally the whole SPC without the parts already reported,
//! which leaves the problems of combinations (a missing `roleName`, two
//! auth mount parameters, duplicate objectNames).

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::documents::Manifest;
use super::finding::Finding;
use super::objects::{ObjectEntry, ObjectList};
use super::request::{PodIdentity, RequestParts};
use crate::spc::{self, Defaults, MountConfig, PARAMETERS, SpcError};

/// Stands in for `roleName` while another parameter is parsed alone.
const PLACEHOLDER_ROLE: &str = "vault-csi-check";
/// Stands in for `objectName` while another field is parsed alone.
const PLACEHOLDER_NAME: &str = "vault-csi-check";
/// Stands in for `secretPath` while another field is parsed alone.
const PLACEHOLDER_PATH: &str = "vault-csi-check/placeholder";
/// Stands in for the `nodePublishSecretRef` Secret, which lives with the
/// pod, not the SPC: every key AppRole and token auth read, with
/// placeholder values (never sent anywhere).
const PLACEHOLDER_SECRETS: &str =
    r#"{"roleId":"placeholder","secretId":"placeholder","token":"placeholder"}"#;

/// The pod `check` pretends to mount for: kubelet's attributes with
/// placeholder values in the SPC's namespace.
pub fn placeholder_pod(manifest: &Manifest) -> PodIdentity {
    PodIdentity {
        name: "vault-csi-check".into(),
        namespace: manifest
            .at
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        uid: "00000000-0000-0000-0000-000000000000".into(),
        service_account: "default".into(),
    }
}

/// Runs the parser over `manifest`; returns the parsed configuration when
/// nothing was wrong.
pub(super) fn run(
    manifest: &Manifest,
    objects: &ObjectList,
    defaults: &Defaults,
    findings: &mut Vec<Finding>,
) -> Option<MountConfig> {
    let mut reported = BTreeSet::new();
    let mut failed = BTreeSet::new();
    let before = findings.len();

    for (name, value) in &manifest.parameters {
        if name == "objects" || !PARAMETERS.contains(&name.as_str()) {
            continue;
        }
        let alone = with_parameters(
            manifest,
            [
                ("roleName", PLACEHOLDER_ROLE.to_string()),
                ("objects", placeholder_objects()),
                (name.as_str(), value.clone()),
            ],
        );
        if let Err(e) = parse(&alone, defaults) {
            failed.insert(name.clone());
            reported.insert(e.message.clone());
            // The finding names the parameter; do not say it twice.
            let text = e
                .message
                .strip_prefix(&format!("{name}: "))
                .unwrap_or(&e.message);
            let (message, fix) = split_fix(text, parameter_fix(name));
            findings.push(
                Finding::error("parameter", &manifest.at, message)
                    .parameter(name)
                    .fix(fix),
            );
        }
    }

    let substitute = check_objects(manifest, objects, findings, &mut reported);

    let mut whole = manifest.clone();
    whole.parameters.retain(|k, _| !failed.contains(k));
    if let Some(text) = substitute {
        whole.parameters.insert("objects".into(), text);
    }
    // Each round reports one problem of a combination and repairs it (the
    // parameter named is dropped, or a placeholder stands in for a missing
    // one), so the next round can find the next problem.
    for _ in 0..=PARAMETERS.len() {
        let e = match parse(&whole, defaults) {
            Ok(config) if findings.len() == before => return Some(config),
            Ok(_) => return None,
            Err(e) => e,
        };
        if reported.contains(&e.message) || is_duplicate_error(&e, objects) {
            return None;
        }
        let parameter = first_parameter_named(&e.message);
        let (message, fix) = split_fix(&e.message, parameter.map_or(GENERIC_FIX, parameter_fix));
        let mut finding = Finding::error("parameter", &manifest.at, message).fix(fix);
        if let Some(parameter) = parameter {
            finding = finding.parameter(parameter);
        }
        findings.push(finding);
        reported.insert(e.message.clone());
        match parameter {
            Some(p) if whole.parameters.remove(p).is_none() => {
                let placeholder = match p {
                    "roleName" => PLACEHOLDER_ROLE.to_string(),
                    "objects" => placeholder_objects(),
                    _ => return None,
                };
                whole.parameters.insert(p.to_string(), placeholder);
            }
            Some(_) => {}
            None => return None,
        }
    }
    None
}

/// The parameter a parser message names first.
fn first_parameter_named(message: &str) -> Option<&'static str> {
    PARAMETERS
        .iter()
        .filter_map(|p| message.find(p).map(|at| (at, *p)))
        .min()
        .map(|(_, p)| p)
}

/// Reports what the parser refuses in `objects`, per object and field.
/// Returns replacement `objects` text (the objects that parse, each name
/// once) when the original does not parse, so the whole-SPC parse can go on.
fn check_objects(
    manifest: &Manifest,
    objects: &ObjectList,
    findings: &mut Vec<Finding>,
    reported: &mut BTreeSet<String>,
) -> Option<String> {
    let text = manifest.parameters.get("objects")?;
    let Err(whole) = spc::parse_objects(text) else {
        return None;
    };
    reported.insert(whole.message.clone());
    let entries = match objects {
        ObjectList::Entries(entries) if entries.len() <= spc::MAX_OBJECTS => entries,
        ObjectList::Missing => return None,
        ObjectList::Entries(_) => {
            // Too many objects: the list's own error, not one per object.
            let (message, limit) = split_fix(&whole.message, "");
            let fix = format!("{limit}: split the objects over several SecretProviderClasses");
            findings.push(
                Finding::error("objects", &manifest.at, message)
                    .parameter("objects")
                    .fix(fix),
            );
            return Some(placeholder_objects());
        }
        ObjectList::Invalid => {
            findings.push(
                Finding::error("objects-yaml", &manifest.at, whole.message.clone())
                    .parameter("objects")
                    .fix(
                        "write objects as a block string (`objects: |`) holding a YAML list of \
                         mappings, each with at least objectName and secretPath",
                    ),
            );
            return Some(placeholder_objects());
        }
    };
    let mut valid: Vec<&Map<String, Value>> = Vec::new();
    let mut names = BTreeSet::new();
    let mut any_object_error = false;
    for entry in entries {
        let Some(fields) = &entry.fields else {
            any_object_error = true;
            findings.push(
                Finding::error(
                    "object",
                    &manifest.at,
                    format!("{} is not a mapping", entry.label()),
                )
                .object(entry.label())
                .parameter("objects")
                .fix("write each object as a mapping with objectName and secretPath"),
            );
            continue;
        };
        if check_object(manifest, entry, fields, findings, reported) {
            any_object_error = true;
        } else if names.insert(entry.name.clone()) {
            valid.push(fields);
        }
    }
    if !any_object_error && objects.duplicates().is_empty() {
        // A problem of the list as a whole (empty, too long).
        let (message, fix) = split_fix(&whole.message, parameter_fix("objects"));
        findings.push(
            Finding::error("objects", &manifest.at, message)
                .parameter("objects")
                .fix(fix),
        );
    }
    Some(if valid.is_empty() {
        placeholder_objects()
    } else {
        Value::Array(valid.into_iter().cloned().map(Value::Object).collect()).to_string()
    })
}

/// Parses one object field by field and then whole; reports what fails.
/// Returns whether anything did.
fn check_object(
    manifest: &Manifest,
    entry: &ObjectEntry,
    fields: &Map<String, Value>,
    findings: &mut Vec<Finding>,
    reported: &mut BTreeSet<String>,
) -> bool {
    let known = spc::object_fields();
    let mut messages = BTreeSet::new();
    for (field, value) in fields {
        if !known.contains(&field.as_str()) {
            continue;
        }
        let mut alone = Map::new();
        alone.insert("objectName".into(), json!(PLACEHOLDER_NAME));
        alone.insert("secretPath".into(), json!(PLACEHOLDER_PATH));
        alone.insert(field.clone(), value.clone());
        if let Err(e) = parse_one(&alone) {
            let name = alone
                .get("objectName")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let message = strip_object_prefix(&e.message, name).to_string();
            let (text, fix) = split_fix(&message, field_fix(field));
            findings.push(
                Finding::error("object", &manifest.at, text)
                    .object(entry.label())
                    .parameter(field)
                    .fix(fix),
            );
            reported.insert(e.message);
            messages.insert(message);
        }
    }
    if let Err(e) = parse_one(fields) {
        let message = strip_object_prefix(&e.message, &entry.name).to_string();
        if !messages.contains(&message) {
            let field = known
                .iter()
                .filter_map(|f| message.find(f).map(|at| (at, *f)))
                .min()
                .map(|(_, f)| f);
            let (text, fix) = split_fix(&message, field.map_or(GENERIC_FIX, field_fix));
            let mut finding = Finding::error("object", &manifest.at, text)
                .object(entry.label())
                .fix(fix);
            if let Some(field) = field {
                finding = finding.parameter(field);
            }
            findings.push(finding);
            messages.insert(message);
        }
        reported.insert(e.message);
    }
    !messages.is_empty()
}

/// Whether the parser's complaint is one a rule reports per object: the
/// duplicate objectNames of `duplicate-object-name`, or the file that must
/// be a folder of `object-name-conflict`.
fn is_duplicate_error(error: &SpcError, objects: &ObjectList) -> bool {
    (!objects.duplicates().is_empty() && error.message.starts_with("duplicate objectName"))
        || error.message.contains("to be a directory, but object")
}

/// Parses a one-object list.
fn parse_one(object: &Map<String, Value>) -> Result<Vec<spc::ObjectSpec>, SpcError> {
    // JSON is YAML: the object goes to the real parser unchanged.
    spc::parse_objects(&Value::Array(vec![Value::Object(object.clone())]).to_string())
}

/// The parser's message without its `object "name": ` prefix (the finding
/// names the object itself).  `name` is the objectName parsed, alone in
/// its list.
fn strip_object_prefix<'a>(message: &'a str, name: &str) -> &'a str {
    let prefix = if name.is_empty() {
        "object #1: ".to_string()
    } else {
        format!("object {name:?}: ")
    };
    message.strip_prefix(&prefix).unwrap_or(message)
}

/// A valid one-object list.
fn placeholder_objects() -> String {
    json!([{ "objectName": PLACEHOLDER_NAME, "secretPath": PLACEHOLDER_PATH }]).to_string()
}

/// `manifest` with some parameters only.
fn with_parameters<'a>(
    manifest: &Manifest,
    parameters: impl IntoIterator<Item = (&'a str, String)>,
) -> Manifest {
    Manifest {
        parameters: parameters
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        ..manifest.clone()
    }
}

/// Runs the server's parser over the request the driver would send.
fn parse(manifest: &Manifest, defaults: &Defaults) -> Result<MountConfig, SpcError> {
    let request = manifest.mount_request(
        &placeholder_pod(manifest),
        &RequestParts {
            secrets: Some(PLACEHOLDER_SECRETS),
            ..RequestParts::default()
        },
    );
    spc::parse(&request, defaults)
}

/// Fix used when nothing more specific is known.
const GENERIC_FIX: &str = "see \"SecretProviderClass parameters\" in the README";

/// The parser's messages mostly read "what is wrong; what to do": split
/// them there, else use `fallback` as the fix.
fn split_fix(message: &str, fallback: &str) -> (String, String) {
    match message.split_once("; ") {
        Some((what, fix)) => (what.to_string(), fix.to_string()),
        None => (message.to_string(), fallback.to_string()),
    }
}

/// What to do about a parameter the parser refused.
fn parameter_fix(name: &str) -> &'static str {
    match name {
        "roleName" => {
            "add roleName: the Vault role bound to the pod's service account (auth/<mount>/role/<name>)"
        }
        "vaultAddress" => "use https://host:port, http://host:port or unix:///path/to/agent.sock",
        "vaultAuthMethod" => "use kubernetes, jwt, approle or token",
        "vaultSkipTLSVerify" | "staleIfError" => "use \"true\" or \"false\"",
        "cacheTTL" => "use a duration such as 30s or 2m",
        "dynamicSecretReuse" => "use identity, pod or false",
        "vaultAuthMountPath" | "vaultKubernetesMountPath" => {
            "set only vaultAuthMountPath, to the auth method's mount path (e.g. kubernetes)"
        }
        "objects" => "list at least one object with objectName and secretPath",
        _ => GENERIC_FIX,
    }
}

/// What to do about an object field the parser refused.
fn field_fix(field: &str) -> &'static str {
    match field {
        "objectName" => "use a relative file name such as db-password or tls/tls.crt",
        "secretPath" => "give the Vault API path, e.g. secret/data/app",
        "method" => "use GET, PUT, POST or LIST",
        "encoding" => "use utf-8, base64 or hex",
        "filePermission" => "write the mode in octal with a leading 0, e.g. 0600",
        "cache" => "use \"true\" or \"false\"",
        "template" => {
            "fix the template at the line named; its syntax is MiniJinja's (see the README's Templates section)"
        }
        _ => "see the objects table in the README",
    }
}

#[cfg(test)]
mod tests {
    use super::{split_fix, strip_object_prefix};

    #[test]
    fn object_prefixes_are_stripped_even_with_colons_in_names() {
        assert_eq!(strip_object_prefix("object \"a\": bad", "a"), "bad");
        assert_eq!(strip_object_prefix("object \"a: b\": bad", "a: b"), "bad");
        assert_eq!(strip_object_prefix("object #1: bad", ""), "bad");
        assert_eq!(strip_object_prefix("other: bad", "a"), "other: bad");
    }

    #[test]
    fn messages_split_at_the_advice() {
        assert_eq!(
            split_fix("x is wrong; do y", "z"),
            ("x is wrong".into(), "do y".into())
        );
        assert_eq!(
            split_fix("x is wrong", "z"),
            ("x is wrong".into(), "z".into())
        );
    }
}
