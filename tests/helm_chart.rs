//! The Helm chart in deploy/helm/vault-csi-provider, checked against the
//! plain manifests in deploy/ without `helm` (no registry reachable here
//! ships it; `helm lint` and `helm template` are manual checks in
//! deploy/README.md).
//!
//! How: the templates are kept literal wherever they must equal the plain
//! manifests, with `{{ ... }}` only where a value is configurable.  The test
//! then *substitutes the defaults* from values.yaml for those references and
//! compares the result, parsed as YAML, with the plain manifests: the whole
//! DaemonSet `spec` (args, env, ports, probes, paths, securityContext,
//! resources, tolerations, ...), names, namespaces, labels and RBAC rules
//! must be equal, so any drift between the two fails here.
//!
//! What the substitution understands, and nothing more (anything else in a
//! template fails the test, which is the point: keep templates this simple):
//! - `.Values.a.b` and `.Values.a.b | quote`: the default scalar;
//! - `toYaml .Values.a.b | nindent N`: the default as JSON (valid YAML flow);
//! - blocks `if .Values.a`, `if not .Values.a`, `with .Values.a`,
//!   `range .Values.a` ... `end`: dropped when the default is empty or false
//!   (Go template truthiness); an `if` that is on keeps its body; a `with`
//!   or `range` that is on by default is rejected (its body would need `.`);
//! - `include "vault-csi.fullname" .`: "vault-csi" (the helper's default,
//!   checked against _helpers.tpl below); `include "vault-csi.helmLabels"`:
//!   nothing (Helm's own bookkeeping labels, which the plain manifests cannot
//!   have); `.Release.Namespace`: "vault-csi".
//!
//! Limits: blocks that are off by default are not rendered, so their
//! contents are checked for flag names (every `- -flag` in the DaemonSet
//! template must be a flag of the binary), the guardrail and limit flags
//! parse with example values, and `helm template` is a check by hand;
//! helpers are not executed.  NOTES.txt is checked only for its `.Values` references.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use clap::CommandFactory;
use common::manifests::{assert_validated, no_env, read, root, serve, validate};
use serde_json::{Value, json};
use vault_csi::cli::Cli;

const CHART: &str = "deploy/helm/vault-csi-provider";
/// The plain manifests' namespace, used as `.Release.Namespace`.
const NAMESPACE: &str = "vault-csi";
fn values() -> Value {
    serde_saphyr::from_str(&read(&format!("{CHART}/values.yaml")))
        .unwrap_or_else(|e| panic!("{CHART}/values.yaml is not YAML: {e}"))
}

/// Every template file's name and text.
fn templates() -> Vec<(String, String)> {
    let dir = root().join(CHART).join("templates");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("a directory entry").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name.clone(), read(&format!("{CHART}/templates/{name}")))
        })
        .collect();
    files.sort();
    files
}

fn template(name: &str) -> String {
    read(&format!("{CHART}/templates/{name}"))
}

/// The value at a dotted path.
fn lookup<'a>(values: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(values, |v, key| v.get(key))
}

/// `values` with the value at `path` replaced.
fn with_value(mut values: Value, path: &str, new: Value) -> Value {
    let mut at = &mut values;
    for key in path.split('.') {
        at = at
            .get_mut(key)
            .unwrap_or_else(|| panic!("no value {path} in values.yaml"));
    }
    *at = new;
    values
}

/// Go template truthiness.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Every `.Values.a.b` path a template text refers to.
fn value_refs(text: &str) -> Vec<String> {
    text.match_indices(".Values.")
        .map(|(at, m)| {
            let path: String = text[at + m.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
                .collect();
            path.trim_end_matches('.').to_string()
        })
        .collect()
}

fn values_path(file: &str, reference: &str) -> String {
    reference
        .strip_prefix(".Values.")
        .unwrap_or_else(|| panic!("{file}: expected a .Values reference, found {reference:?}"))
        .to_string()
}

fn default_of<'a>(file: &str, values: &'a Value, reference: &str) -> &'a Value {
    let path = values_path(file, reference);
    lookup(values, &path).unwrap_or_else(|| panic!("{file}: {reference} is not in values.yaml"))
}

fn scalar_text(file: &str, reference: &str, value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("{file}: {reference} is not a scalar: {other}"),
    }
}

/// Whether a block's body is emitted with `values`.
fn block_is_on(file: &str, keyword: &str, condition: &[&str], values: &Value) -> bool {
    let on = match condition {
        [reference] => truthy(default_of(file, values, reference)),
        ["not", reference] if keyword == "if" => !truthy(default_of(file, values, reference)),
        _ => panic!(
            "{file}: unsupported condition `{keyword} {}`",
            condition.join(" ")
        ),
    };
    assert!(
        !(on && keyword != "if"),
        "{file}: `{keyword} {}` is on with these values; its body would need `.`, which this \
         test does not resolve: write it literally or with .Values references",
        condition.join(" ")
    );
    on
}

/// The replacement for one non-block action.
fn substitute(file: &str, action: &str, values: &Value, trimmed_left: bool) -> String {
    let words: Vec<&str> = action.split_whitespace().collect();
    match words.as_slice() {
        [reference] if reference.starts_with(".Values.") => {
            scalar_text(file, reference, default_of(file, values, reference))
        }
        [reference, "|", "quote"] => {
            let text = scalar_text(file, reference, default_of(file, values, reference));
            Value::from(text).to_string()
        }
        ["toYaml", reference, "|", "nindent", _] if trimmed_left => {
            format!(" {}", default_of(file, values, reference))
        }
        ["include", "\"vault-csi.fullname\"", "."] => "vault-csi".into(),
        [
            "include",
            "\"vault-csi.helmLabels\"",
            ".",
            "|",
            "nindent",
            _,
        ] => String::new(),
        [".Release.Namespace"] => NAMESPACE.into(),
        _ => panic!("{file}: the chart test does not resolve `{{{{ {action} }}}}`"),
    }
}

/// The template with the defaults in `values` substituted (see the module
/// documentation for what is understood).
fn resolve(file: &str, text: &str, values: &Value) -> String {
    let mut out = String::new();
    let mut rest = text;
    // Whether each open block's body is emitted.
    let mut blocks: Vec<bool> = Vec::new();
    while let Some(open) = rest.find("{{") {
        let (before, after) = rest.split_at(open);
        let close = after
            .find("}}")
            .unwrap_or_else(|| panic!("{file}: an unclosed {{{{"));
        let mut action = &after[2..close];
        rest = &after[close + 2..];
        let trim_left = action.starts_with('-');
        if trim_left {
            action = &action[1..];
        }
        if action.ends_with('-') {
            action = &action[..action.len() - 1];
            rest = rest.trim_start();
        }
        let action = action.trim();
        let emitting = blocks.iter().all(|on| *on);
        if emitting {
            out.push_str(before);
            if trim_left {
                out.truncate(out.trim_end().len());
            }
        }
        let words: Vec<&str> = action.split_whitespace().collect();
        match words.as_slice() {
            _ if action.starts_with("/*") => {}
            [keyword @ ("if" | "with" | "range"), condition @ ..] => {
                blocks.push(emitting && block_is_on(file, keyword, condition, values));
            }
            ["end"] => {
                blocks
                    .pop()
                    .unwrap_or_else(|| panic!("{file}: an `end` without a block"));
            }
            _ if emitting => out.push_str(&substitute(file, action, values, trim_left)),
            _ => {}
        }
    }
    assert!(blocks.is_empty(), "{file}: a block is not closed");
    out.push_str(rest);
    out
}

/// The documents a template renders to with `values` (none when it renders
/// only comments or whitespace).
fn render(file: &str, values: &Value) -> Vec<Value> {
    let text = resolve(file, &template(file), values);
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
        .unwrap_or_else(|e| panic!("{file} renders to invalid YAML: {e}\n{text}"));
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

fn plain(file: &str) -> Vec<Value> {
    serde_saphyr::from_multiple(&read(&format!("deploy/{file}")))
        .unwrap_or_else(|e| panic!("deploy/{file} is not YAML: {e}"))
}

/// The first place where `a` and `b` differ, as a path and both values.
fn difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| {
                difference(
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    &format!("{path}.{k}"),
                )
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (p, q))| difference(p, q, &format!("{path}[{i}]"))),
        _ if a == b => None,
        _ => Some(format!("{path}: chart {a} != plain {b}")),
    }
}

fn assert_same(chart: &Value, plain: &Value, what: &str) {
    if let Some(diff) = difference(chart, plain, what) {
        panic!("the chart drifted from the plain manifests: {diff}");
    }
}

fn chart_daemonset() -> Value {
    let docs = render("daemonset.yaml", &values());
    let [ds] = docs.as_slice() else {
        panic!("daemonset.yaml renders {} documents", docs.len());
    };
    ds.clone()
}

#[test]
fn every_values_reference_exists_in_values_yaml() {
    let values = values();
    let mut seen = 0;
    for (file, text) in templates() {
        for path in value_refs(&text) {
            seen += 1;
            assert!(
                lookup(&values, &path).is_some(),
                "templates/{file} refers to .Values.{path}, which values.yaml does not define"
            );
        }
    }
    assert!(
        seen > 20,
        "only {seen} references found: is the scan broken?"
    );
}

#[test]
fn every_value_is_used_and_documented() {
    let values = values();
    let refs: BTreeSet<String> = templates()
        .iter()
        .flat_map(|(_, text)| value_refs(text))
        .collect();
    // A value is used when a template names it, or a map containing it.
    fn leaves(value: &Value, path: String, out: &mut Vec<String>) {
        match value {
            Value::Object(map) if !map.is_empty() => {
                for (k, v) in map {
                    let child = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    leaves(v, child, out);
                }
            }
            _ => out.push(path),
        }
    }
    let mut all = Vec::new();
    leaves(&values, String::new(), &mut all);
    for leaf in &all {
        let used = refs
            .iter()
            .any(|r| r == leaf || leaf.starts_with(&format!("{r}.")));
        assert!(used, "values.yaml defines {leaf}, which no template uses");
    }

    // Every key line has a comment right above it.
    let text = read(&format!("{CHART}/values.yaml"));
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let is_key = !trimmed.starts_with('#')
            && !trimmed.starts_with('-')
            && trimmed.split_once(':').is_some_and(|(k, _)| {
                !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            });
        if is_key {
            let above = lines[..i].iter().rev().find(|l| !l.trim().is_empty());
            assert!(
                above.is_some_and(|l| l.trim_start().starts_with('#')),
                "values.yaml line {}: `{}` has no comment above it",
                i + 1,
                line.trim()
            );
        }
    }
}

#[test]
fn helpers_and_chart_metadata_match_what_the_test_assumes() {
    let helpers = template("_helpers.tpl");
    assert!(
        helpers.contains(r#"default "vault-csi" .Values.fullnameOverride"#),
        "vault-csi.fullname no longer defaults to vault-csi:\n{helpers}"
    );
    assert_eq!(values()["fullnameOverride"], "");
    let labels = helpers
        .split(r#"define "vault-csi.helmLabels""#)
        .nth(1)
        .and_then(|body| body.split("{{- end").next())
        .expect("a vault-csi.helmLabels helper");
    for key in ["app.kubernetes.io/name", "app.kubernetes.io/component"] {
        assert!(
            !labels.contains(key),
            "helmLabels must not set {key}: the selector uses it"
        );
    }
    let chart: Value = serde_saphyr::from_str(&read(&format!("{CHART}/Chart.yaml"))).unwrap();
    assert_eq!(chart["apiVersion"], "v2");
    assert_eq!(chart["name"], "vault-csi-provider");
    assert_eq!(
        values()["image"]["tag"],
        chart["appVersion"],
        "image.tag and the chart's appVersion"
    );
}

#[test]
fn default_daemonset_equals_the_plain_manifest() {
    let chart = chart_daemonset();
    let plain = plain("daemonset.yaml").remove(0);
    for field in ["apiVersion", "kind", "spec"] {
        assert_same(&chart[field], &plain[field], field);
    }
    for field in ["name", "namespace", "labels"] {
        assert_same(
            &chart["metadata"][field],
            &plain["metadata"][field],
            &format!("metadata.{field}"),
        );
    }
    // The comparison is not vacuous: the essentials are there.
    let container = &chart["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["args"][0], "-endpoint=/provider/vault.sock");
    assert_eq!(container["volumeMounts"][0]["mountPath"], "/provider");
    assert_eq!(
        chart["spec"]["template"]["spec"]["volumes"][0]["hostPath"]["path"],
        "/var/run/secrets-store-csi-providers"
    );
    assert_eq!(
        container["livenessProbe"]["httpGet"]["path"],
        "/health/ready"
    );
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        container["securityContext"]["capabilities"]["drop"][0],
        "ALL"
    );
}

#[test]
fn default_service_account_and_rbac_equal_the_plain_manifests() {
    let values = values();
    for (file, expected_kinds) in [
        ("serviceaccount.yaml", &["ServiceAccount"][..]),
        ("rbac.yaml", &["Role", "RoleBinding"][..]),
    ] {
        let chart = render(file, &values);
        let plain = plain(file);
        let kinds: Vec<&str> = chart.iter().filter_map(|d| d["kind"].as_str()).collect();
        assert_eq!(kinds, expected_kinds, "{file}");
        assert_eq!(chart.len(), plain.len(), "{file}");
        for (c, p) in chart.iter().zip(&plain) {
            assert_same(c, p, &format!("{file} {}", p["kind"]));
        }
    }
}

#[test]
fn self_minting_rbac_is_off_by_default_and_equals_the_plain_file_when_on() {
    assert!(render("rbac-self-mint.yaml", &values()).is_empty());
    let on = with_value(values(), "selfMint.enabled", json!(true));
    let chart = render("rbac-self-mint.yaml", &on);
    let plain = plain("rbac-self-mint.yaml");
    assert_eq!(chart.len(), 2);
    for (c, p) in chart.iter().zip(&plain) {
        assert_same(c, p, &format!("rbac-self-mint.yaml {}", p["kind"]));
    }
}

#[test]
fn metrics_objects_are_off_by_default_and_point_at_the_health_port() {
    for file in ["metrics-service.yaml", "servicemonitor.yaml"] {
        assert!(
            render(file, &values()).is_empty(),
            "{file} is on by default"
        );
    }
    let on = with_value(values(), "metrics.service.enabled", json!(true));
    let on = with_value(on, "metrics.serviceMonitor.enabled", json!(true));
    let service = render("metrics-service.yaml", &on).remove(0);
    let monitor = render("servicemonitor.yaml", &on).remove(0);
    let ds = chart_daemonset();
    let pod_labels = &ds["spec"]["template"]["metadata"]["labels"];
    let container = &ds["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(&service["spec"]["selector"], pod_labels);
    let port = &service["spec"]["ports"][0];
    assert_eq!(port["targetPort"], container["ports"][0]["name"]);
    assert_eq!(port["port"], container["ports"][0]["containerPort"]);
    // The ServiceMonitor selects the Service by labels the Service has.
    let selector = monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("matchLabels");
    assert!(!selector.is_empty());
    for (key, value) in selector {
        assert_eq!(&service["metadata"]["labels"][key], value, "label {key}");
    }
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], port["name"]);
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
}

#[test]
fn default_args_parse_with_the_binary_parser() {
    let ds = chart_daemonset();
    let container = &ds["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<String> = container["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("a string arg").to_string())
        .collect();
    let settings = serve(&args, &no_env);
    assert_eq!(settings.endpoint, PathBuf::from("/provider/vault.sock"));
    assert_eq!(settings.health_addr, ":8080");
    let vault_addr = container["env"][0]["value"].as_str().expect("VAULT_ADDR");
    let env = |key: &str| (key == "VAULT_ADDR").then(|| vault_addr.to_string());
    assert_eq!(
        serve(&args, &env).defaults.vault_address,
        values()["vaultAddress"]
    );
}

#[test]
fn every_flag_in_the_daemonset_template_is_a_flag_of_the_binary() {
    let known: BTreeSet<String> = Cli::command()
        .get_arguments()
        .filter_map(|a| a.get_long().map(str::to_string))
        .collect();
    let text = template("daemonset.yaml");
    let flags: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- -"))
        .map(|rest| rest.split('=').next().unwrap_or(rest))
        .collect();
    assert!(flags.len() > 10, "only {flags:?} found");
    for flag in flags {
        assert!(
            known.contains(flag),
            "the chart passes -{flag}, which the binary does not know"
        );
    }
}

#[test]
fn rendered_chart_validates_against_the_kubernetes_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let values = with_value(values(), "selfMint.enabled", json!(true));
    let values = with_value(values, "metrics.service.enabled", json!(true));
    let mut files = Vec::new();
    // The ServiceMonitor is a CRD the validator has no schema for.
    for file in [
        "serviceaccount.yaml",
        "rbac.yaml",
        "rbac-self-mint.yaml",
        "daemonset.yaml",
        "metrics-service.yaml",
    ] {
        let path = dir.path().join(file);
        std::fs::write(&path, resolve(file, &template(file), &values)).unwrap();
        files.push(path);
    }
    let stdout = validate(&files);
    for resource in [
        "serviceaccount/vault-csi",
        "role/vault-csi",
        "rolebinding/vault-csi",
        "clusterrole/vault-csi-self-mint",
        "clusterrolebinding/vault-csi-self-mint",
        "daemonset/vault-csi",
        "service/vault-csi-metrics",
    ] {
        assert_validated(&stdout, resource);
    }
}

#[test]
fn guardrail_and_limit_flags_parse_as_the_chart_renders_them() {
    // The lines of the blocks that are off by default, with example values
    // in place of the `with`/`join` actions.
    let text = template("daemonset.yaml");
    let example = |flag: &str| match flag {
        "allowed-vault-addresses" => "https://vault.vault.svc:8200,*.vault.svc",
        "vault-redirect-hosts" => "vault-0.vault-internal:8200,vault-1.vault-internal",
        "max-response-bytes" => "8388608",
        "vault-max-concurrent-requests" => "64",
        "allow-spc-tls-overrides" => "false",
        _ => unreachable!(),
    };
    let mut args = Vec::new();
    for line in text.lines().map(str::trim) {
        let Some((flag, value)) = line.strip_prefix("- -").and_then(|r| r.split_once('=')) else {
            continue;
        };
        let guard = [
            "allowed-vault-addresses",
            "vault-redirect-hosts",
            "max-response-bytes",
            "vault-max-concurrent-requests",
            "allow-spc-tls-overrides",
        ];
        if guard.contains(&flag) {
            assert!(value.contains("{{") || value == "false", "-{flag}={value}");
            args.push(format!("-{flag}={}", example(flag)));
        }
    }
    assert_eq!(args.len(), 5, "{args:?}");
    let settings = serve(&args, &no_env);
    let allowed = settings
        .defaults
        .policy
        .allowed_addresses
        .expect("an allow list");
    assert!(allowed.to_string().contains("*.vault.svc"), "{allowed}");
    assert!(!settings.defaults.policy.allow_tls_overrides);
    assert_eq!(settings.client.max_response_bytes, 8 * 1024 * 1024);
    assert_eq!(settings.client.max_concurrent_requests, 64);
}
