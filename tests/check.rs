//! `vault-csi check` as a user runs it: the real binary over a corpus of
//! good and bad SecretProviderClasses (tests/data/check/), its exit codes,
//! JSON shape, stdin, multi-document files, and the online checks against
//! a real OpenBao — including that they never issue a credential.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::cli::{CliRun, vault_csi};
use common::{env, run};
use reqwest::Method;
use serde_json::{Value, json};

/// The corpus folder.
fn corpus(part: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/check")
        .join(part)
}

/// `check --format json` over `args`.
async fn check_json(args: &[&str], env: &[(&str, &str)]) -> (CliRun, Value) {
    let mut all = vec!["check", "--format", "json"];
    all.extend_from_slice(args);
    let run = vault_csi(&all, env, None).await;
    let report = run.json();
    (run, report)
}

/// The comparable part of each finding: where and which rule, not the
/// wording.
fn projection(report: &Value) -> Vec<Value> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            let mut p = json!({
                "document": f["document"],
                "severity": f["severity"],
                "rule": f["rule"],
                "object": f["object"],
                "parameter": f["parameter"],
            });
            if !f["item"].is_null() {
                p["item"] = f["item"].clone();
            }
            p
        })
        .collect()
}

#[test]
fn good_corpus_and_the_examples_pass_with_no_findings() {
    run(async {
        let good = corpus("good");
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        let (run, report) =
            check_json(&[good.to_str().unwrap(), examples.to_str().unwrap()], &[]).await;
        assert_eq!(report["findings"], json!([]), "{}", run.stdout);
        assert_eq!(run.code(), 0, "{run:?}");
        let documents = report["documents"].as_array().unwrap();
        let checked = |name: &str| {
            documents
                .iter()
                .any(|d| d["name"] == name && d["status"] == "checked")
        };
        // Every file and form of the corpus was read: plain, multi-document
        // with other kinds, a List, and the repository's example.
        // and every example's SecretProviderClass.
        for name in [
            "every-parameter",
            "jwt",
            "token",
            "one",
            "two",
            "demo-db",
            "webapp-kv",
            "legacy-kv",
            "orders-db",
            "shop-tls",
            "payments-db",
            "inventory-kv",
            "billing-vault",
            "shop",
        ] {
            assert!(checked(name), "{name} not checked: {}", run.stdout);
        }
        let skipped_in_corpus = documents
            .iter()
            .filter(|d| {
                d["status"] == "skipped"
                    && d["file"]
                        .as_str()
                        .unwrap()
                        .starts_with(good.to_str().unwrap())
            })
            .count();
        assert_eq!(skipped_in_corpus, 2, "ServiceAccount and Deployment");
        assert_eq!(report["summary"]["errors"], 0);
        assert_eq!(report["summary"]["warnings"], 0);
    });
}

#[test]
fn bad_corpus_reports_exactly_the_expected_findings_each_with_a_fix() {
    run(async {
        let mut cases: Vec<PathBuf> = std::fs::read_dir(corpus("bad"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        cases.sort();
        assert!(cases.len() >= 12, "corpus missing: {cases:?}");
        for case in cases {
            let expected_path = case.with_extension("expected.json");
            let expected: Vec<Value> = serde_json::from_str(
                &std::fs::read_to_string(&expected_path)
                    .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display())),
            )
            .unwrap();
            let (run, report) = check_json(&[case.to_str().unwrap()], &[]).await;
            assert_eq!(
                projection(&report),
                expected,
                "{}:\n{}",
                case.display(),
                run.stdout
            );
            for finding in report["findings"].as_array().unwrap() {
                for field in ["message", "fix"] {
                    assert!(
                        finding[field].as_str().is_some_and(|s| s.len() > 10),
                        "{}: finding without a {field}: {finding}",
                        case.display()
                    );
                }
                assert_eq!(finding["file"], case.to_str().unwrap());
            }
            let errors = expected.iter().any(|f| f["severity"] == "error");
            assert_eq!(run.code(), i32::from(errors), "{}", case.display());
        }
    });
}

#[test]
fn warnings_fail_only_with_strict() {
    run(async {
        let file = corpus("bad/warnings.yaml");
        let file = file.to_str().unwrap();
        let relaxed = vault_csi(&["check", file], &[], None).await;
        assert_eq!(relaxed.code(), 0, "{relaxed:?}");
        assert!(
            relaxed.stdout.contains("0 errors, 6 warnings"),
            "{}",
            relaxed.stdout
        );
        let strict = vault_csi(&["check", "--strict", file], &[], None).await;
        assert_eq!(strict.code(), 1, "{strict:?}");
    });
}

#[test]
fn stdin_gives_the_same_findings_as_the_file() {
    run(async {
        let file = corpus("bad/misspelt-parameters.yaml");
        let (_, from_file) = check_json(&[file.to_str().unwrap()], &[]).await;
        let text = std::fs::read(&file).unwrap();
        let piped = vault_csi(&["check", "--format", "json", "-"], &[], Some(&text)).await;
        assert_eq!(piped.code(), 1, "{piped:?}");
        let from_stdin = piped.json();
        assert_eq!(projection(&from_stdin), projection(&from_file));
        assert!(
            from_stdin["findings"]
                .as_array()
                .unwrap()
                .iter()
                .all(|f| f["file"] == "-")
        );
    });
}

#[test]
fn json_shape_is_stable() {
    run(async {
        let file = corpus("bad/manifest-shape.yaml");
        let (_, report) = check_json(&[file.to_str().unwrap()], &[]).await;
        let keys = |v: &Value| {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        assert_eq!(keys(&report), ["documents", "findings", "summary"]);
        assert_eq!(
            keys(&report["summary"]),
            ["checked", "errors", "skipped", "warnings"]
        );
        let finding = &report["findings"][0];
        assert_eq!(
            keys(finding),
            [
                "document",
                "file",
                "fix",
                "item",
                "line",
                "message",
                "name",
                "namespace",
                "object",
                "parameter",
                "rule",
                "severity"
            ]
        );
        assert_eq!(
            keys(&report["documents"][0]),
            [
                "document",
                "file",
                "item",
                "kind",
                "line",
                "name",
                "namespace",
                "note",
                "online",
                "status"
            ]
        );
        assert_eq!(finding["line"], 2, "the line where the document starts");
        assert_eq!(report["summary"]["errors"], 9);
        assert_eq!(report["summary"]["warnings"], 2);
        assert_eq!(
            report["summary"]["checked"], 3,
            "azure and no-provider are not checked"
        );
    });
}

#[test]
fn human_output_names_document_object_and_fix() {
    run(async {
        let file = corpus("bad/bad-objects.yaml");
        let run = vault_csi(&["check", file.to_str().unwrap()], &[], None).await;
        assert_eq!(run.code(), 1);
        let out = &run.stdout;
        for expected in [
            "bad-objects.yaml:2 (document 1, team/objects):",
            "  error   [object] object bad-method, method: method \"DELETE\" is not supported",
            "          fix: use GET, PUT, POST or LIST",
            "[misspelt-field] object misspelt, secretkey: unknown field secretkey is ignored, so secretKey is not set",
            "fix: did you mean secretKey? rename secretkey to secretKey",
            "9 errors, 1 warning; 1 SecretProviderClass checked, 0 documents skipped",
        ] {
            assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
        }
        let multi = corpus("good/manifests.yaml");
        let run = vault_csi(&["check", multi.to_str().unwrap()], &[], None).await;
        assert!(
            run.stdout.contains(
                "(document 1, team-b/app): skipped: ServiceAccount is not a SecretProviderClass"
            ),
            "{}",
            run.stdout
        );
        assert!(
            run.stdout.contains("(document 2, team-b/app): ok"),
            "{}",
            run.stdout
        );
    });
}

#[test]
fn unusable_command_lines_exit_2_and_unreadable_files_are_findings() {
    run(async {
        let good = corpus("good/manifests.yaml");
        let good = good.to_str().unwrap();
        let no_files = vault_csi(&["check"], &[], None).await;
        assert_eq!(no_files.code(), 2, "{no_files:?}");
        let bad_format = vault_csi(&["check", "--format", "xml", good], &[], None).await;
        assert_eq!(bad_format.code(), 2, "{bad_format:?}");
        let no_token = vault_csi(
            &["check", "--vault-addr", "http://127.0.0.1:1", good],
            &[],
            None,
        )
        .await;
        assert_eq!(no_token.code(), 2, "{no_token:?}");
        assert!(
            no_token.stderr.contains("VAULT_TOKEN or --token-file"),
            "{}",
            no_token.stderr
        );
        let (missing, report) = check_json(&["/nonexistent/spc.yaml", good], &[]).await;
        assert_eq!(missing.code(), 1);
        assert_eq!(report["findings"][0]["rule"], "unreadable-file");
        assert_eq!(
            report["summary"]["checked"], 1,
            "the readable file is still checked"
        );
    });
}

/// A token with `policies` (an empty list would inherit root's), made as root.
async fn token_with(policies: &[&str]) -> String {
    let env = env().await;
    let answer = env
        .api(
            Method::POST,
            "auth/token/create",
            Some(json!({ "policies": policies, "ttl": "10m" })),
        )
        .await;
    answer["auth"]["client_token"].as_str().unwrap().to_string()
}

/// A SecretProviderClass document.
fn spc(name: &str, namespace: &str, role: &str, objects: &str) -> String {
    let objects: String = objects.lines().map(|l| format!("      {l}\n")).collect();
    format!(
        "apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\nmetadata:\n  name: {name}\n  \
         namespace: {namespace}\nspec:\n  provider: vault\n  parameters:\n    roleName: {role}\n    \
         objects: |\n{objects}"
    )
}

/// `check --format json --vault-addr <bao> -` with `token`.
async fn check_online(yaml: &str, token: &str) -> (CliRun, Value) {
    let env = env().await;
    let run = vault_csi(
        &[
            "check",
            "--format",
            "json",
            "--vault-addr",
            env.bao.addr(),
            "-",
        ],
        &[("VAULT_TOKEN", token)],
        Some(yaml.as_bytes()),
    )
    .await;
    assert!(
        !run.stdout.contains(token) && !run.stderr.contains(token),
        "the token reached the output"
    );
    let report = run.json();
    (run, report)
}

#[test]
fn online_checks_find_kv_and_role_problems() {
    run(async {
        let env = env().await;
        env.kv2_put(
            "check-online/app",
            json!({"username": "u", "password": "p"}),
        )
        .await;
        env.k8s_role(
            "check-online",
            "app",
            "check",
            &[("secret/data/check-online/app", "\"read\"")],
            Duration::from_secs(600),
        )
        .await;
        let objects = "\
- {objectName: no-data, secretPath: secret/check-online/app, secretKey: password}
- {objectName: typo, secretPath: secret/data/check-online/app, secretKey: pasword}
- {objectName: missing, secretPath: secret/data/check-online/missing}
- {objectName: fine, secretPath: secret/data/check-online/app, secretKey: password}
- {objectName: no-mount, secretPath: check-no-such-mount/x}
- {objectName: write, secretPath: secret/data/check-online/app, method: PUT}";
        let yaml = [
            spc("kv", "check", "check-online", objects),
            spc(
                "no-role",
                "check",
                "check-no-such-role",
                "- {objectName: a, secretPath: secret/data/check-online/app}",
            ),
            spc(
                "other-ns",
                "elsewhere",
                "check-online",
                "- {objectName: a, secretPath: secret/data/check-online/app}",
            ),
        ]
        .join("---\n");

        let (run, report) = check_online(&yaml, env.bao.root_token()).await;
        assert_eq!(run.code(), 1);
        let rules: Vec<(Value, Value, Value, Value)> = report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["name"].clone(),
                    f["severity"].clone(),
                    f["rule"].clone(),
                    f["object"].clone(),
                )
            })
            .collect();
        let expected: Vec<(Value, Value, Value, Value)> = [
            ("kv", "kv2-path", json!("no-data")),
            ("kv", "secret-key", json!("typo")),
            ("kv", "not-found", json!("missing")),
            ("kv", "no-mount", json!("no-mount")),
            ("kv", "kv-write", json!("write")),
            ("no-role", "role-missing", Value::Null),
            ("other-ns", "role-namespace", Value::Null),
        ]
        .into_iter()
        .map(|(n, r, o)| (json!(n), json!("error"), json!(r), o))
        .collect();
        assert_eq!(rules, expected, "{}", run.stdout);
        let typo = &report["findings"][1];
        assert!(
            typo["fix"].as_str().unwrap().contains("password, username"),
            "key names (never values) are listed: {typo}"
        );
        assert!(
            !run.stdout.contains("\"p\""),
            "no secret value in the output"
        );
        assert!(
            report["documents"]
                .as_array()
                .unwrap()
                .iter()
                .all(|d| d["online"] == true)
        );

        // A token that may read only the one secret: the rest is denied.
        env.policy(
            "check-limited",
            &[("secret/data/check-online/app", "\"read\"")],
        )
        .await;
        let limited = token_with(&["check-limited"]).await;
        let (_, report) =
            check_online(&spc("kv", "check", "check-online", objects), &limited).await;
        let rules: Vec<(String, String)> = report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["object"].as_str().unwrap_or("-").to_string(),
                    f["rule"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let expected: Vec<(String, String)> = [
            ("no-data", "kv2-path"),
            ("typo", "secret-key"),
            ("missing", "permission-denied"),
            ("no-mount", "permission-denied"),
            ("write", "kv-write"),
        ]
        .iter()
        .map(|(o, r)| (o.to_string(), r.to_string()))
        .collect();
        assert_eq!(rules, expected, "{report:#}");
    });
}

#[test]
fn online_checks_never_issue_a_certificate_or_a_database_login() {
    run(async {
        let env = env().await;
        env.api(
            Method::POST,
            "sys/mounts/check-pki",
            Some(json!({"type": "pki", "config": {"max_lease_ttl": "24h"}})),
        )
        .await;
        env.api(
            Method::POST,
            "check-pki/root/generate/internal",
            Some(json!({"common_name": "check-ca", "ttl": "24h"})),
        )
        .await;
        env.api(
            Method::POST,
            "check-pki/roles/web",
            Some(json!({"allowed_domains": "example.com", "allow_subdomains": true})),
        )
        .await;
        let pg = common::postgres::start().await;
        common::postgres::database_engine(&pg, "check-db", &[("app", "60s", "120s")]).await;
        env.kv2_put("check-engines/app", json!({"password": "p"}))
            .await;
        env.policy(
            "check-engines",
            &[
                ("check-pki/issue/web", "\"update\""),
                ("check-db/creds/app", "\"read\""),
                ("secret/data/check-engines/app", "\"read\""),
            ],
        )
        .await;
        let objects = "\
- {objectName: tls.crt, secretPath: check-pki/issue/web, method: PUT, secretKey: certificate, secretArgs: {common_name: a.example.com}}
- {objectName: db-user, secretPath: check-db/creds/app, secretKey: username}
- {objectName: password, secretPath: secret/data/check-engines/app, secretKey: password}";
        let yaml = spc("engines", "check", "check-online", objects);

        let allowed = token_with(&["check-engines"]).await;
        let (run, report) = check_online(&yaml, &allowed).await;
        assert_eq!(report["findings"], json!([]), "{}", run.stdout);
        assert_eq!(run.code(), 0);

        // With only the default policy the same checks refuse all three.
        let denied = token_with(&["default"]).await;
        let (_, report) = check_online(&yaml, &denied).await;
        let denied_objects: Vec<&str> = report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["rule"] == "permission-denied")
            .map(|f| f["object"].as_str().unwrap())
            .collect();
        assert_eq!(denied_objects, ["tls.crt", "db-user", "password"]);

        // The audit log: nothing reached the issuing paths, and everything
        // the two tokens sent was a read, except capabilities-self.
        assert_eq!(env.audit_requests("check-pki/issue/web"), 0);
        assert_eq!(env.audit_requests("check-db/creds/app"), 0);
        let sent: Vec<Value> = env
            .bao
            .audit_entries()
            .into_iter()
            .filter(|e| {
                e["type"] == "request"
                    && [allowed.as_str(), denied.as_str()]
                        .contains(&e["auth"]["client_token"].as_str().unwrap_or_default())
            })
            .collect();
        assert!(
            sent.iter()
                .any(|e| e["request"]["path"] == "sys/capabilities-self"),
            "the capabilities were asked: {sent:#?}"
        );
        for entry in &sent {
            let request = &entry["request"];
            assert!(
                matches!(request["operation"].as_str(), Some("read" | "list"))
                    || request["path"] == "sys/capabilities-self",
                "check sent a write: {request:#}"
            );
        }
        drop(pg);
    });
}
