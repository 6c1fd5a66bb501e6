//! Reading YAML files into SecretProviderClass manifests.
//!
//! A file may hold many documents (`---`), and a document may be a
//! `kind: List` (as `kubectl get … -o yaml` prints).  Documents of other
//! kinds are skipped with a note, so `check` can run over a whole manifests
//! folder.  Only what the driver passes on is read: `metadata`,
//! `spec.provider`, `spec.parameters` and `spec.secretObjects`.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value};
use serde_saphyr::Spanned;

use super::finding::{DocumentRef, Finding};

/// The SecretProviderClass API group and the version to write.
const API_VERSION: &str = "secrets-store.csi.x-k8s.io/v1";
/// The deprecated version the driver still serves.
const API_VERSION_ALPHA: &str = "secrets-store.csi.x-k8s.io/v1alpha1";
/// Largest input read, in bytes: far above any manifest, and a bound on memory.
const MAX_INPUT_BYTES: u64 = 16 * 1024 * 1024;
/// How deep a folder given on the command line is searched.
const MAX_FOLDER_DEPTH: usize = 16;

/// One input's text, or why it could not be read.
#[derive(Debug)]
pub struct Input {
    /// The name to show (`-` for stdin).
    pub name: String,
    /// The text.
    pub text: Result<String, String>,
}

/// A SecretProviderClass for the `vault` provider, as the driver sees it.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Where it was found, with its name and namespace.
    pub at: DocumentRef,
    /// `spec.parameters` as the strings the driver passes; values written
    /// as numbers or booleans are turned into their text (and reported).
    pub parameters: BTreeMap<String, String>,
    /// `spec.secretObjects`: Kubernetes Secrets synced from mounted objects.
    pub secret_objects: Vec<SecretObject>,
}

/// One entry of `spec.secretObjects`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SecretObject {
    /// Name of the Kubernetes Secret.
    pub secret_name: String,
    /// Its `type` (`Opaque`, `kubernetes.io/tls`, …).
    #[serde(rename = "type")]
    pub kind: String,
    /// Which mounted object fills which key.
    pub data: Vec<SecretObjectData>,
}

/// One `data` entry of a `secretObjects` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SecretObjectData {
    /// The `objectName` whose file content becomes the value.
    pub object_name: String,
    /// The key in the Secret.
    pub key: String,
}

/// What one document turned out to be.
#[derive(Debug)]
pub enum Entry {
    /// A SecretProviderClass for `provider: vault`.
    Spc(Manifest),
    /// Anything else, with a note saying why it was not checked.
    Skipped {
        /// The document.
        at: DocumentRef,
        /// Its `kind`, if it has one.
        kind: Option<String>,
        /// Why it was skipped.
        note: String,
    },
}

/// Everything read from the inputs.
#[derive(Debug, Default)]
pub struct Documents {
    /// Documents in input order.
    pub entries: Vec<Entry>,
    /// Problems found while reading (unreadable files, invalid YAML,
    /// malformed SecretProviderClasses).
    pub findings: Vec<Finding>,
}

/// Reads `paths`: files, folders (their `*.yaml` / `*.yml` files, sorted,
/// hidden entries skipped) or `-` for stdin.
pub fn read_inputs(paths: &[String]) -> Vec<Input> {
    let mut inputs = Vec::new();
    for path in paths {
        if path == "-" {
            inputs.push(Input {
                name: "-".into(),
                text: read_limited(std::io::stdin().lock()),
            });
        } else if Path::new(path).is_dir() {
            let mut files = Vec::new();
            match yaml_files(Path::new(path), 0, &mut files) {
                Ok(()) if files.is_empty() => inputs.push(Input {
                    name: path.clone(),
                    text: Err("the folder holds no .yaml or .yml files".into()),
                }),
                Ok(()) => inputs.extend(files.into_iter().map(|file| read_file(&file))),
                Err(e) => inputs.push(Input {
                    name: path.clone(),
                    text: Err(e),
                }),
            }
        } else {
            inputs.push(read_file(Path::new(path)));
        }
    }
    inputs
}

/// Reads one file.
fn read_file(path: &Path) -> Input {
    let name = path.display().to_string();
    let text = std::fs::File::open(path)
        .map_err(|e| format!("cannot read it: {e}"))
        .and_then(read_limited);
    Input { name, text }
}

/// Reads at most [`MAX_INPUT_BYTES`] of UTF-8.
fn read_limited(reader: impl std::io::Read) -> Result<String, String> {
    let mut bytes = Vec::new();
    reader
        .take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read it: {e}"))?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(format!(
            "it is larger than {} MiB; no manifest is that large",
            MAX_INPUT_BYTES / 1024 / 1024
        ));
    }
    String::from_utf8(bytes).map_err(|_| "it is not UTF-8 text".to_string())
}

/// Collects `*.yaml` and `*.yml` files under `dir`, sorted by path.
fn yaml_files(dir: &Path, depth: usize, out: &mut Vec<std::path::PathBuf>) -> Result<(), String> {
    if depth > MAX_FOLDER_DEPTH {
        return Ok(());
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            !p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'))
        })
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            yaml_files(&path, depth + 1, out)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e == "yaml" || e == "yml")
        {
            out.push(path);
        }
    }
    Ok(())
}

/// Splits every input into documents and reads each.
pub fn parse_inputs(inputs: &[Input]) -> Documents {
    let mut documents = Documents::default();
    for input in inputs {
        match &input.text {
            Ok(text) => parse_text(&input.name, text, &mut documents),
            Err(why) => documents.findings.push(
                Finding::error(
                    "unreadable-file",
                    &DocumentRef::file(&input.name),
                    format!("{}: {why}", input.name),
                )
                .fix("pass a readable YAML file, a folder of them, or - for stdin"),
            ),
        }
    }
    documents
}

/// Reads the documents of one file.
pub fn parse_text(file: &str, text: &str, out: &mut Documents) {
    let mut reader = std::io::Cursor::new(text.as_bytes());
    let mut index = 0;
    for document in serde_saphyr::read::<_, Spanned<Value>>(&mut reader) {
        index += 1;
        let at = DocumentRef {
            document: Some(index),
            ..DocumentRef::file(file)
        };
        match document {
            Ok(spanned) => {
                let at = DocumentRef {
                    line: Some(spanned.referenced.line()),
                    ..at
                };
                read_document(at, spanned.value, out);
            }
            Err(e) => out.findings.push(
                Finding::error(
                    "yaml",
                    &at,
                    format!("not valid YAML: {}", first_line(&e.to_string())),
                )
                .fix("fix the YAML syntax at the line named; documents after a syntax error are not read"),
            ),
        }
    }
}

/// Classifies one document: a `vault` SecretProviderClass, a list of
/// documents, or something to skip.
fn read_document(mut at: DocumentRef, value: Value, out: &mut Documents) {
    let Value::Object(object) = value else {
        out.entries.push(Entry::Skipped {
            at,
            kind: None,
            note: "not a Kubernetes object (the document is not a mapping)".into(),
        });
        return;
    };
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .map(str::to_string);
    let metadata = object.get("metadata").and_then(Value::as_object);
    let text_of = |key: &str| {
        metadata
            .and_then(|m| m.get(key))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    at.name = text_of("name");
    at.namespace = text_of("namespace");
    match kind.as_deref() {
        Some("SecretProviderClass") => read_spc(at, &object, out),
        Some(k) if k.ends_with("List") && object.get("items").is_some_and(Value::is_array) => {
            let Some(Value::Array(items)) = object.get("items") else {
                return;
            };
            for (n, item) in items.iter().enumerate() {
                let item_at = DocumentRef {
                    item: Some(n + 1),
                    name: None,
                    namespace: None,
                    ..at.clone()
                };
                read_document(item_at, item.clone(), out);
            }
        }
        Some(k) => {
            let note = format!("{k} is not a SecretProviderClass");
            out.entries.push(Entry::Skipped {
                at,
                kind: kind.clone(),
                note,
            });
        }
        None => out.entries.push(Entry::Skipped {
            at,
            kind: None,
            note: "not a Kubernetes object (no kind)".into(),
        }),
    }
}

/// Reads a SecretProviderClass, reporting what Kubernetes or the driver
/// would refuse.
fn read_spc(at: DocumentRef, object: &Map<String, Value>, out: &mut Documents) {
    let findings = &mut out.findings;
    match object.get("apiVersion").and_then(Value::as_str) {
        Some(API_VERSION) => {}
        Some(API_VERSION_ALPHA) => findings.push(
            Finding::warning(
                "api-version",
                &at,
                format!("apiVersion {API_VERSION_ALPHA} is deprecated"),
            )
            .fix(format!("write apiVersion: {API_VERSION}")),
        ),
        other => findings.push(
            Finding::error(
                "api-version",
                &at,
                format!(
                    "apiVersion {} is not a SecretProviderClass version",
                    other.map_or_else(|| "(missing)".to_string(), |v| format!("{v:?}"))
                ),
            )
            .fix(format!("write apiVersion: {API_VERSION}")),
        ),
    }
    if at.name.is_none() {
        findings.push(
            Finding::error("metadata", &at, "metadata.name is missing")
                .fix("give the SecretProviderClass a name; pods refer to it by name"),
        );
    }
    let spec = object.get("spec").and_then(Value::as_object);
    let provider = spec.and_then(|s| s.get("provider")).and_then(Value::as_str);
    match provider {
        Some("vault") => {}
        None | Some("") => {
            findings.push(
                Finding::error(
                    "provider",
                    &at,
                    "spec.provider is not set; the driver refuses the SecretProviderClass (\"provider not set\")",
                )
                .fix("set spec.provider: vault"),
            );
            return;
        }
        Some(other) => {
            findings.push(
                Finding::warning(
                    "provider",
                    &at,
                    format!("spec.provider is {other:?}, not vault; its parameters were not checked"),
                )
                .fix("set spec.provider: vault if this SecretProviderClass is meant for Vault or OpenBao"),
            );
            return;
        }
    }
    let parameters = read_parameters(&at, spec.and_then(|s| s.get("parameters")), findings);
    let secret_objects =
        read_secret_objects(&at, spec.and_then(|s| s.get("secretObjects")), findings);
    out.entries.push(Entry::Spc(Manifest {
        at,
        parameters,
        secret_objects,
    }));
}

/// `spec.parameters`: a map of strings.  Other values are reported (the API
/// server refuses them) and then read as their text so checking goes on.
fn read_parameters(
    at: &DocumentRef,
    value: Option<&Value>,
    findings: &mut Vec<Finding>,
) -> BTreeMap<String, String> {
    let mut parameters = BTreeMap::new();
    let map = match value {
        Some(Value::Object(map)) if !map.is_empty() => map,
        Some(Value::Object(_)) | Some(Value::Null) | None => {
            findings.push(
                Finding::error(
                    "parameters",
                    at,
                    "spec.parameters is empty; the driver refuses the SecretProviderClass (\"parameters not set\")",
                )
                .fix("add spec.parameters with at least roleName and objects"),
            );
            return parameters;
        }
        Some(_) => {
            findings.push(
                Finding::error("parameters", at, "spec.parameters is not a mapping")
                    .fix("write spec.parameters as `name: \"value\"` lines"),
            );
            return parameters;
        }
    };
    for (key, value) in map {
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Bool(_) | Value::Number(_) => {
                findings.push(
                    Finding::error(
                        "parameter-type",
                        at,
                        format!(
                            "parameter {key} is the {} {value}, not a string; the API server refuses it \
                             (parameters is a map of strings)",
                            if value.is_boolean() { "boolean" } else { "number" }
                        ),
                    )
                    .parameter(key)
                    .fix(format!("quote the value: {key}: \"{value}\"")),
                );
                value.to_string()
            }
            Value::Null => {
                findings.push(
                    Finding::error(
                        "parameter-type",
                        at,
                        format!("parameter {key} has no value"),
                    )
                    .parameter(key)
                    .fix(format!("give {key} a quoted value, or remove it")),
                );
                continue;
            }
            Value::Array(_) | Value::Object(_) => {
                let hint = if key == "objects" {
                    "write objects as a block string: `objects: |` followed by the indented YAML list"
                } else {
                    "write the value as one quoted string"
                };
                findings.push(
                    Finding::error(
                        "parameter-type",
                        at,
                        format!("parameter {key} is a YAML structure, not a string; the API server refuses it"),
                    )
                    .parameter(key)
                    .fix(hint),
                );
                // As JSON text (which is YAML), so the rest is still checked.
                value.to_string()
            }
        };
        parameters.insert(key.clone(), text);
    }
    parameters
}

/// `spec.secretObjects`, if present.
fn read_secret_objects(
    at: &DocumentRef,
    value: Option<&Value>,
    findings: &mut Vec<Finding>,
) -> Vec<SecretObject> {
    match value {
        None | Some(Value::Null) => Vec::new(),
        Some(value) => Vec::<SecretObject>::deserialize(value).unwrap_or_else(|e| {
            findings.push(
                Finding::error(
                    "secret-objects",
                    at,
                    format!("spec.secretObjects is not a list of {{secretName, type, data}}: {e}"),
                )
                .fix("write each entry as secretName, type and data: [{objectName, key}]"),
            );
            Vec::new()
        }),
    }
}

/// The first line of a parser message (the rest is a source excerpt).
fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}
