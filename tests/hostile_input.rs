//! Hostile SecretProviderClass input: property tests that the attribute
//! JSON, the `objects` YAML and object paths never panic, stay within the
//! parser's documented limits, and are rejected with a bounded
//! `InvalidArgument` message that names the problem.  Pure parsing: no
//! OpenBao needed.  Invariants on every result are checked by the same
//! functions the fuzz targets use (`vault_csi::fuzzing`).
//!
//! Adding a field to `objects` (such as `template`): give it a value
//! strategy in `strategies::field_value` (the field names come from the parser).

use proptest::prelude::*;
use serde_json::{Value, json};
use vault_csi::fuzzing;
use vault_csi::proto::MountRequest;
use vault_csi::spc::{
    self, Defaults, MAX_MESSAGE_BYTES, MAX_OBJECTS, MAX_OBJECTS_YAML_BYTES, MAX_YAML_DEPTH,
    MAX_YAML_NODES, MAX_YAML_SCALAR_BYTES, ObjectName, SpcError,
};

/// Generators of hostile and plausible input.
mod strategies {
    use proptest::prelude::*;
    use serde_json::{Map, Value};

    /// Attribute keys the driver and kubelet add next to the parameters
    /// (the parameters themselves come from the parser: [`attribute_keys`]).
    const REQUEST_ATTRIBUTES: &[&str] = &[
        "secretProviderClass",
        "csi.storage.k8s.io/pod.name",
        "csi.storage.k8s.io/pod.namespace",
        "csi.storage.k8s.io/pod.uid",
        "csi.storage.k8s.io/serviceAccount.name",
        "csi.storage.k8s.io/serviceAccount.tokens",
    ];

    /// Every attribute key the parser reads: its parameters, then the
    /// driver's and kubelet's.
    pub fn attribute_keys() -> Vec<&'static str> {
        vault_csi::spc::PARAMETERS
            .iter()
            .chain(REQUEST_ATTRIBUTES)
            .copied()
            .collect()
    }

    /// Strings a parser is likely to treat specially.
    const INTERESTING: &[&str] = &[
        "",
        " ",
        "true",
        "false",
        "0",
        "0644",
        "-1",
        "1e999",
        "null",
        "~",
        "..",
        ".",
        "/",
        "a/../b",
        "a//b",
        "/etc/passwd",
        "secret/data/app",
        "v1/secret/data/app?version=2",
        "kubernetes",
        "approle",
        "token",
        "jwt",
        "GET",
        "PUT",
        "delete",
        "base64",
        "hex",
        "utf-8",
        "30s",
        "99999999999999999999h",
        "https://127.0.0.1:8200",
        "unix://relative",
        "http://user:pw@host",
        "\0",
        "a\nb",
        "é/ü",
        "{",
        "[",
        "- a",
        "&a",
        "*a",
        "!!binary AAAA",
        "<<",
    ];

    /// Text: arbitrary, special, or long (up to 8 KB; values of megabytes
    /// are the crafted tests' job, as they would only slow every case here).
    pub fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => any::<String>(),
            3 => prop::sample::select(INTERESTING).prop_map(String::from),
            1 => (any::<char>(), 0..8_000usize).prop_map(|(c, n)| c.to_string().repeat(n)),
        ]
    }

    /// Any JSON value, nested up to 8 deep.
    pub fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            text().prop_map(Value::String),
        ];
        leaf.prop_recursive(8, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::btree_map(text(), inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// A value for one of an object's fields: usually the right kind,
    /// sometimes any JSON at all.
    pub fn field_value(field: &'static str) -> BoxedStrategy<Value> {
        let right_kind = match field {
            "filePermission" => prop_oneof![
                any::<i64>().prop_map(Value::from),
                (0..0o1000i64).prop_map(Value::from),
            ]
            .boxed(),
            "cache" => prop_oneof![
                any::<bool>().prop_map(Value::Bool),
                text().prop_map(Value::String)
            ]
            .boxed(),
            "secretArgs" => json_value().boxed(),
            _ => text().prop_map(Value::String).boxed(),
        };
        prop_oneof![3 => right_kind, 1 => json_value()].boxed()
    }

    /// One entry of `objects`: known fields with plausible or wrong
    /// values, and sometimes unknown keys.
    pub fn raw_object() -> impl Strategy<Value = Value> {
        // The parser's own field list, so a new field is generated at once.
        let known = prop::sample::select(vault_csi::spc::object_fields())
            .prop_flat_map(|field| (Just(field.to_string()), field_value(field)));
        let unknown = (text(), json_value());
        prop::collection::vec(prop_oneof![4 => known, 1 => unknown], 0..10)
            .prop_map(|fields| Value::Object(fields.into_iter().collect::<Map<_, _>>()))
    }

    /// A document for `objects`: a list of (mostly) objects, or anything.
    pub fn objects_document() -> impl Strategy<Value = Value> {
        prop_oneof![
            4 => prop::collection::vec(prop_oneof![4 => raw_object(), 1 => json_value()], 0..12)
                .prop_map(Value::Array),
            1 => json_value(),
        ]
    }

    /// A valid object, with the index making its name unique.
    pub fn valid_object(index: usize) -> impl Strategy<Value = Value> {
        (
            "[a-z][a-z0-9_.-]{0,20}(/[a-z0-9_-]{1,10}){0,2}",
            "(/?v1/)?[a-z]{1,8}(/[a-z0-9_-]{1,12}){1,3}(\\?version=[0-9])?",
            prop::option::of("[a-z_]{1,12}"),
            prop::sample::select(&["", "GET", "put", "POST", "LIST"][..]),
            prop::sample::select(&["", "utf-8", "base64", "HEX"][..]),
            prop::option::of(0..0o1000i64),
        )
            .prop_map(move |(name, path, key, method, encoding, mode)| {
                let mut object = Map::new();
                object.insert("objectName".into(), format!("{name}-{index}").into());
                object.insert("secretPath".into(), path.into());
                if let Some(key) = key {
                    object.insert("secretKey".into(), key.into());
                }
                object.insert("method".into(), method.into());
                object.insert("encoding".into(), encoding.into());
                if let Some(mode) = mode {
                    object.insert("filePermission".into(), mode.into());
                }
                Value::Object(object)
            })
    }
}

/// Cases per property: enough to find shallow bugs on every CI run while
/// the binary stays within seconds; the fuzz targets go deeper by hand.
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    }
}

/// YAML text for `value`: block style (serde-saphyr) or flow style (JSON).
fn to_yaml(value: &Value, block: bool) -> String {
    if block {
        serde_saphyr::to_string(value).expect("any JSON value serialises as YAML")
    } else {
        value.to_string()
    }
}

/// A mount request with these attributes and the driver's other fields.
fn request(attributes: &Value, secrets: &str) -> MountRequest {
    MountRequest {
        attributes: attributes.to_string(),
        secrets: secrets.into(),
        target_path: "/var/lib/kubelet/pods/uid/volumes/kubernetes.io~csi/v/mount".into(),
        permission: "420".into(),
        current_object_version: Vec::new(),
    }
}

/// The error of parsing `yaml` as `objects`, checked for the invariants.
fn objects_error(yaml: &str) -> SpcError {
    fuzzing::parse_objects(yaml.as_bytes());
    spc::parse_objects(yaml).expect_err("hostile objects must be rejected")
}

/// Asserts `message` contains `expected` and stays bounded.
fn assert_names(message: &str, expected: &str) {
    assert!(
        message.contains(expected),
        "{expected:?} not in {message:?}"
    );
    assert!(
        message.len() <= MAX_MESSAGE_BYTES,
        "{} bytes",
        message.len()
    );
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_attributes_json_is_parsed_or_rejected_cleanly(value in strategies::json_value()) {
        fuzzing::parse_attributes(value.to_string().as_bytes());
    }

    #[test]
    fn attribute_maps_with_wrong_values_are_parsed_or_rejected_cleanly(
        entries in prop::collection::vec(
            (
                prop_oneof![
                    4 => prop::sample::select(strategies::attribute_keys()).prop_map(String::from),
                    1 => strategies::text(),
                ],
                prop_oneof![
                    4 => strategies::text().prop_map(Value::String),
                    1 => strategies::json_value(),
                ],
            ),
            0..24,
        )
    ) {
        let attributes = Value::Object(entries.into_iter().collect());
        fuzzing::parse_attributes(attributes.to_string().as_bytes());
    }

    #[test]
    fn credentials_never_appear_in_errors(
        tokens in strategies::json_value(),
        secrets in strategies::json_value(),
        method in prop::sample::select(&["kubernetes", "jwt", "approle", "token"][..]),
    ) {
        const CANARY: &str = "s3cr3t-canary-token";
        // Put the canary into every string of the generated values.
        fn plant(value: &mut Value) {
            match value {
                Value::String(s) => s.push_str(CANARY),
                Value::Array(items) => items.iter_mut().for_each(plant),
                Value::Object(map) => map.values_mut().for_each(plant),
                other => *other = Value::String(CANARY.into()),
            }
        }
        let (mut tokens, mut secrets) = (tokens, secrets);
        plant(&mut tokens);
        plant(&mut secrets);
        let attributes = json!({
            "roleName": "app",
            "vaultAuthMethod": method,
            "objects": "- {objectName: a, secretPath: secret/data/a}",
            "csi.storage.k8s.io/serviceAccount.tokens": tokens.to_string(),
        });
        for secrets in [secrets.to_string(), json!({"csi.storage.k8s.io/serviceAccount.tokens": tokens.to_string()}).to_string()] {
            if let Err(error) = spc::parse(&request(&attributes, &secrets), &Defaults::default()) {
                prop_assert!(!error.message.contains(CANARY), "{}", error.message);
            }
        }
    }

    #[test]
    fn any_objects_document_is_parsed_or_rejected_cleanly(
        document in strategies::objects_document(),
        block in any::<bool>(),
    ) {
        fuzzing::parse_objects(to_yaml(&document, block).as_bytes());
    }

    #[test]
    fn random_yaml_like_text_is_parsed_or_rejected_cleanly(
        text in "[-:&*!|>'\"#%@?,\\[\\]{} \n\ta-z0-9.<~]{0,400}"
    ) {
        fuzzing::parse_objects(text.as_bytes());
    }

    #[test]
    fn random_bytes_are_parsed_or_rejected_cleanly(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        fuzzing::parse_objects(&bytes);
        fuzzing::parse_attributes(&bytes);
    }

    #[test]
    fn valid_objects_always_parse_to_what_was_written(
        objects in (1..20usize).prop_flat_map(|n| {
            (0..n).map(strategies::valid_object).collect::<Vec<_>>()
        }),
        block in any::<bool>(),
    ) {
        let yaml = to_yaml(&Value::Array(objects.clone()), block);
        let parsed = spc::parse_objects(&yaml).map_err(|e| TestCaseError::fail(e.message))?;
        prop_assert_eq!(parsed.len(), objects.len());
        for (spec, written) in parsed.iter().zip(&objects) {
            prop_assert_eq!(spec.name.as_str(), written["objectName"].as_str().unwrap());
            let path = written["secretPath"].as_str().unwrap();
            let path = path.trim_start_matches('/').trim_start_matches("v1/");
            prop_assert_eq!(&spec.request.path, path.split('?').next().unwrap());
            prop_assert_eq!(spec.mode.map(i64::from), written.get("filePermission").and_then(Value::as_i64));
        }
    }

    #[test]
    fn object_names_are_relative_clean_and_bounded(name in prop_oneof![
        any::<String>(),
        "[./a\0]{0,12}",
        (0..300usize, 0..20usize).prop_map(|(len, parts)| vec!["x".repeat(len); parts].join("/")),
    ]) {
        match ObjectName::parse(&name) {
            Ok(parsed) => {
                prop_assert_eq!(parsed.as_str(), name.as_str());
                prop_assert!(!name.starts_with('/') && name.len() <= 4096 && !name.contains('\0'));
                prop_assert!(name.split('/').all(|p| !p.is_empty() && p != "." && p != ".." && p.len() <= 255));
            }
            Err(message) => {
                prop_assert!(message.contains("objectName"), "{}", message);
                prop_assert!(message.len() < 200, "{}", message);
            }
        }
    }

    #[test]
    fn secret_paths_are_normalised_or_rejected(path in prop_oneof![
        any::<String>(),
        "[/.a?=&%v1]{0,16}",
    ]) {
        let yaml = to_yaml(&json!([{"objectName": "a", "secretPath": path}]), false);
        fuzzing::parse_objects(yaml.as_bytes());
        if let Err(error) = spc::parse_objects(&yaml) {
            prop_assert!(error.message.contains("secretPath"), "{}", error.message);
        }
    }

    #[test]
    fn nesting_parses_or_names_the_depth_limit(depth in 1..120usize, block in any::<bool>()) {
        let yaml = nested(depth, block);
        fuzzing::parse_objects(yaml.as_bytes());
        // The object list and the secretArgs map are two levels; flow style adds the `k:` map.
        let total = depth + if block { 2 } else { 3 };
        match spc::parse_objects(&yaml) {
            Ok(_) => prop_assert!(total <= MAX_YAML_DEPTH, "depth {total} passed"),
            Err(error) => {
                prop_assert!(total > MAX_YAML_DEPTH, "depth {total}: {}", error.message);
                prop_assert!(error.message.contains("nests deeper than 32 levels"), "{}", error.message);
            }
        }
    }
}

proptest! {
    // Fewer cases: each one that reaches a limit replays 50,000 nodes first.
    #![proptest_config(ProptestConfig { cases: 16, ..config() })]

    /// Chains of anchors where each level repeats the previous one
    /// `fanout` times: small ones parse, big ones hit a documented limit.
    #[test]
    fn alias_chains_parse_or_hit_a_limit(levels in 1..10u32, fanout in 1..12usize, width in 1..256usize) {
        let yaml = laughs(levels, fanout, width);
        let expanded = (fanout as f64).powi(levels as i32);
        fuzzing::parse_objects(yaml.as_bytes());
        match spc::parse_objects(&yaml) {
            Ok(_) => prop_assert!(expanded * (width as f64 + 4.0) <= 4.0 * MAX_YAML_SCALAR_BYTES as f64),
            Err(error) => {
                prop_assert!(expanded > 10.0, "{levels}x{fanout}: {}", error.message);
                prop_assert!(
                    error.message.contains("after expanding YAML aliases")
                        || error.message.contains("too many YAML aliases"),
                    "{}", error.message
                );
            }
        }
    }
}

/// A "billion laughs" `objects`: anchor `l0` is a `width`-byte string, each
/// further level a list of `fanout` aliases of the one below.
fn laughs(levels: u32, fanout: usize, width: usize) -> String {
    let mut yaml = format!(
        "- objectName: a\n  secretPath: s/a\n  method: PUT\n  secretArgs:\n    l0: &l0 {}\n",
        "x".repeat(width)
    );
    for level in 1..=levels {
        let items = vec![format!("*l{}", level - 1); fanout].join(", ");
        yaml += &format!("    l{level}: &l{level} [{items}]\n");
    }
    yaml
}

/// One object whose `secretArgs` nests `depth` levels, block or flow style.
fn nested(depth: usize, block: bool) -> String {
    let head = "- objectName: a\n  secretPath: s/a\n  method: PUT\n  secretArgs:\n";
    if block {
        let mut yaml = head.to_string();
        for level in 0..depth {
            yaml += &format!("{}k:\n", "  ".repeat(level + 2));
        }
        yaml + &format!("{}v\n", "  ".repeat(depth + 2))
    } else {
        format!("{head}    k: {}1{}\n", "[".repeat(depth), "]".repeat(depth))
    }
}

#[test]
fn a_billion_laughs_is_refused_by_the_expansion_limit() {
    let error = objects_error(&laughs(9, 10, 3));
    assert_names(&error.message, "after expanding YAML aliases");
}

#[test]
fn a_large_scalar_repeated_by_aliases_is_refused_by_the_text_limit() {
    let big = "x".repeat(MAX_OBJECTS_YAML_BYTES / 2);
    let yaml = format!(
        "- objectName: a\n  secretPath: s/a\n  method: PUT\n  secretArgs:\n    a: &a {big}\n    b: [*a, *a, *a, *a]\n"
    );
    let error = objects_error(&yaml);
    assert_names(
        &error.message,
        &format!("more than {MAX_YAML_SCALAR_BYTES} bytes of text"),
    );
}

#[test]
fn deep_nesting_far_past_the_limit_is_refused_without_recursing() {
    for block in [false, true] {
        // Block style needs two spaces a level, so it is kept within the size limit.
        let depth = if block { 700 } else { 100_000 };
        let error = objects_error(&nested(depth, block));
        assert_names(&error.message, "nests deeper than 32 levels");
    }
}

#[test]
fn yaml_over_the_size_limit_is_refused_before_parsing() {
    let yaml = format!(
        "- objectName: a\n  secretPath: s/{}\n",
        "x".repeat(MAX_OBJECTS_YAML_BYTES)
    );
    let error = objects_error(&yaml);
    assert_names(&error.message, "the limit is 1048576");
}

#[test]
fn more_objects_than_the_limit_are_refused() {
    let one = |i: usize| format!("- {{objectName: o{i}, secretPath: s/x}}\n");
    let at_limit: String = (0..MAX_OBJECTS).map(one).collect();
    assert_eq!(spc::parse_objects(&at_limit).unwrap().len(), MAX_OBJECTS);
    let over: String = (0..=MAX_OBJECTS).map(one).collect();
    assert_names(
        &objects_error(&over).message,
        "lists 501 objects; the limit is 500",
    );
}

#[test]
fn a_flood_of_tiny_nodes_is_refused_by_the_node_limit() {
    // About 200,000 empty objects in under 1 MiB: stopped at the node limit,
    // long before 200,000 objects are built.
    let yaml = "- {}\n".repeat(MAX_OBJECTS_YAML_BYTES / 5);
    assert_names(
        &objects_error(&yaml).message,
        &format!("more than {MAX_YAML_NODES} YAML nodes"),
    );
}

#[test]
fn a_second_yaml_document_is_refused() {
    let yaml = "- {objectName: a, secretPath: s/a}\n---\n- {objectName: b, secretPath: s/b}\n";
    assert_names(&objects_error(yaml).message, "more than one YAML document");
}

#[test]
fn huge_values_are_quoted_short_in_errors() {
    let huge = "m".repeat(500_000);
    let yaml = format!("- {{objectName: a, secretPath: s/a, method: {huge}}}\n");
    let error = objects_error(&yaml);
    assert_names(&error.message, "method \"MMMM");
    assert_names(&error.message, "(500000 bytes) is not supported");
    let attributes = json!({"roleName": "r", "objects": "- {objectName: a, secretPath: s/a}", "staleIfError": huge});
    let error = spc::parse(&request(&attributes, "null"), &Defaults::default()).unwrap_err();
    assert_names(&error.message, "(500000 bytes) is not a boolean");
}

#[test]
fn deeply_nested_attribute_json_is_refused() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    fuzzing::parse_attributes(deep.as_bytes());
    let mut request = request(&Value::Null, "null");
    request.attributes = deep;
    let error = spc::parse(&request, &Defaults::default()).unwrap_err();
    assert_names(
        &error.message,
        "attributes are not a JSON object of strings",
    );
}
