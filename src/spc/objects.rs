//! The `objects` parameter: a YAML list of the secrets to mount.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::shown::Shown;
use super::template::Template;
use super::{MAX_OBJECTS, MAX_OBJECTS_YAML_BYTES, SpcError};

/// One entry of `objects` as written, before validation.  Field names are
/// HashiCorp's; unknown keys are ignored as there.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct RawObject {
    object_name: String,
    secret_path: String,
    secret_key: String,
    secret_args: Option<Map<String, Value>>,
    method: String,
    encoding: String,
    file_permission: Option<i64>,
    cache: Option<Value>,
    template: Option<String>,
}

/// `secretKey` value that writes every key of the secret as its own file.
const EVERY_KEY: &str = "*";

/// A validated relative file path inside the volume.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectName(String);

impl ObjectName {
    /// Validates a name with the driver's path rules: relative, clean, no
    /// `..`, at most 255 bytes a component and 4096 in all.
    pub fn parse(name: &str) -> Result<Self, String> {
        if name.is_empty() {
            return Err("objectName is empty".into());
        }
        if name.len() > 4096 {
            return Err(format!(
                "objectName is {} bytes long; the limit is 4096",
                name.len()
            ));
        }
        if name.starts_with('/') {
            return Err(format!(
                "objectName {} is absolute; use a relative file name",
                Shown(name)
            ));
        }
        if name.starts_with("..") {
            return Err(format!("objectName {} starts with \"..\"", Shown(name)));
        }
        if name.contains('\0') {
            return Err("objectName contains a NUL byte".into());
        }
        for part in name.split('/') {
            match part {
                "" => {
                    return Err(format!(
                        "objectName {} has an empty path element or a trailing '/'",
                        Shown(name)
                    ));
                }
                "." => {
                    return Err(format!(
                        "objectName {} has a \".\" element; write the path without it",
                        Shown(name)
                    ));
                }
                ".." => {
                    return Err(format!("objectName {} has a \"..\" element", Shown(name)));
                }
                p if p.len() > 255 => {
                    return Err(format!(
                        "objectName {} has an element over 255 bytes",
                        Shown(name)
                    ));
                }
                _ => {}
            }
        }
        Ok(Self(name.to_string()))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ObjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// HTTP method of a Vault request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Method {
    /// Read (the default).
    Get,
    /// Write; PKI `issue`, transit and similar endpoints.
    Put,
    /// Write, same as PUT for Vault.
    Post,
    /// Vault's LIST.
    List,
}

impl Method {
    /// The method's HTTP name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Put => "PUT",
            Method::Post => "POST",
            Method::List => "LIST",
        }
    }

    /// Whether repeating the request can have no side effect in Vault.
    pub fn is_read(self) -> bool {
        matches!(self, Method::Get | Method::List)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the extracted value is encoded in Vault (it is decoded before writing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Encoding {
    /// Written as is.
    Utf8,
    /// Standard, padded base64 text in Vault; binary in the file.
    Base64,
    /// Hex text in Vault; binary in the file.
    Hex,
}

/// One Vault request.  Objects with equal keys share a single request within
/// a Mount, so a username and password come from the same credential.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestKey {
    /// HTTP method.
    pub method: Method,
    /// API path without the `v1/` prefix or query, e.g. `secret/data/app`.
    pub path: String,
    /// Query parameters from `?…` in `secretPath`.
    pub query: Vec<(String, String)>,
    /// JSON body from `secretArgs` (canonical: keys sorted), for writes.
    pub body: Option<String>,
}

impl fmt::Display for RequestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)?;
        if !self.query.is_empty() {
            let query: String = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&self.query)
                .finish();
            write!(f, "?{query}")?;
        }
        Ok(())
    }
}

/// What an object writes from its Vault response.
#[derive(Debug, Clone)]
pub enum Content {
    /// The whole response as JSON (no `secretKey`).
    Whole,
    /// One key's value (`secretKey: name`).
    Key(String),
    /// Every key as its own file `objectName/<key>` (`secretKey: "*"`);
    /// `objectName` is then a directory.
    EveryKey,
    /// A file rendered from the secret's keys and other objects (`template`).
    Template(Template),
}

/// One validated object of a SecretProviderClass.
#[derive(Debug, Clone)]
pub struct ObjectSpec {
    /// File path inside the volume (a directory for [`Content::EveryKey`]),
    /// and the ObjectVersion id.
    pub name: ObjectName,
    /// The Vault request that yields the object.
    pub request: RequestKey,
    /// What is written from the response.
    pub content: Content,
    /// Encoding of the extracted value(s); always UTF-8 for templates.
    pub encoding: Encoding,
    /// File mode from `filePermission`, if set.
    pub mode: Option<u32>,
    /// Whether a read may be answered from the response cache (`cache`,
    /// default true).
    pub cache: bool,
    /// Canonical JSON of the object's configuration; part of its version so
    /// equal content in two objects gives different versions.
    pub fingerprint: String,
}

/// The configuration that goes into an object's version.
#[derive(Serialize)]
struct Fingerprint<'a> {
    object_name: &'a str,
    method: Method,
    path: &'a str,
    query: &'a [(String, String)],
    body: Option<&'a str>,
    secret_key: Option<&'a str>,
    encoding: Encoding,
    mode: Option<u32>,
    /// Absent for objects without a template, so their versions are what
    /// they were before templates existed.
    #[serde(skip_serializing_if = "Option::is_none")]
    template: Option<&'a str>,
}

/// Parses and validates the `objects` YAML.
pub fn parse_objects(yaml: &str) -> Result<Vec<ObjectSpec>, SpcError> {
    if yaml.len() > MAX_OBJECTS_YAML_BYTES {
        return Err(SpcError::new(format!(
            "'objects' is {} bytes; the limit is {MAX_OBJECTS_YAML_BYTES}",
            yaml.len()
        )));
    }
    let raw: Option<Vec<RawObject>> =
        serde_saphyr::from_str_with_options(yaml, super::yaml_limits::options())
            .map_err(|e| SpcError::new(super::yaml_limits::describe(&e)))?;
    let raw = raw.unwrap_or_default();
    if raw.is_empty() {
        return Err(SpcError::new(
            "'objects' lists no objects; list at least one",
        ));
    }
    if raw.len() > MAX_OBJECTS {
        return Err(SpcError::new(format!(
            "'objects' lists {} objects; the limit is {MAX_OBJECTS}",
            raw.len()
        )));
    }

    let mut objects = Vec::with_capacity(raw.len());
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (index, object) in raw.iter().enumerate() {
        *seen.entry(object.object_name.as_str()).or_default() += 1;
        objects.push(parse_object(object).map_err(|message| {
            let which = if object.object_name.is_empty() {
                format!("object #{}", index + 1)
            } else {
                format!("object {}", Shown(&object.object_name))
            };
            SpcError::new(format!("{which}: {message}"))
        })?);
    }
    let duplicates: Vec<&str> = seen
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(k, _)| k)
        .collect();
    if !duplicates.is_empty() {
        return Err(SpcError::new(format!(
            "duplicate objectName: {}; every object needs its own file name",
            duplicates.join(", ")
        )));
    }
    check_directories(&objects)?;
    Ok(objects)
}

/// The driver writes files by relative path, so a file `a` and a file `a/x`
/// (or the directory of a `secretKey: "*"` object `a`) cannot both exist.
fn check_directories(objects: &[ObjectSpec]) -> Result<(), SpcError> {
    let files: BTreeMap<&str, ()> = objects
        .iter()
        .filter(|o| !matches!(o.content, Content::EveryKey))
        .map(|o| (o.name.as_str(), ()))
        .collect();
    for object in objects {
        let name = object.name.as_str();
        for (end, _) in name.match_indices('/') {
            let parent = &name[..end];
            if files.contains_key(parent) {
                return Err(SpcError::new(format!(
                    "object {name:?} needs {parent:?} to be a directory, but object {parent:?} \
                     writes a file there; rename one of them"
                )));
            }
        }
    }
    Ok(())
}

/// Whether a secret's key can be a file name under a `secretKey: "*"`
/// object: one path element, not empty, not `.` or `..`, not starting with
/// `..` (the driver's atomic writer keeps `..data` and `..<timestamp>`
/// there), no NUL, at most 255 bytes.
pub fn is_safe_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 255
        && !key.contains('/')
        && !key.contains('\0')
        && key != "."
        && !key.starts_with("..")
}

fn parse_object(raw: &RawObject) -> Result<ObjectSpec, String> {
    let name = ObjectName::parse(&raw.object_name)?;
    let (path, query) = split_secret_path(&raw.secret_path)?;
    let method = match raw.method.to_ascii_uppercase().as_str() {
        "" | "GET" => Method::Get,
        "PUT" => Method::Put,
        "POST" => Method::Post,
        "LIST" => Method::List,
        other => {
            return Err(format!(
                "method {} is not supported; use GET, PUT, POST or LIST",
                Shown(other)
            ));
        }
    };
    let encoding = match raw.encoding.to_ascii_lowercase().as_str() {
        "" | "utf-8" | "utf8" => Encoding::Utf8,
        "base64" => Encoding::Base64,
        "hex" => Encoding::Hex,
        _ => return Err("invalid encoding type. Should be utf-8, base64, or hex".into()),
    };
    let mode = match raw.file_permission {
        None => None,
        Some(m) if (0..=0o777).contains(&m) => Some(m as u32),
        Some(m) => {
            return Err(format!(
                "filePermission {m} is not a file mode; write it in octal with a leading 0, e.g. 0600"
            ));
        }
    };
    // Vault ignores a body on reads, so only writes carry secretArgs.
    let body = match (&raw.secret_args, method.is_read()) {
        (Some(args), false) => Some(Value::Object(args.clone()).to_string()),
        _ => None,
    };
    let cache = match &raw.cache {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => super::parse_go_bool(s).ok_or_else(|| {
            format!(
                "cache {} is not a boolean; use \"true\" or \"false\"",
                Shown(s)
            )
        })?,
        Some(other) => {
            return Err(format!(
                "cache {} is not a boolean; use \"true\" or \"false\"",
                Shown(&other.to_string())
            ));
        }
    };
    let content = match (&raw.template, raw.secret_key.as_str()) {
        (Some(_), key) if !key.is_empty() => {
            return Err(format!(
                "set either secretKey or template, not both (secretKey {key:?}); a template \
                 reads keys by name, e.g. {{{{ {} }}}}",
                if key == EVERY_KEY { "username" } else { key }
            ));
        }
        (Some(_), _) if encoding != Encoding::Utf8 => {
            return Err(
                "encoding does not apply to a template; decode a value inside it with \
                 {{ value | b64decode }}"
                    .into(),
            );
        }
        (Some(source), _) => Content::Template(Template::parse(source)?),
        (None, "") => Content::Whole,
        (None, EVERY_KEY) => Content::EveryKey,
        (None, key) => Content::Key(key.to_string()),
    };
    let request = RequestKey {
        method,
        path,
        query,
        body,
    };
    let fingerprint = serde_json::to_string(&Fingerprint {
        object_name: name.as_str(),
        method,
        path: &request.path,
        query: &request.query,
        body: request.body.as_deref(),
        secret_key: Some(raw.secret_key.as_str()).filter(|k| !k.is_empty()),
        encoding,
        mode,
        template: match &content {
            Content::Template(t) => Some(t.source()),
            _ => None,
        },
    })
    .expect("a struct of strings and numbers always serialises");
    Ok(ObjectSpec {
        name,
        request,
        content,
        encoding,
        mode,
        cache,
        fingerprint,
    })
}

/// Normalises `secretPath`: accepts `v1/x`, `/v1/x`, `/x` and `x`, and splits
/// off `?query` into parameters.
fn split_secret_path(text: &str) -> Result<(String, Vec<(String, String)>), String> {
    let text = text.trim();
    let (path, query) = match text.split_once('?') {
        Some((p, q)) => (
            p,
            form_urlencoded::parse(q.as_bytes()).into_owned().collect(),
        ),
        None => (text, Vec::new()),
    };
    let path = path.trim_start_matches('/');
    let path = path
        .strip_prefix("v1/")
        .unwrap_or(path)
        .trim_end_matches('/');
    if path.is_empty() {
        return Err("secretPath is empty; give the Vault API path, e.g. secret/data/app".into());
    }
    if path
        .split('/')
        .any(|p| p.is_empty() || p == "." || p == "..")
    {
        return Err(format!(
            "secretPath {} has an empty, \".\" or \"..\" element",
            Shown(path)
        ));
    }
    Ok((path.to_string(), query))
}
