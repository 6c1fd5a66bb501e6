//! `GET /metrics` on the health address, against a real OpenBao: mounts by
//! gRPC code, Vault requests by operation and status, logins, and no label
//! (nor anything else in the scrape) naming a pod, namespace,
//! SecretProviderClass, path or secret value.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{MountBuilder, Provider, TestPod, env, run};
use serde_json::json;
use tonic::Code;

/// A secret value that must never appear in a scrape.
const CANARY: &str = "canary-metrics-5d1e";

/// Distinctive names, so a scan for them cannot match anything by chance.
const NAMESPACE: &str = "metricsns-q7";
const SERVICE_ACCOUNT: &str = "metricssa-q7";
const SPC: &str = "metricsspc-q7";
const ROLE: &str = "metricsrole-q7";
const PATH_SEGMENT: &str = "metricspath-q7";

/// One object reading `key` of the KV v2 secret at `secret/data/<PATH_SEGMENT>/<name>`.
fn kv(name: &str, key: &str) -> String {
    format!(
        "- objectName: out\n  secretPath: secret/data/{PATH_SEGMENT}/{name}\n  secretKey: {key}\n"
    )
}

/// The value of the sample whose series (name and labels) is exactly `series`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?;
        rest.strip_prefix(' ')?.trim().parse().ok()
    })
}

/// Like [`sample`], failing the test with the scrape when the series is absent.
fn must(text: &str, series: &str) -> f64 {
    sample(text, series).unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

/// Every `(key, value)` label pair of every sample line.  The provider's
/// label values never hold `,` `"` or `=`, so a plain split is exact here.
fn labels(text: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((_, rest)) = line.split_once('{') else {
            continue;
        };
        let (set, _) = rest.split_once('}').expect("closing brace");
        for pair in set.split(',') {
            let (key, value) = pair.split_once('=').expect("key=value");
            pairs.push((key.to_string(), value.trim_matches('"').to_string()));
        }
    }
    pairs
}

#[test]
fn scrape_counts_mounts_and_vault_calls_and_names_nothing() {
    run(async {
        let env = env().await;
        env.kv2_put(
            &format!("{PATH_SEGMENT}/app"),
            json!({ "password": CANARY }),
        )
        .await;
        env.k8s_role(
            ROLE,
            SERVICE_ACCOUNT,
            NAMESPACE,
            &[(&format!("secret/data/{PATH_SEGMENT}/*"), "\"read\"")],
            Duration::from_secs(600),
        )
        .await;
        let provider = Provider::start(&[]).await;
        let pod = TestPod::new(NAMESPACE, SERVICE_ACCOUNT);
        let request = |role: &str, objects: &str| {
            MountBuilder::new(env.bao.addr(), role, objects)
                .param("secretProviderClass", SPC)
                .pod(&pod, &env.signer, "vault")
        };

        // One success, one Vault 404, one request that fails to parse, one
        // login Vault refuses, and one Vault that cannot be reached.
        let ok = provider
            .mount(request(ROLE, &kv("app", "password")).build())
            .await
            .expect("mount");
        assert_eq!(ok.files[0].contents, CANARY.as_bytes());
        let missing = provider
            .mount(request(ROLE, &kv("missing", "password")).build())
            .await
            .expect_err("a missing secret fails");
        assert_eq!(missing.code(), Code::NotFound, "{missing:?}");
        let unparsable = provider
            .mount(
                request(ROLE, &kv("app", "password"))
                    .without("objects")
                    .build(),
            )
            .await
            .expect_err("no objects fails");
        assert_eq!(unparsable.code(), Code::InvalidArgument, "{unparsable:?}");
        let refused = provider
            .mount(request("no-such-role-q7", &kv("app", "password")).build())
            .await
            .expect_err("an unknown role fails");
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let nowhere = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        provider
            .mount(
                MountBuilder::new(&nowhere, ROLE, &kv("app", "password"))
                    .param("secretProviderClass", SPC)
                    .pod(&pod, &env.signer, "vault")
                    .build(),
            )
            .await
            .expect_err("an unreachable Vault fails");

        let response = reqwest::get(format!("http://{}/metrics", provider.health))
            .await
            .expect("scrape");
        assert_eq!(response.status(), 200);
        let content_type = response.headers()[reqwest::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            content_type.starts_with("application/openmetrics-text; version=1.0.0"),
            "{content_type}"
        );
        let text = response.text().await.unwrap();
        assert!(text.ends_with("# EOF\n"), "{text}");

        // Mounts by code, each timed; the parse failure counts too.
        let refused_code = format!("{:?}", refused.code());
        for code in ["OK", "NotFound", "InvalidArgument"] {
            assert!(must(&text, &format!("vault_csi_mounts_total{{code=\"{code}\"}}")) >= 1.0);
            assert!(
                must(
                    &text,
                    &format!("vault_csi_mount_duration_seconds_count{{code=\"{code}\"}}")
                ) >= 1.0
            );
        }
        let total: f64 = text
            .lines()
            .filter(|l| l.starts_with("vault_csi_mounts_total{"))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum();
        assert_eq!(
            total, 5.0,
            "five mounts ({refused_code} for the role):\n{text}"
        );
        assert!(
            text.contains("vault_csi_mount_duration_seconds_bucket{le=\"+Inf\",code=\"OK\"} 1")
        );

        // Vault requests by operation and status; logins only when accepted.
        let login_ok = must(
            &text,
            "vault_csi_vault_requests_total{operation=\"login\",status=\"200\"}",
        );
        assert!(login_ok >= 1.0);
        assert!(
            must(
                &text,
                "vault_csi_vault_requests_total{operation=\"read\",status=\"200\"}"
            ) >= 1.0
        );
        assert!(
            must(
                &text,
                "vault_csi_vault_requests_total{operation=\"read\",status=\"404\"}"
            ) >= 1.0
        );
        assert!(
            labels(&text).iter().any(|(k, v)| k == "status"
                && v.starts_with('4')
                && text.contains(&format!("operation=\"login\",status=\"{v}\""))),
            "the refused login is counted with its 4xx status:\n{text}"
        );
        assert!(
            must(
                &text,
                "vault_csi_vault_requests_total{operation=\"login\",status=\"error\"}"
            ) >= 1.0,
            "a connection failure is counted as status=\"error\":\n{text}"
        );
        assert!(
            must(
                &text,
                "vault_csi_vault_request_duration_seconds_count{operation=\"read\"}"
            ) >= 2.0
        );
        assert!(
            must(
                &text,
                "vault_csi_vault_request_duration_seconds_count{operation=\"login\"}"
            ) >= 2.0
        );
        assert_eq!(must(&text, "vault_csi_vault_logins_total"), login_ok);

        // Nothing a user or pod controls reaches the scrape.
        for forbidden in [
            pod.name.as_str(),
            pod.uid.as_str(),
            NAMESPACE,
            SERVICE_ACCOUNT,
            SPC,
            ROLE,
            PATH_SEGMENT,
            CANARY,
            "no-such-role-q7",
        ] {
            assert!(!text.contains(forbidden), "{forbidden:?} in\n{text}");
        }
        let keys: BTreeSet<String> = labels(&text).into_iter().map(|(k, _)| k).collect();
        let allowed: BTreeSet<String> = ["code", "operation", "status", "cache", "le"]
            .map(String::from)
            .into();
        assert!(keys.is_subset(&allowed), "{keys:?}");
        for (key, value) in labels(&text) {
            let ok = match key.as_str() {
                "operation" => {
                    ["login", "read", "write", "renew", "lookup"].contains(&value.as_str())
                }
                "status" => value == "error" || value.parse::<u16>().is_ok(),
                "cache" => ["token", "response", "lease"].contains(&value.as_str()),
                "code" => value.chars().all(|c| c.is_ascii_alphabetic()),
                _ => true,
            };
            assert!(ok, "{key}={value:?}");
        }
    });
}
