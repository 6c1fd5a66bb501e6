//! Mount semantics against a real OpenBao: KV v2 and v1, versions, encodings,
//! file modes, PKI issue with PUT, and the gRPC surface.

mod common;

use std::time::Duration;

use common::requests::{file, version};
use common::{MountBuilder, Provider, TestPod, env, run};
use reqwest::Method;
use serde_json::{Value, json};
use vault_csi::proto::VersionRequest;

/// A role for `sa` in `ns` allowed to read everything under `paths`.
async fn setup_role(role: &str, ns: &str, sa: &str, paths: &[(&str, &str)]) {
    env()
        .await
        .k8s_role(role, sa, ns, paths, Duration::from_secs(600))
        .await;
}

#[test]
fn version_answers_like_the_protocol_says() {
    run(async {
        let provider = Provider::start(&[]).await;
        let answer = provider
            .client()
            .await
            .version(VersionRequest {
                version: "v1alpha1".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.version, "v1alpha1");
        assert_eq!(answer.runtime_name, "vault-csi");
        assert_eq!(answer.runtime_version, env!("CARGO_PKG_VERSION"));
    });
}

#[test]
fn kv2_with_and_without_secret_key_and_pinned_version() {
    run(async {
        let env = env().await;
        env.kv2_put(
            "mount-kv2/app",
            json!({"username": "alice", "password": "s3cr3t", "port": 5432}),
        )
        .await;
        env.kv2_put(
            "mount-kv2/app",
            json!({"username": "alice", "password": "rotated", "port": 5432}),
        )
        .await;
        setup_role(
            "mount-kv2",
            "team-a",
            "app",
            &[("secret/data/mount-kv2/*", "\"read\"")],
        )
        .await;
        let provider = Provider::start(&[]).await;
        let pod = TestPod::new("team-a", "app");
        let objects = r#"
- objectName: username
  secretPath: secret/data/mount-kv2/app
  secretKey: username
- objectName: password
  secretPath: v1/secret/data/mount-kv2/app
  secretKey: password
- objectName: port
  secretPath: /secret/data/mount-kv2/app
  secretKey: port
- objectName: old-password
  secretPath: secret/data/mount-kv2/app?version=1
  secretKey: password
- objectName: whole.json
  secretPath: secret/data/mount-kv2/app
"#;
        let request =
            MountBuilder::new(env.bao.addr(), "mount-kv2", objects).pod(&pod, &env.signer, "vault");
        let response = provider.mount(request.build()).await.expect("mount");
        assert_eq!(file(&response, "username"), "alice");
        assert_eq!(file(&response, "password"), "rotated");
        assert_eq!(file(&response, "port"), "5432");
        assert_eq!(file(&response, "old-password"), "s3cr3t");
        assert!(response.error.is_none());
        assert_eq!(response.object_version.len(), 5);
        assert!(response.files.iter().all(|f| f.mode == 0o644));

        let whole: Value = serde_json::from_str(file(&response, "whole.json")).unwrap();
        assert_eq!(whole["request_id"], "");
        assert_eq!(whole["data"]["data"]["password"], "rotated");
        assert_eq!(whole["data"]["metadata"]["version"], 2);
        let text = file(&response, "whole.json");
        let order: Vec<usize> = [
            "\"request_id\"",
            "\"lease_id\"",
            "\"lease_duration\"",
            "\"renewable\"",
            "\"data\"",
            "\"warnings\"",
        ]
        .iter()
        .map(|k| {
            text.find(k)
                .unwrap_or_else(|| panic!("{k} missing in {text}"))
        })
        .collect();
        assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "HashiCorp's field order: {text}"
        );

        // The same secret mounted again gives byte-identical files and versions.
        let again = provider.mount(request.build()).await.unwrap();
        assert_eq!(again.files, response.files);
        assert_eq!(again.object_version, response.object_version);

        // A change shows in the content and the version of exactly the changed objects.
        env.kv2_put(
            "mount-kv2/app",
            json!({"username": "alice", "password": "third", "port": 5432}),
        )
        .await;
        let changed = provider.mount(request.build()).await.unwrap();
        assert_eq!(file(&changed, "password"), "third");
        assert_ne!(
            version(&changed, "password"),
            version(&response, "password")
        );
        assert_ne!(
            version(&changed, "whole.json"),
            version(&response, "whole.json")
        );
        assert_eq!(
            version(&changed, "username"),
            version(&response, "username")
        );
        assert_eq!(
            version(&changed, "old-password"),
            version(&response, "old-password")
        );
        // Versions reveal nothing: the same content in two objects differs.
        assert_ne!(version(&changed, "username"), version(&changed, "password"));
        for v in &changed.object_version {
            assert!(!v.version.contains("alice") && !v.version.is_empty());
        }
    });
}

#[test]
fn kv1_encodings_and_file_permissions() {
    run(async {
        let env = env().await;
        env.api(
            Method::POST,
            "sys/mounts/kv1",
            Some(json!({"type": "kv", "options": {"version": "1"}})),
        )
        .await;
        env.api(
            Method::POST,
            "kv1/app",
            Some(json!({"plain": "hello", "b64": "aGVsbG8gd29ybGQ=", "hex": "deadbeef", "nested": {"a": [1, 2]}})),
        )
        .await;
        setup_role("mount-kv1", "team-b", "app", &[("kv1/*", "\"read\"")]).await;
        let provider = Provider::start(&[]).await;
        let pod = TestPod::new("team-b", "app");
        let objects = r#"
- objectName: plain
  secretPath: kv1/app
  secretKey: plain
  filePermission: 0600
- objectName: b64
  secretPath: kv1/app
  secretKey: b64
  encoding: Base64
- objectName: bin/hex
  secretPath: kv1/app
  secretKey: hex
  encoding: hex
  filePermission: 0440
- objectName: nested
  secretPath: kv1/app
  secretKey: nested
"#;
        let request = MountBuilder::new(env.bao.addr(), "mount-kv1", objects)
            .pod(&pod, &env.signer, "vault")
            .permission("416");
        let before = env.audit_requests("kv1/app");
        let response = provider.mount(request.build()).await.expect("mount");
        let by_name = |n: &str| response.files.iter().find(|f| f.path == n).unwrap();
        assert_eq!(by_name("plain").contents, b"hello");
        assert_eq!(by_name("plain").mode, 0o600);
        assert_eq!(by_name("b64").contents, b"hello world");
        assert_eq!(
            by_name("b64").mode,
            416,
            "the request's permission is the default"
        );
        assert_eq!(by_name("bin/hex").contents, [0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(by_name("bin/hex").mode, 0o440);
        assert_eq!(by_name("nested").contents, br#"{"a":[1,2]}"#);
        // Four objects of one path: one request to Vault.
        env.bao
            .wait_for_audit(
                |e| e["type"] == "response" && e["request"]["path"] == "kv1/app",
                before + 1,
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        assert_eq!(env.audit_requests("kv1/app"), before + 1);
    });
}

#[test]
fn pki_certificate_and_key_come_from_one_put() {
    run(async {
        let env = env().await;
        env.api(
            Method::POST,
            "sys/mounts/pki",
            Some(json!({"type": "pki", "config": {"max_lease_ttl": "87600h"}})),
        )
        .await;
        env.api(
            Method::POST,
            "pki/root/generate/internal",
            Some(json!({"common_name": "test-ca", "ttl": "87600h"})),
        )
        .await;
        env.api(
            Method::POST,
            "pki/roles/web",
            Some(json!({"allowed_domains": "example.com", "allow_subdomains": true, "max_ttl": "72h"})),
        )
        .await;
        setup_role(
            "mount-pki",
            "team-c",
            "web",
            &[("pki/issue/web", "\"update\"")],
        )
        .await;
        let provider = Provider::start(&[]).await;
        let pod = TestPod::new("team-c", "web");
        let objects = r#"
- objectName: tls.crt
  secretPath: pki/issue/web
  secretKey: certificate
  method: PUT
  secretArgs:
    common_name: app.example.com
    ttl: 1h
- objectName: tls.key
  secretPath: pki/issue/web
  secretKey: private_key
  method: PUT
  secretArgs:
    ttl: 1h
    common_name: app.example.com
"#;
        let before = env.audit_requests("pki/issue/web");
        let response = provider
            .mount(
                MountBuilder::new(env.bao.addr(), "mount-pki", objects)
                    .pod(&pod, &env.signer, "vault")
                    .build(),
            )
            .await
            .expect("mount");
        let cert = file(&response, "tls.crt");
        let key = file(&response, "tls.key");
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"), "{cert}");
        assert!(key.contains("PRIVATE KEY-----"));
        // Same path, method and arguments (in any order): one issue, so the key matches the certificate.
        env.bao
            .wait_for_audit(
                |e| e["type"] == "response" && e["request"]["path"] == "pki/issue/web",
                1,
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        assert_eq!(env.audit_requests("pki/issue/web"), before + 1);
        let entry = env
            .bao
            .audit_entries()
            .into_iter()
            .rev()
            .find(|e| e["type"] == "response" && e["request"]["path"] == "pki/issue/web")
            .unwrap();
        assert_eq!(entry["response"]["data"]["certificate"], cert);
        assert_eq!(entry["response"]["data"]["private_key"], key);
        assert_eq!(entry["request"]["data"]["common_name"], "app.example.com");
    });
}

#[test]
fn mounts_through_an_openbao_proxy_on_a_unix_socket() {
    run(async {
        let env = env().await;
        env.kv2_put("mount-agent/app", json!({"token": "via-agent"}))
            .await;
        setup_role(
            "mount-agent",
            "team-d",
            "app",
            &[("secret/data/mount-agent/*", "\"read\"")],
        )
        .await;
        // Like Vault Agent with require_request_header: requests without
        // X-Vault-Request are refused, so success also proves the header.
        let proxy = vault_csi::demo::proxy::BaoProxy::start(env.bao.addr(), true)
            .await
            .unwrap();
        let agent = format!("unix://{}", proxy.socket().display());
        let objects =
            "- objectName: token\n  secretPath: secret/data/mount-agent/app\n  secretKey: token\n";

        // vault-helm's setup: VAULT_ADDR points at the agent, SPCs name no address.
        let provider = Provider::start_with_env(&[], &[("VAULT_ADDR", &agent)]).await;
        let pod = TestPod::new("team-d", "app");
        let request = MountBuilder::new("unused", "mount-agent", objects)
            .without("vaultAddress")
            .pod(&pod, &env.signer, "vault");
        let response = provider
            .mount(request.build())
            .await
            .expect("mount through the proxy");
        assert_eq!(file(&response, "token"), "via-agent");
        assert!(
            proxy.log().contains("forwarding request"),
            "{}",
            proxy.log()
        );

        // The same through the SecretProviderClass's vaultAddress.
        let other = Provider::start(&[]).await;
        let request = MountBuilder::new(&agent, "mount-agent", objects).pod(
            &TestPod::new("team-d", "app"),
            &env.signer,
            "vault",
        );
        assert_eq!(
            file(&other.mount(request.build()).await.expect("mount"), "token"),
            "via-agent"
        );
    });
}

#[test]
fn read_responses_are_reused_for_the_cache_ttl_then_refreshed() {
    run(async {
        let _serial = common::SERIAL.lock().await;
        let env = env().await;
        env.kv2_put("mount-ttl/app", json!({"value": "v1"})).await;
        setup_role(
            "mount-ttl",
            "team-e",
            "app",
            &[("secret/data/mount-ttl/*", "\"read\"")],
        )
        .await;
        let provider = Provider::start(&["--cache-ttl=3s"]).await;
        let pod = TestPod::new("team-e", "app");
        let objects = |extra: &str| {
            format!(
                "- objectName: v\n  secretPath: secret/data/mount-ttl/app\n  secretKey: value\n{extra}"
            )
        };
        let cached = MountBuilder::new(env.bao.addr(), "mount-ttl", &objects("")).pod(
            &pod,
            &env.signer,
            "vault",
        );
        assert_eq!(
            file(&provider.mount(cached.build()).await.unwrap(), "v"),
            "v1"
        );
        env.kv2_put("mount-ttl/app", json!({"value": "v2"})).await;
        let reads = env.audit_requests("secret/data/mount-ttl/app");
        // Within the TTL: the cached answer, and no request to Vault.
        assert_eq!(
            file(&provider.mount(cached.build()).await.unwrap(), "v"),
            "v1"
        );
        assert_eq!(env.audit_requests("secret/data/mount-ttl/app"), reads);
        // An object that opts out, and an SPC with cacheTTL 0, see the change at once.
        let opted_out = MountBuilder::new(
            env.bao.addr(),
            "mount-ttl",
            &objects("  cache: \"false\"\n"),
        )
        .pod(&pod, &env.signer, "vault");
        assert_eq!(
            file(&provider.mount(opted_out.build()).await.unwrap(), "v"),
            "v2"
        );
        let no_ttl = cached.clone().param("cacheTTL", "0");
        assert_eq!(
            file(&provider.mount(no_ttl.build()).await.unwrap(), "v"),
            "v2"
        );
        // Once the TTL has passed, the change is visible to everyone.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if file(&provider.mount(cached.build()).await.unwrap(), "v") == "v2" {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the change never became visible"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
}

#[test]
fn certificates_are_reused_per_identity_unless_told_otherwise() {
    run(async {
        let env = env().await;
        env.api(
            Method::POST,
            "sys/mounts/pki-reuse",
            Some(json!({"type": "pki", "config": {"max_lease_ttl": "87600h"}})),
        )
        .await;
        env.api(
            Method::POST,
            "pki-reuse/root/generate/internal",
            Some(json!({"common_name": "ca", "ttl": "87600h"})),
        )
        .await;
        env.api(Method::POST, "pki-reuse/roles/web", Some(json!({"allowed_domains": "example.com", "allow_subdomains": true, "max_ttl": "72h"}))).await;
        setup_role(
            "mount-pki-reuse",
            "team-f",
            "web",
            &[("pki-reuse/issue/web", "\"update\"")],
        )
        .await;
        let provider = Provider::start(&[]).await;
        let objects = "- objectName: tls.crt\n  secretPath: pki-reuse/issue/web\n  method: PUT\n  secretKey: certificate\n  secretArgs:\n    common_name: app.example.com\n    ttl: 1h\n";
        let issues = || env.audit_requests("pki-reuse/issue/web");
        let mount =
            |pod: &TestPod, reuse: Option<&str>| {
                let mut builder = MountBuilder::new(env.bao.addr(), "mount-pki-reuse", objects)
                    .pod(pod, &env.signer, "vault");
                if let Some(reuse) = reuse {
                    builder = builder.param("dynamicSecretReuse", reuse);
                }
                builder.build()
            };
        let (a, b) = (TestPod::new("team-f", "web"), TestPod::new("team-f", "web"));
        let first = provider.mount(mount(&a, None)).await.expect("mount");
        let before = issues();
        // A rotation poll and a second replica get the same certificate: no new issue.
        let again = provider.mount(mount(&a, None)).await.expect("mount");
        let replica = provider.mount(mount(&b, None)).await.expect("mount");
        assert_eq!(file(&again, "tls.crt"), file(&first, "tls.crt"));
        assert_eq!(file(&replica, "tls.crt"), file(&first, "tls.crt"));
        assert_eq!(version(&again, "tls.crt"), version(&first, "tls.crt"));
        assert_eq!(issues(), before);
        // dynamicSecretReuse: pod — each pod its own, kept across its polls.
        let c = TestPod::new("team-f", "web");
        let own = provider.mount(mount(&c, Some("pod"))).await.expect("mount");
        assert_ne!(file(&own, "tls.crt"), file(&first, "tls.crt"));
        let own_again = provider.mount(mount(&c, Some("pod"))).await.expect("mount");
        assert_eq!(file(&own_again, "tls.crt"), file(&own, "tls.crt"));
        assert_eq!(issues(), before + 1);
        // dynamicSecretReuse: false — a new certificate on every mount, as HashiCorp's provider does.
        let one = provider
            .mount(mount(&a, Some("false")))
            .await
            .expect("mount");
        let two = provider
            .mount(mount(&a, Some("false")))
            .await
            .expect("mount");
        assert_ne!(file(&one, "tls.crt"), file(&two, "tls.crt"));
        assert_eq!(issues(), before + 3);
    });
}
