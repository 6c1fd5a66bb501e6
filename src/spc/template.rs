//! The `template` field of an object: a MiniJinja template, compiled once
//! when the SecretProviderClass is parsed, in a sandboxed environment with
//! bounded work.  Rendering (the variables a template sees) is in
//! `mount/template.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use base64::Engine;
use minijinja::syntax::SyntaxConfig;
use minijinja::value::Kwargs;
use minijinja::{AutoEscape, Environment, Error, ErrorKind, UndefinedBehavior, Value};

/// Largest template source accepted, in bytes.
pub const MAX_TEMPLATE_BYTES: usize = 64 * 1024;
/// Largest rendered file a template may produce, in bytes.
pub const MAX_RENDERED_BYTES: usize = 1024 * 1024;
/// Work one rendering may do, in MiniJinja fuel: every instruction costs one
/// and every 64 bytes of data produced or visited cost one, so this bounds
/// both time (a few ms) and memory (about 16 MiB) of a hostile template.
pub const TEMPLATE_FUEL: u64 = 250_000;

/// The name the template is stored under in its environment.  Not the
/// objectName: MiniJinja picks auto-escaping from the name's extension, and
/// files here are never HTML or JSON-escaped behind the author's back.
const NAME: &str = "template";

/// A compiled template.  Cloning shares the compiled form.
#[derive(Clone)]
pub struct Template {
    /// The environment holding the one compiled template, with the limits
    /// and helper filters set.
    env: Arc<Environment<'static>>,
    /// Names the environment defines as globals (`range`, `dict`, …): a
    /// lookup of these that misses the secret is not a missing key.
    globals: Arc<BTreeSet<String>>,
    /// The source as written; part of the object's version.
    source: Arc<str>,
}

impl Template {
    /// Compiles `source`.  The error names the line of a syntax error; it
    /// quotes only the template, which is configuration, never secret data.
    pub fn parse(source: &str) -> Result<Self, String> {
        if source.trim().is_empty() {
            return Err(
                "template is empty; write the file's text with {{ key }} placeholders".into(),
            );
        }
        if source.len() > MAX_TEMPLATE_BYTES {
            return Err(format!(
                "template is {} bytes; the limit is {MAX_TEMPLATE_BYTES}",
                source.len()
            ));
        }
        let mut env = environment();
        env.add_template_owned(NAME, source.to_string())
            .map_err(|e| {
                format!(
                    "template has a syntax error on line {}: {}",
                    e.line().unwrap_or(0),
                    e.detail().unwrap_or("invalid syntax")
                )
            })?;
        let globals = env.globals().map(|(name, _)| name.to_string()).collect();
        Ok(Self {
            env: Arc::new(env),
            globals: Arc::new(globals),
            source: source.into(),
        })
    }

    /// The template source as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The compiled template, to render.
    pub fn compiled(&self) -> minijinja::Template<'_, '_> {
        self.env
            .get_template(NAME)
            .expect("the template was added when parsed")
    }

    /// Whether `name` is one of the environment's globals (`range`, …).
    pub fn is_global(&self, name: &str) -> bool {
        self.globals.contains(name)
    }
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Template")
            .field("source_bytes", &self.source().len())
            .finish()
    }
}

/// The sandbox every template runs in: no file system or includes (no
/// loader), strict undefined values (a missing key is an error, not an empty
/// string), no auto-escaping, bounded work, and the helper filters.
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_fuel(Some(TEMPLATE_FUEL));
    // Files are line-oriented (`.env`, `pgpass`): a line holding only a
    // `{% ... %}` tag leaves no blank line or indentation behind, and the
    // template's final newline is kept, as written.
    env.set_syntax(
        SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(true)
            .build()
            .expect("the default delimiters are valid"),
    );
    env.add_filter("b64encode", b64encode);
    env.add_filter("b64decode", b64decode);
    env.add_filter("fromjson", fromjson);
    env.add_filter("tojson", tojson);
    env
}

/// The text of a filter's input; a missing key is an undefined-value error
/// (so the message names the key), anything but a string is refused.
fn text<'a>(filter: &str, value: &'a Value) -> Result<&'a str, Error> {
    if value.is_undefined() {
        return Err(Error::from(ErrorKind::UndefinedError));
    }
    value.as_str().ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("{filter}: the value is a {}, not a string", value.kind()),
        )
    })
}

/// `{{ value | b64encode }}`: standard, padded base64 of the text.
fn b64encode(value: &Value) -> Result<String, Error> {
    Ok(base64::engine::general_purpose::STANDARD.encode(text("b64encode", value)?))
}

/// `{{ value | b64decode }}`: the text encoded as standard base64.  Errors
/// never quote the value.
fn b64decode(value: &Value) -> Result<String, Error> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text("b64decode", value)?.trim())
        .map_err(|_| {
            Error::new(
                ErrorKind::InvalidOperation,
                "b64decode: the value is not valid base64 (standard alphabet, padded)",
            )
        })?;
    String::from_utf8(bytes).map_err(|e| {
        // Wipe the decoded bytes before reporting.
        let mut bytes = e.into_bytes();
        zeroize::Zeroize::zeroize(&mut bytes);
        Error::new(
            ErrorKind::InvalidOperation,
            "b64decode: the decoded value is binary, not UTF-8 text; a template writes text \
             (for a binary file use secretKey with encoding: base64)",
        )
    })
}

/// `{{ (value | fromjson).field }}`: parses a value holding JSON text.
fn fromjson(value: &Value) -> Result<Value, Error> {
    let parsed: crate::vault::SecretJson =
        serde_json::from_str(text("fromjson", value)?).map_err(|_| {
            Error::new(
                ErrorKind::InvalidOperation,
                "fromjson: the value is not valid JSON",
            )
        })?;
    Ok(json_value(&parsed.0))
}

/// `{{ value | tojson }}`: MiniJinja's, except that a missing key is an
/// error instead of `null` (a typo must not write `null` into a config).
fn tojson(value: &Value, indent: Option<Value>, args: Kwargs) -> Result<Value, Error> {
    if has_undefined(value, 0) {
        return Err(Error::from(ErrorKind::UndefinedError));
    }
    minijinja::filters::tojson(value, indent, args)
}

/// Whether `value` is, or (in lists and maps written in the template, to a
/// bounded depth) holds, an undefined value.  Only the template's own list
/// and map literals are walked: a secret's maps cannot hold undefined
/// values, and walking them would copy their values for nothing.
fn has_undefined(value: &Value, depth: usize) -> bool {
    if value.is_undefined() {
        return true;
    }
    if depth > 200 {
        return false;
    }
    if let Some(items) = value.downcast_object_ref::<Vec<Value>>() {
        return items.iter().any(|v| has_undefined(v, depth + 1));
    }
    if let Some(map) = value.downcast_object_ref::<BTreeMap<Value, Value>>() {
        return map.values().any(|v| has_undefined(v, depth + 1));
    }
    false
}

/// A JSON value as a template value (a copy; maps and lists recursively).
pub fn json_value(value: &serde_json::Value) -> Value {
    use serde_json::Value as Json;
    match value {
        Json::Null => Value::from(()),
        Json::Bool(b) => Value::from(*b),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Json::String(s) => Value::from(s.as_str()),
        Json::Array(items) => items.iter().map(json_value).collect(),
        Json::Object(map) => {
            Value::from_pairs(map.iter().map(|(k, v)| (k.as_str(), json_value(v))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_errors_name_the_line() {
        let err = Template::parse("a\nb\n{{ user \n").unwrap_err();
        assert!(err.contains("line 3"), "{err}");
        let err = Template::parse("{% for x in y %}\n{{ x }}\n").unwrap_err();
        assert!(err.contains("syntax error"), "{err}");
        assert!(Template::parse("   \n").unwrap_err().contains("empty"));
    }

    #[test]
    fn source_is_capped() {
        let big = "x".repeat(MAX_TEMPLATE_BYTES + 1);
        assert!(Template::parse(&big).unwrap_err().contains("limit"));
        assert!(Template::parse(&"x".repeat(MAX_TEMPLATE_BYTES)).is_ok());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!("{{{{ {}1{} }}}}", "(".repeat(5000), ")".repeat(5000));
        assert!(Template::parse(&deep).is_err());
    }

    #[test]
    fn no_includes_or_imports() {
        let t = Template::parse("{% include 'x' %}");
        // Without a loader an include cannot find anything at render time.
        if let Ok(t) = t {
            assert!(t.compiled().render(()).is_err());
        }
    }

    #[test]
    fn helpers() {
        let t = Template::parse(
            "{{ 'hello' | b64encode }} {{ 'aGVsbG8=' | b64decode }} {{ ('{\"a\": [1]}' | fromjson).a[0] }}",
        )
        .unwrap();
        assert_eq!(t.compiled().render(()).unwrap(), "aGVsbG8= hello 1");
        let bad = Template::parse("{{ '%%' | b64decode }}").unwrap();
        let err = bad.compiled().render(()).unwrap_err();
        assert!(!err.to_string().contains("%%"), "{err}");
    }

    #[test]
    fn runaway_loops_run_out_of_fuel() {
        let t = Template::parse(
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
        )
        .unwrap();
        let err = t.compiled().render(()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::OutOfFuel);
        let t = Template::parse("{{ 'x' * 90000000 }}").unwrap();
        assert_eq!(
            t.compiled().render(()).unwrap_err().kind(),
            ErrorKind::OutOfFuel
        );
    }

    #[test]
    fn missing_keys_are_errors_in_helpers_too() {
        for source in [
            "{{ x | tojson }}",
            "{{ [1, x] | tojson }}",
            "{{ {'a': {'b': x}} | tojson }}",
            "{{ x | b64encode }}",
            "{{ x | b64decode }}",
            "{{ x | fromjson }}",
        ] {
            let t = Template::parse(source).unwrap();
            let err = t.compiled().render(()).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::UndefinedError, "{source}");
        }
        let t = Template::parse("{{ {'a': [1, 'x', none]} | tojson }}").unwrap();
        assert_eq!(t.compiled().render(()).unwrap(), r#"{"a": [1, "x", null]}"#);
    }

    #[test]
    fn keeps_the_trailing_newline_and_does_not_escape() {
        let t = Template::parse("A={{ '<&>\"' }}\n").unwrap();
        assert_eq!(t.compiled().render(()).unwrap(), "A=<&>\"\n");
    }
}
