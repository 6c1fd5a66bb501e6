//! Guardrails for platform teams, with the real binary and OpenBao:
//! `--allowed-vault-addresses` and `--allow-spc-tls-overrides=false` refuse
//! a SecretProviderClass with `InvalidArgument` before anything reaches
//! Vault, while allowed addresses and harmless TLS parameters still mount.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::provider::expect_error;
use common::proxy::SlowProxy;
use common::requests::file;
use common::{MountBuilder, Provider, TestPod, env, run};
use serde_json::{Value, json};
use tonic::Code;

const NAMESPACE: &str = "guard-ns";
const ACCOUNT: &str = "app";

/// A secret readable by `role`, and the objects that read it.
async fn setup(role: &str) -> (&'static common::Env, String) {
    let env = env().await;
    env.kv2_put(&format!("{role}/app"), json!({"value": role}))
        .await;
    env.k8s_role(
        role,
        ACCOUNT,
        NAMESPACE,
        &[(&format!("secret/data/{role}/*"), "\"read\"")],
        Duration::from_secs(600),
    )
    .await;
    let objects =
        format!("- objectName: value\n  secretPath: secret/data/{role}/app\n  secretKey: value\n");
    (env, objects)
}

/// Audit entries (requests and responses) that logged in as `role` or read
/// its secrets (the setup's writes do not count).
fn touching(env: &common::Env, role: &str) -> Vec<Value> {
    let prefix = format!("secret/data/{role}/");
    env.bao
        .audit_entries()
        .into_iter()
        .filter(|e| {
            e["request"]["data"]["role"] == role
                || (e["request"]["operation"] == "read"
                    && e["request"]["path"]
                        .as_str()
                        .is_some_and(|p| p.starts_with(&prefix)))
        })
        .collect()
}

#[test]
fn addresses_outside_the_allow_list_are_refused_before_any_request() {
    run(async {
        let (env, objects) = setup("guard-addr").await;
        let upstream = env.bao.addr().trim_start_matches("http://").to_string();
        // The same OpenBao under another port: reachable, but not allowed.
        let other = SlowProxy::start(&upstream, Duration::ZERO).await;
        let port = env.bao.port();
        let default = format!("--vault-addr={}", env.bao.addr());
        let provider = Provider::start(&[
            &default,
            "--allowed-vault-addresses=https://vault.example.com:8200,localhost",
        ])
        .await;
        let pod = TestPod::new(NAMESPACE, ACCOUNT);
        let spc = |address: Option<&str>| {
            let builder =
                MountBuilder::new("unused", "guard-addr", &objects).pod(&pod, &env.signer, "vault");
            match address {
                Some(a) => builder.param("vaultAddress", a),
                None => builder.without("vaultAddress"),
            }
        };

        let message = expect_error(
            &provider,
            spc(Some(&other.addr)),
            Code::InvalidArgument,
            &[
                &format!("SecretProviderClass {NAMESPACE}/test-spc"),
                &other.addr,
                &format!(
                    "allowed: {}, https://vault.example.com:8200, localhost",
                    env.bao.addr()
                ),
                "--allowed-vault-addresses",
                "remove vaultAddress",
            ],
        )
        .await;
        assert!(!message.contains("eyJ"), "{message}");
        expect_error(
            &provider,
            spc(Some(&format!("https://vault.example.com:{port}"))),
            Code::InvalidArgument,
            &["is not allowed"],
        )
        .await;

        // Allowed: the default (omitted or named), and the `localhost` host
        // pattern on any port.
        for address in [
            None,
            Some(env.bao.addr().to_string()),
            Some(format!("http://localhost:{port}")),
        ] {
            let response = provider
                .mount(spc(address.as_deref()).build())
                .await
                .unwrap_or_else(|e| panic!("{address:?}: {}", e.message()));
            assert_eq!(file(&response, "value"), "guard-addr");
        }

        // The refused address is a working path to OpenBao (an unguarded
        // provider mounts through it), yet it received nothing from the
        // guarded one: no byte reached the proxy before this mount, and
        // OpenBao logged only this provider's allowed mounts.
        let logins_before = touching(env, "guard-addr")
            .iter()
            .filter(|e| e["type"] == "request" && e["request"]["path"] == "auth/kubernetes/login")
            .count();
        assert_eq!(other.requests.load(Ordering::SeqCst), 0);
        let open = Provider::start(&[]).await;
        let response = open
            .mount(spc(Some(&other.addr)).build())
            .await
            .expect("an unguarded provider mounts through the same address");
        assert_eq!(file(&response, "value"), "guard-addr");
        assert!(other.requests.load(Ordering::SeqCst) > 0);
        // Three allowed mounts by one provider (two addresses: the default
        // spelled twice shares one token) and one by the unguarded provider.
        assert_eq!(logins_before, 2);
    });
}

#[test]
fn tls_overrides_are_refused_when_the_platform_forbids_them() {
    run(async {
        let (env, objects) = setup("guard-tls").await;
        let provider = Provider::start(&["--allow-spc-tls-overrides=false"]).await;
        let pod = TestPod::new(NAMESPACE, ACCOUNT);
        let spc = || {
            MountBuilder::new(env.bao.addr(), "guard-tls", &objects).pod(&pod, &env.signer, "vault")
        };
        for (key, value) in [
            ("vaultSkipTLSVerify", "true"),
            ("vaultCACertPath", "/etc/ssl/certs/ca-certificates.crt"),
            ("vaultCADirectory", "/etc/ssl/certs"),
            ("vaultTLSServerName", "vault.example.com"),
            ("vaultTLSClientCertPath", "/tmp/client.pem"),
            ("vaultTLSClientKeyPath", "/tmp/client-key.pem"),
        ] {
            expect_error(
                &provider,
                spc().param(key, value),
                Code::InvalidArgument,
                &[
                    &format!("SecretProviderClass {NAMESPACE}/test-spc"),
                    key,
                    "--allow-spc-tls-overrides=false",
                    "Remove it",
                ],
            )
            .await;
        }
        assert!(
            touching(env, "guard-tls").is_empty(),
            "a refused mount reached OpenBao"
        );
        // Explicitly keeping verification on is harmless and mounts.
        let response = provider
            .mount(spc().param("vaultSkipTLSVerify", "false").build())
            .await
            .expect("vaultSkipTLSVerify: false is allowed");
        assert_eq!(file(&response, "value"), "guard-tls");
        env.bao
            .wait_for_audit(
                |e| e["type"] == "response" && e["request"]["path"] == "secret/data/guard-tls/app",
                1,
                Duration::from_secs(10),
            )
            .await
            .expect("the allowed mount reached OpenBao");
    });
}
