//! Rendering an object's `template` after every object of the Mount is
//! fetched.
//!
//! What a template sees:
//! - the secret's keys as top-level variables (KV v2's inner `data.data`,
//!   otherwise the response's `data`), and the same map as `data`, so keys
//!   that are not identifiers are reachable as `data["db-password"]`;
//! - `secret`: the whole response (`secret.data`, `secret.lease_id`, …);
//! - `objects.<objectName>`: the keys of another object of the same
//!   SecretProviderClass (`objects["a/b"]` for names that are not
//!   identifiers).  Objects are seen as Vault answered them, never as other
//!   templates rendered them, so templates cannot form cycles.
//!
//! `data`, `secret` and `objects` always mean these built-ins, even when the
//! secret has keys of the same names (reach those as `data["secret"]`).
//!
//! Values are exposed lazily: a secret's map is walked only when a template
//! looks a key up, so a template copies only the values it uses into the
//! engine's strings (those copies are not zeroized; the rendered file is).

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex};

use minijinja::value::{Enumerator, Object, ObjectRepr};
use minijinja::{ErrorKind, Value};
use serde_json::{Map, Value as Json};
use tonic::Code;
use zeroize::Zeroize;

use super::error::MountError;
use super::render::{key_list, keys_of, object_at};
use crate::secret::SecretBytes;
use crate::spc::{MAX_RENDERED_BYTES, ObjectSpec, Template, json_value};
use crate::vault::VaultResponse;

/// One object's fetched response, as other objects' templates see it.
#[derive(Clone)]
pub struct Fetched {
    /// The Vault response.
    pub response: Arc<VaultResponse>,
    /// The request, for messages (`GET secret/data/app`).
    pub request: String,
}

/// Every object's response by objectName, shared by a Mount's templates.
pub type FetchedObjects = Arc<BTreeMap<String, Fetched>>;

/// Renders `template` for `object`.  `own` is the object's response,
/// `objects` every object's; `context` names the SPC for messages.
pub fn render(
    object: &ObjectSpec,
    template: &Template,
    own: &Arc<VaultResponse>,
    objects: &FetchedObjects,
    context: &str,
) -> Result<SecretBytes, MountError> {
    let misses = Arc::new(Misses::default());
    let own_view = Value::from_object(JsonView {
        response: own.clone(),
        base: Base::Keys,
        path: Vec::new(),
        object: None,
        request: object.request.to_string(),
        misses: misses.clone(),
    });
    let root = Root {
        data: own_view.clone(),
        keys: own_view,
        secret: Value::from_object(SecretView {
            response: own.clone(),
            request: object.request.to_string(),
            misses: misses.clone(),
        }),
        objects: Value::from_object(ObjectsView {
            objects: objects.clone(),
            misses: misses.clone(),
        }),
        template: template.clone(),
        misses: misses.clone(),
    };
    let mut out = CappedWriter::default();
    let result = template
        .compiled()
        .render_captured_to(Value::from_object(root), &mut out)
        .map(drop);
    match result {
        Ok(()) => Ok(SecretBytes::new(std::mem::take(&mut out.buf))),
        Err(e) => Err(error(object, context, &e, &misses, out.over, own, objects)),
    }
}

/// The MountError for a failed rendering.  MiniJinja's own message is not
/// passed on as is: it may quote values.  The message names the object, the
/// template line and the missing key, never a value.
fn error(
    object: &ObjectSpec,
    context: &str,
    e: &minijinja::Error,
    misses: &Misses,
    over_limit: bool,
    own: &VaultResponse,
    objects: &FetchedObjects,
) -> MountError {
    let at = object_at(object, context);
    let line = e
        .line()
        .map_or_else(String::new, |n| format!(" (line {n})"));
    if over_limit {
        return MountError::new(
            Code::ResourceExhausted,
            format!(
                "{at}: the template{line} renders more than {MAX_RENDERED_BYTES} bytes, the limit \
                 for one rendered file. Hint: split it into several objects"
            ),
        );
    }
    match e.kind() {
        ErrorKind::OutOfFuel => MountError::new(
            Code::ResourceExhausted,
            format!(
                "{at}: the template{line} did more work than a template may (loops or values too \
                 large). Hint: simplify the template or split it into several objects"
            ),
        ),
        // A missing key is the SecretProviderClass's error, not Vault's: the
        // template names keys the secret does not have (most often a typo),
        // and only the SPC author can fix the template or make the key
        // optional.  So InvalidArgument, like every other template error,
        // rather than the NotFound a single `secretKey` gets.
        ErrorKind::UndefinedError => {
            let message = match misses.last() {
                Some(miss) => format!(
                    "{at}: the template{line} uses {}, which {} does not have. Hint: {} there: \
                     {}; for an optional one write {{{{ name | default(\"\") }}}} or test it \
                     with {{% if name is defined %}}",
                    miss.what, miss.source, miss.noun, miss.available
                ),
                None => format!(
                    "{at}: the template{line} uses an undefined value. Hint: check the names it \
                     uses; test optional ones with \"is defined\""
                ),
            };
            MountError::new(Code::InvalidArgument, message)
        }
        kind => {
            // Details name kinds and filters, but some quote operands (a
            // number, a string being converted): leave out any detail that
            // contains a value of the secrets in play.
            let detail = e
                .detail()
                .filter(|d| !contains_secret_value(d, own, objects))
                .map_or_else(String::new, |d| format!(": {d}"));
            MountError::new(
                Code::InvalidArgument,
                format!("{at}: the template{line} failed: {kind}{detail}. Hint: fix the template"),
            )
        }
    }
}

/// Whether `text` contains a string or number of any response in play (at
/// least 3 characters long: shorter values cannot be told apart from words).
fn contains_secret_value(text: &str, own: &VaultResponse, objects: &FetchedObjects) -> bool {
    fn walk(value: &Json, text: &str) -> bool {
        match value {
            Json::String(s) => s.len() >= 3 && text.contains(s.as_str()),
            Json::Number(n) => {
                let n = n.to_string();
                n.len() >= 3 && text.contains(&n)
            }
            Json::Array(items) => items.iter().any(|v| walk(v, text)),
            Json::Object(map) => map.values().any(|v| walk(v, text)),
            _ => false,
        }
    }
    let in_response = |r: &VaultResponse| {
        r.data
            .as_ref()
            .is_some_and(|d| d.0.values().any(|v| walk(v, text)))
            || r.auth.as_ref().is_some_and(|a| walk(&a.0, text))
            || r.wrap_info.as_ref().is_some_and(|w| walk(&w.0, text))
            || (r.lease_id.len() >= 3 && text.contains(&r.lease_id))
    };
    in_response(own) || objects.values().any(|f| in_response(&f.response))
}

/// The most recent lookup of a name that held nothing, so an undefined-value
/// error can say which key was missing.  Cleared by a successful lookup, so
/// a stale miss (from an `is defined` test) is not blamed later.
#[derive(Default)]
struct Misses(Mutex<Option<Miss>>);

/// A name a template looked up and did not find.
struct Miss {
    /// `key "password"`, `key "host" in config of object "db"`, `object "x"`.
    what: String,
    /// Where it was looked for: `the secret at GET secret/data/app`, `this
    /// SecretProviderClass`.
    source: String,
    /// What [`Miss::available`] lists: `the keys`, `the objectNames`.
    noun: &'static str,
    /// The names that do exist there.
    available: String,
}

impl Misses {
    /// Records the outcome of a lookup.
    fn record(&self, miss: Option<Miss>) {
        if let Ok(mut last) = self.0.lock() {
            *last = miss;
        }
    }

    /// The last lookup, if it missed.
    fn last(&self) -> Option<Miss> {
        self.0.lock().ok()?.take()
    }
}

/// The template's root: built-ins first, then the secret's keys.
struct Root {
    /// `data`: the secret's keys.
    data: Value,
    /// Top-level key lookups (the same view as `data`).
    keys: Value,
    /// `secret`: the whole response.
    secret: Value,
    /// `objects`: the other objects' keys.
    objects: Value,
    /// For the names of the environment's globals (`range`, …).
    template: Template,
    misses: Arc<Misses>,
}

impl Object for Root {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let name = key.as_str()?;
        match name {
            "data" => Some(self.data.clone()),
            "secret" => Some(self.secret.clone()),
            "objects" => Some(self.objects.clone()),
            _ => {
                let found = self.keys.get_attr(name).ok().filter(|v| !v.is_undefined());
                if found.is_none() && self.template.is_global(name) {
                    // `range`, `dict`…: MiniJinja looks these up after the
                    // root; not finding them among the keys is no miss.
                    self.misses.record(None);
                }
                found
            }
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Str(&["data", "secret", "objects"])
    }
}

/// Which map of a response a [`JsonView`] starts from.
#[derive(Clone, Copy)]
enum Base {
    /// The secret's keys (KV v2's `data.data`, otherwise `data`).
    Keys,
    /// The response's `data` as Vault sent it (`secret.data`).
    Data,
}

/// A JSON object inside a response, looked into lazily.
struct JsonView {
    response: Arc<VaultResponse>,
    base: Base,
    /// Keys from the base to this object.
    path: Vec<String>,
    /// The other object this belongs to, `None` for the template's own.
    object: Option<String>,
    /// The request, for messages.
    request: String,
    misses: Arc<Misses>,
}

impl JsonView {
    /// The JSON object this view shows, if it exists.
    fn map(&self) -> Option<&Map<String, Json>> {
        let mut map = match self.base {
            Base::Keys => keys_of(&self.response)?,
            Base::Data => &self.response.data.as_ref()?.0,
        };
        for key in &self.path {
            map = map.get(key)?.as_object()?;
        }
        Some(map)
    }

    /// `key "k"`, `key "k" in config`, `key "k" of object "db"`.
    fn describe(&self, key: &str) -> String {
        let mut what = format!("key {key:?}");
        if matches!(self.base, Base::Data) {
            what.push_str(" in secret.data");
        }
        if !self.path.is_empty() {
            what.push_str(&format!(" in {}", self.path.join(".")));
        }
        if let Some(object) = &self.object {
            what.push_str(&format!(" of object {object:?}"));
        }
        what
    }
}

impl Object for JsonView {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let name = key.as_str()?;
        let map = self.map();
        let value = map.and_then(|m| m.get(name));
        match value {
            Some(Json::Object(_)) => {
                self.misses.record(None);
                let mut path = self.path.clone();
                path.push(name.to_string());
                Some(Value::from_object(JsonView {
                    response: self.response.clone(),
                    base: self.base,
                    path,
                    object: self.object.clone(),
                    request: self.request.clone(),
                    misses: self.misses.clone(),
                }))
            }
            Some(value) => {
                self.misses.record(None);
                Some(json_value(value))
            }
            None => {
                self.misses.record(Some(Miss {
                    what: self.describe(name),
                    source: format!("the secret at {}", self.request),
                    noun: "the keys",
                    available: key_list(map.into_iter().flat_map(|m| m.keys())),
                }));
                None
            }
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let keys: Vec<Value> = self
            .map()
            .map(|m| m.keys().map(|k| Value::from(k.as_str())).collect())
            .unwrap_or_default();
        Enumerator::Values(keys)
    }
}

/// `secret`: the whole response, as in a whole-response file.
struct SecretView {
    response: Arc<VaultResponse>,
    request: String,
    misses: Arc<Misses>,
}

/// The fields of `secret`.
const SECRET_FIELDS: &[&str] = &[
    "request_id",
    "lease_id",
    "lease_duration",
    "renewable",
    "data",
    "warnings",
    "auth",
    "wrap_info",
    "mount_type",
];

impl Object for SecretView {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let r = &self.response;
        let value = match key.as_str()? {
            // Emptied as in whole-response files: Vault's request id changes
            // on every read and would make every rendering different.
            "request_id" => Value::from(""),
            "lease_id" => Value::from(r.lease_id.as_str()),
            "lease_duration" => Value::from(r.lease_duration),
            "renewable" => Value::from(r.renewable),
            "data" => Value::from_object(JsonView {
                response: r.clone(),
                base: Base::Data,
                path: Vec::new(),
                object: None,
                request: self.request.clone(),
                misses: self.misses.clone(),
            }),
            "warnings" => r.warnings.as_ref().map_or(Value::from(()), |w| {
                w.iter().map(|s| Value::from(s.as_str())).collect()
            }),
            "auth" => r
                .auth
                .as_ref()
                .map_or(Value::from(()), |a| json_value(&a.0)),
            "wrap_info" => r
                .wrap_info
                .as_ref()
                .map_or(Value::from(()), |w| json_value(&w.0)),
            "mount_type" => Value::from(r.mount_type.as_str()),
            other => {
                self.misses.record(Some(Miss {
                    what: format!("field {other:?} of secret"),
                    source: "a Vault response".into(),
                    noun: "the fields",
                    available: SECRET_FIELDS.join(", "),
                }));
                return None;
            }
        };
        self.misses.record(None);
        Some(value)
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Str(SECRET_FIELDS)
    }
}

/// `objects`: every object's keys by objectName.
struct ObjectsView {
    objects: FetchedObjects,
    misses: Arc<Misses>,
}

impl Object for ObjectsView {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let name = key.as_str()?;
        match self.objects.get(name) {
            Some(fetched) => {
                self.misses.record(None);
                Some(Value::from_object(JsonView {
                    response: fetched.response.clone(),
                    base: Base::Keys,
                    path: Vec::new(),
                    object: Some(name.to_string()),
                    request: fetched.request.clone(),
                    misses: self.misses.clone(),
                }))
            }
            None => {
                self.misses.record(Some(Miss {
                    what: format!("object {name:?}"),
                    source: "this SecretProviderClass".into(),
                    noun: "the objectNames",
                    available: key_list(self.objects.keys()),
                }));
                None
            }
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(
            self.objects
                .keys()
                .map(|k| Value::from(k.as_str()))
                .collect(),
        )
    }
}

// The engine requires Debug; these hold secrets, so they print nothing of them.
macro_rules! redacted_debug {
    ($($t:ty),*) => {$(
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($t), " [redacted]"))
            }
        }
    )*};
}
redacted_debug!(Root, JsonView, SecretView, ObjectsView);

/// The rendered file, capped at [`MAX_RENDERED_BYTES`].  The buffer is
/// grown by hand so that every copy of the output is wiped, not only the
/// last.
#[derive(Default)]
struct CappedWriter {
    buf: Vec<u8>,
    /// Whether writing stopped at the cap.
    over: bool,
}

impl io::Write for CappedWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let needed = self.buf.len() + bytes.len();
        if needed > MAX_RENDERED_BYTES {
            self.over = true;
            return Err(io::Error::other("the rendered file is over the limit"));
        }
        if needed > self.buf.capacity() {
            let capacity = needed
                .max(self.buf.capacity() * 2)
                .clamp(256, MAX_RENDERED_BYTES);
            let mut grown = Vec::with_capacity(capacity);
            grown.extend_from_slice(&self.buf);
            self.buf.zeroize();
            self.buf = grown;
        }
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for CappedWriter {
    fn drop(&mut self) {
        self.buf.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spc::{Content, parse_objects};

    const CANARY: &str = "canary-51c0";

    /// Parses `yaml` and renders its first object against `responses` (JSON
    /// per object, in order).
    fn render_first(yaml: &str, responses: &[&str]) -> Result<String, MountError> {
        let objects = parse_objects(yaml).unwrap();
        let fetched: BTreeMap<String, Fetched> = objects
            .iter()
            .zip(responses)
            .map(|(o, json)| {
                (
                    o.name.to_string(),
                    Fetched {
                        response: Arc::new(serde_json::from_str(json).unwrap()),
                        request: o.request.to_string(),
                    },
                )
            })
            .collect();
        let fetched = Arc::new(fetched);
        let Content::Template(t) = &objects[0].content else {
            panic!("not a template")
        };
        let own = fetched[objects[0].name.as_str()].response.clone();
        render(&objects[0], t, &own, &fetched, "ns/spc")
            .map(|b| String::from_utf8(b.expose().to_vec()).unwrap())
    }

    fn one(template: &str, response: &str) -> Result<String, MountError> {
        let yaml = format!(
            "- objectName: out\n  secretPath: secret/data/app\n  template: {}\n",
            serde_json::to_string(template).unwrap()
        );
        render_first(&yaml, &[response])
    }

    const KV2: &str = r#"{"lease_id":"","data":{"data":{"username":"alice","db-password":"canary-51c0","secret":"s","objects":"o","data":"d","n":5,"cfg":{"host":"h"}},"metadata":{"version":3}}}"#;

    #[test]
    fn keys_data_secret_and_shadowing() {
        assert_eq!(
            one("U={{ username }}\nP={{ data[\"db-password\"] }}\n", KV2).unwrap(),
            format!("U=alice\nP={CANARY}\n")
        );
        // Keys named like the built-ins do not shadow them.
        assert_eq!(
            one("{{ secret.data.metadata.version }} {{ data.secret }} {{ data.objects }} {{ data['data'] }} {{ objects.out.username }}", KV2).unwrap(),
            "3 s o d alice"
        );
        assert_eq!(one("{{ cfg.host }} {{ n + 1 }}", KV2).unwrap(), "h 6");
        assert_eq!(
            one("{{ data | tojson }}", r#"{"data":{"b":"2","a":"1"}}"#).unwrap(),
            r#"{"a": "1", "b": "2"}"#
        );
        assert_eq!(
            one(
                "{% for k in data | sort %}{{ k }}={{ data[k] }}\n{% endfor %}",
                r#"{"data":{"b":"2","a":"1"}}"#
            )
            .unwrap(),
            "a=1\nb=2\n"
        );
        assert_eq!(
            one(
                "{{ optional | default('none') }}{% if other is defined %}x{% endif %}",
                KV2
            )
            .unwrap(),
            "none"
        );
        assert_eq!(
            one(
                "{% for k, v in data | items %}{{ k }}={{ v }};{% endfor %}{% for k, v in data | dictsort %}{{ k }}{% endfor %}",
                r#"{"data":{"b":"2","a":"1"}}"#
            )
            .unwrap(),
            "a=1;b=2;ab"
        );
    }

    #[test]
    fn other_objects_by_name() {
        let yaml = "- objectName: pgpass\n  secretPath: secret/data/host\n  template: \"{{ host }}:5432:app:{{ objects['db/creds'].username }}:{{ objects['db/creds'].password }}\"\n\
                    - objectName: db/creds\n  secretPath: database/creds/app\n";
        let out = render_first(
            yaml,
            &[
                r#"{"data":{"data":{"host":"pg"}}}"#,
                r#"{"lease_id":"database/creds/app/x","data":{"username":"v-u","password":"p"}}"#,
            ],
        )
        .unwrap();
        assert_eq!(out, "pg:5432:app:v-u:p");
    }

    #[test]
    fn missing_keys_are_named_without_values() {
        for (template, named) in [
            ("{{ usrname }}", "key \"usrname\""),
            ("a\n{{ cfg.port }}", "key \"port\" in cfg"),
            ("{{ data['nope'] }}", "key \"nope\""),
            (
                "{% if x is defined %}{% endif %}{{ objects.out.pwd }}",
                "key \"pwd\" of object \"out\"",
            ),
            ("{{ objects.db.x }}", "object \"db\""),
            ("{{ secret.nope }}", "field \"nope\" of secret"),
            ("{{ {'a': data, 'b': nope} | tojson }}", "key \"nope\""),
            ("{{ nope | b64decode }}", "key \"nope\""),
        ] {
            let err = one(template, KV2).unwrap_err();
            assert_eq!(err.code, Code::InvalidArgument, "{template}");
            assert!(err.message.contains(named), "{template}: {}", err.message);
            assert!(err.message.contains("object \"out\""), "{}", err.message);
            assert!(!err.message.contains(CANARY), "{}", err.message);
        }
        let err = one("a\nb\n{{ usrname }}", KV2).unwrap_err();
        assert!(err.message.contains("line 3"), "{}", err.message);
        assert!(
            err.message.contains("username"),
            "lists the keys: {}",
            err.message
        );
    }

    #[test]
    fn other_errors_never_quote_values() {
        for template in [
            "{{ data['db-password'] | int }}{{ data['db-password'] + 1 }}",
            "{{ data['db-password'] | b64decode }}",
            "{{ data['db-password'] | fromjson }}",
            "{{ data['db-password'] * 'x' }}",
            "{{ data['db-password'].nomethod() }}",
            "{{ -data['db-password'] }}",
            "{{ data['db-password'] | nofilter }}",
        ] {
            let err = one(template, KV2).unwrap_err();
            assert_eq!(err.code, Code::InvalidArgument, "{template}");
            assert!(!err.message.contains(CANARY), "{template}: {}", err.message);
            assert!(
                err.message.contains("line 1"),
                "{template}: {}",
                err.message
            );
        }
    }

    #[test]
    fn output_and_work_are_capped() {
        let err = one(
            "{% for i in range(2000) %}{{ 'x' * 1000 }}{% endfor %}",
            KV2,
        )
        .unwrap_err();
        assert_eq!(err.code, Code::ResourceExhausted, "{}", err.message);
        assert!(
            err.message.contains("more than 1048576 bytes"),
            "{}",
            err.message
        );
        let err = one(
            "{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}",
            KV2,
        )
        .unwrap_err();
        assert_eq!(err.code, Code::ResourceExhausted, "{}", err.message);
        assert!(err.message.contains("more work"), "{}", err.message);
    }

    /// Pieces hostile and plausible templates are made of: delimiters,
    /// statements, names, filters, and text.
    const PIECES: &[&str] = &[
        "{{",
        "}}",
        "{%",
        "%}",
        "{#",
        "#}",
        " ",
        "\n",
        "x",
        "username",
        "data",
        "secret",
        "objects",
        ".",
        "[",
        "]",
        "(",
        ")",
        "|",
        "b64decode",
        "tojson",
        "for i in range(9)",
        "endfor",
        "if",
        "endif",
        "'",
        "\"",
        "~",
        "*",
    ];

    /// Expressions: keys that exist or not, built-ins, filters that fail on
    /// some input, and values that grow.
    const EXPRESSIONS: &[&str] = &[
        "username",
        "missing",
        "data['db-password']",
        "data.nope",
        "secret.data.metadata.version",
        "objects.out.username",
        "objects.other.username",
        "cfg.host",
        "cfg.nope.deeper",
        "n + 1",
        "username | b64encode",
        "username | b64decode",
        "username | fromjson",
        "data | tojson",
        "cfg | tojson",
        "'x' * 100000",
        "username * 3",
        "n / 0",
        "username[99]",
        "range(5)",
        "secret | tojson",
        "data['secret']",
        "objects | tojson",
        "n | b64encode",
    ];

    /// A template: raw pieces, or a sequence of text, `{{ expression }}`
    /// and loops around them that may run away.
    fn template_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let piece = proptest::sample::select(PIECES).prop_map(str::to_string);
        let expr = proptest::sample::select(EXPRESSIONS).prop_map(|e| format!("{{{{ {e} }}}}"));
        let text = "[a-z=\\n ]{0,8}";
        let segment = prop_oneof![2 => expr, 1 => text.prop_map(|t| t.to_string())];
        let body = proptest::collection::vec(segment, 1..6).prop_map(|v| v.concat());
        let looped = (
            body.clone(),
            prop_oneof![Just(3u32), Just(1000), Just(100_000)],
        )
            .prop_map(|(b, n)| format!("{{% for i in range({n}) %}}{b}{{% endfor %}}"));
        prop_oneof![
            1 => proptest::collection::vec(piece, 0..40).prop_map(|v| v.concat()),
            2 => proptest::collection::vec(prop_oneof![2 => body, 1 => looped], 1..4)
                .prop_map(|v| v.concat()),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Any template text either fails to parse with a message naming the
        /// object, or renders within the output cap, or fails with
        /// InvalidArgument / ResourceExhausted; a secret value never appears
        /// in an error, and nothing panics.
        #[test]
        fn any_template_parses_renders_or_fails_cleanly(template in template_text()) {
            let yaml = format!(
                "- objectName: out\n  secretPath: secret/data/app\n  template: {}\n",
                serde_json::to_string(&template).unwrap()
            );
            let parsed = match parse_objects(&yaml) {
                Ok(_) => one(&template, KV2),
                Err(e) => {
                    proptest::prop_assert!(e.message.contains("\"out\""), "{}", e.message);
                    return Ok(());
                }
            };
            match parsed {
                Ok(text) => proptest::prop_assert!(text.len() <= crate::spc::MAX_RENDERED_BYTES),
                Err(e) => {
                    proptest::prop_assert!(
                        matches!(e.code, Code::InvalidArgument | Code::ResourceExhausted),
                        "{:?}: {}", e.code, e.message
                    );
                    proptest::prop_assert!(!e.message.contains(CANARY), "{}", e.message);
                    proptest::prop_assert!(e.message.len() <= 4096, "{} bytes", e.message.len());
                }
            }
        }
    }
}
