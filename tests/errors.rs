//! Every failure a user can cause, against a real OpenBao: the gRPC code,
//! a message naming what, where and what to do, and no secret in any
//! message or log line.

mod common;

use std::time::Duration;

use common::{MountBuilder, Provider, TestPod, env, run};
use reqwest::Method;
use serde_json::json;
use tonic::Code;

const CANARY: &str = "canary-7f3a9c";

fn kv(path: &str, key: &str) -> String {
    format!("- objectName: out\n  secretPath: {path}\n  secretKey: {key}\n")
}

/// Sets up role `errors` for SA `app` in `errors-ns`, reading `secret/data/errors/*`.
async fn setup() -> &'static common::Env {
    let env = env().await;
    env.kv2_put(
        "errors/app",
        json!({"password": format!("{CANARY}-password"), "b64": format!("{CANARY}!!")}),
    )
    .await;
    env.k8s_role(
        "errors",
        "app",
        "errors-ns",
        &[
            ("secret/data/errors/*", "\"read\""),
            ("secret/errors/*", "\"read\""),
            ("nomount/*", "\"read\""),
        ],
        Duration::from_secs(600),
    )
    .await;
    env
}

fn request(env: &common::Env, pod: &TestPod, objects: &str) -> MountBuilder {
    MountBuilder::new(env.bao.addr(), "errors", objects).pod(pod, &env.signer, "vault")
}

/// [`common::provider::expect_error`], plus: the message holds no secret.
async fn expect_error(
    provider: &Provider,
    request: MountBuilder,
    code: Code,
    fragments: &[&str],
) -> String {
    let message = common::provider::expect_error(provider, request, code, fragments).await;
    assert!(!message.contains(CANARY), "secret in message: {message}");
    message
}

#[test]
fn bad_parameters_are_invalid_argument_before_any_vault_request() {
    run(async {
        let env = env().await;
        let provider = Provider::start(&[]).await;
        let pod = TestPod::new("errors-ns", "app");
        // Port 1 on loopback is closed: any request would be Unavailable, so
        // InvalidArgument proves nothing was sent.
        let closed = "http://127.0.0.1:1";
        let cases = [
            (
                MountBuilder::new(closed, "", &kv("secret/data/x", "k")),
                "missing 'roleName'",
            ),
            (
                MountBuilder::new(
                    closed,
                    "r",
                    "- objectName: ../etc/passwd\n  secretPath: s/x\n",
                ),
                "starts with \"..\"",
            ),
            (
                MountBuilder::new(closed, "r", "- objectName: /abs\n  secretPath: s/x\n"),
                "absolute",
            ),
            (
                MountBuilder::new(
                    closed,
                    "r",
                    "- objectName: a\n  secretPath: s/x\n- objectName: a\n  secretPath: s/y\n",
                ),
                "duplicate objectName: a",
            ),
            (
                MountBuilder::new(
                    closed,
                    "r",
                    "- objectName: a\n  secretPath: s/x\n  encoding: rot13\n",
                ),
                "invalid encoding type",
            ),
            (
                MountBuilder::new(closed, "r", "{not yaml"),
                "not a valid YAML",
            ),
            (
                MountBuilder::new(closed, "r", &kv("s/x", "k"))
                    .param("vaultSkipTLSVerify", "maybe"),
                "vaultSkipTLSVerify",
            ),
            (
                MountBuilder::new(closed, "r", &kv("s/x", "k"))
                    .param("vaultAuthMountPath", "a")
                    .param("vaultKubernetesMountPath", "b"),
                "both vaultAuthMountPath",
            ),
        ];
        for (builder, fragment) in cases {
            let message = expect_error(
                &provider,
                builder.pod(&pod, &env.signer, "vault"),
                Code::InvalidArgument,
                &[fragment],
            )
            .await;
            // The pod's event names the class to fix.
            assert!(
                message.starts_with(&format!("SecretProviderClass {}/test-spc: ", pod.namespace)),
                "{message}"
            );
        }
        let mut bad = MountBuilder::new(closed, "r", &kv("s/x", "k"))
            .pod(&pod, &env.signer, "vault")
            .build();
        bad.permission = "rw".into();
        let err = provider.mount(bad).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
    });
}

#[test]
fn missing_things_are_not_found_with_hints() {
    run(async {
        let env = setup().await;
        let provider = Provider::start(&[]).await;
        let pod = TestPod::new("errors-ns", "app");
        let cases: [(&str, &str, &[&str]); 4] = [
            (
                "secret/data/errors/nope",
                "k",
                &[
                    "secret/data/errors/nope",
                    "404",
                    "test-spc",
                    "object \"out\"",
                ],
            ),
            // KV v2 read without data/: OpenBao's warning makes the hint precise.
            (
                "secret/errors/app",
                "password",
                &["KV version 2", "secretPath: secret/data/errors/app"],
            ),
            // A missing key names the key and the keys that exist, never their values.
            (
                "secret/data/errors/app",
                "passwd",
                &["key \"passwd\" does not exist", "password"],
            ),
            ("nomount/x", "k", &["nomount/x", "404"]),
        ];
        for (path, key, fragments) in cases {
            expect_error(
                &provider,
                request(env, &pod, &kv(path, key)),
                Code::NotFound,
                fragments,
            )
            .await;
        }
    });
}

#[test]
fn vault_rejections_map_to_their_codes() {
    run(async {
        let env = setup().await;
        let provider = Provider::start(&[]).await;
        let pod = TestPod::new("errors-ns", "app");
        // 403 on a read.
        expect_error(
            &provider,
            request(env, &pod, &kv("secret/data/other/app", "k")),
            Code::PermissionDenied,
            &["permission denied", "grant role \"errors\""],
        )
        .await;
        // A value that is not the declared encoding.
        let objects = "- objectName: out\n  secretPath: secret/data/errors/app\n  secretKey: b64\n  encoding: base64\n";
        expect_error(
            &provider,
            request(env, &pod, objects),
            Code::InvalidArgument,
            &["not valid base64", "key \"b64\""],
        )
        .await;
        // 400 on a read: an argument the engine refuses.
        env.api(
            Method::POST,
            "sys/mounts/errors-pki",
            Some(json!({"type": "pki"})),
        )
        .await;
        env.api(
            Method::POST,
            "errors-pki/root/generate/internal",
            Some(json!({"common_name": "ca", "ttl": "24h"})),
        )
        .await;
        env.api(
            Method::POST,
            "errors-pki/roles/web",
            Some(json!({"allowed_domains": "example.com", "allow_subdomains": true})),
        )
        .await;
        env.policy("errors-pki", &[("errors-pki/issue/web", "\"update\"")])
            .await;
        env.k8s_role(
            "errors-pki",
            "app",
            "errors-ns",
            &[("errors-pki/issue/web", "\"update\"")],
            Duration::from_secs(600),
        )
        .await;
        let objects = "- objectName: crt\n  secretPath: errors-pki/issue/web\n  method: PUT\n  secretKey: certificate\n  secretArgs:\n    common_name: www.other.org\n";
        let builder = MountBuilder::new(env.bao.addr(), "errors-pki", objects).pod(
            &pod,
            &env.signer,
            "vault",
        );
        expect_error(
            &provider,
            builder,
            Code::InvalidArgument,
            &[
                "400",
                "not allowed by this role",
                "PUT errors-pki/issue/web",
            ],
        )
        .await;
    });
}

#[test]
fn a_misconfigured_auth_method_is_failed_precondition() {
    run(async {
        let env = setup().await;
        // Enabled, with the role, but never configured: OpenBao answers the login with 500.
        env.api(
            Method::POST,
            "sys/auth/unconfigured",
            Some(json!({"type": "kubernetes"})),
        )
        .await;
        vault_csi::demo::token_review::kubernetes_role(
            &env.bao,
            "unconfigured",
            "errors",
            &["app"],
            &["errors-ns"],
            &["errors"],
            Duration::from_secs(60),
        )
        .await
        .unwrap();
        let provider = Provider::start(&[]).await;
        let pod = TestPod::new("errors-ns", "app");
        let builder = request(env, &pod, &kv("secret/data/errors/app", "password"))
            .param("vaultAuthMountPath", "unconfigured");
        expect_error(
            &provider,
            builder,
            Code::FailedPrecondition,
            &[
                "misconfigured",
                "auth/unconfigured",
                "could not load backend configuration",
            ],
        )
        .await;
        // No auth method at the mount at all.
        let builder = request(env, &pod, &kv("secret/data/errors/app", "password"))
            .param("vaultAuthMountPath", "absent");
        let err = provider.mount(builder.build()).await.unwrap_err();
        assert!(
            matches!(
                err.code(),
                Code::FailedPrecondition | Code::PermissionDenied
            ),
            "{err:?}"
        );
        assert!(err.message().contains("auth/absent"), "{}", err.message());
    });
}

#[test]
fn no_secret_or_token_reaches_messages_or_logs() {
    run(async {
        let env = setup().await;
        let provider = Provider::start(&["--log-level=trace"]).await;
        let pod = TestPod::new("errors-ns", "app");
        let token = pod.token(&env.signer, "vault");
        let paths = [
            kv("secret/data/errors/app", "password"),
            kv("secret/data/errors/app", "missing"),
            "- objectName: out\n  secretPath: secret/data/errors/app\n  secretKey: b64\n  encoding: hex\n".to_string(),
            "- objectName: whole\n  secretPath: secret/data/errors/app\n".to_string(),
            kv("secret/data/other/x", "k"),
        ];
        for objects in &paths {
            let builder = request(env, &pod, objects).pod_with_token(&pod, "vault", &token);
            if let Err(e) = provider.mount(builder.build()).await {
                assert!(
                    !e.message().contains(CANARY) && !e.message().contains(&token),
                    "{}",
                    e.message()
                );
            }
        }
        // A token that Vault refuses, and a nodePublishSecretRef holding a canary.
        let bad_token = format!("{CANARY}.not.a.jwt");
        let stranger = TestPod::new("errors-ns", "app");
        let builder = request(env, &stranger, &paths[0])
            .pod_with_token(&stranger, "vault", &bad_token)
            .secrets(json!({"password": format!("{CANARY}-nodepublish")}));
        let err = provider.mount(builder.build()).await.unwrap_err();
        assert!(!err.message().contains(CANARY), "{}", err.message());
        let logs = provider.logs();
        assert!(logs.contains("mount"), "the provider logged mounts: {logs}");
        assert!(
            !logs.contains(CANARY),
            "a secret value reached the log:\n{logs}"
        );
        assert!(
            !logs.contains(&token),
            "a service-account token reached the log"
        );
        let vault_tokens: Vec<String> = env
            .bao
            .audit_entries()
            .iter()
            .filter_map(|e| {
                e["response"]["auth"]["client_token"]
                    .as_str()
                    .map(str::to_string)
            })
            .collect();
        assert!(!vault_tokens.is_empty());
        for vault_token in &vault_tokens {
            assert!(
                !logs.contains(vault_token.as_str()),
                "a Vault token reached the log"
            );
        }
    });
}

#[test]
fn a_rate_limited_read_is_unavailable() {
    run(async {
        let env = setup().await;
        env.api(
            Method::POST,
            "sys/mounts/errors-rl",
            Some(json!({"type": "kv", "options": {"version": "2"}})),
        )
        .await;
        env.api(
            Method::POST,
            "errors-rl/data/app",
            Some(json!({"data": {"k": "v"}})),
        )
        .await;
        env.k8s_role(
            "errors-rl",
            "app",
            "errors-ns",
            &[("errors-rl/data/*", "\"read\"")],
            Duration::from_secs(600),
        )
        .await;
        // A real OpenBao quota: one request a minute on this mount, so the second read gets 429.
        env.api(
            Method::POST,
            "sys/quotas/rate-limit/errors-rl",
            Some(json!({"path": "errors-rl/", "rate": 1, "interval": "60s"})),
        )
        .await;
        let provider = Provider::start_with_env(&[], &[("VAULT_MAX_RETRIES", "0")]).await;
        let pod = TestPod::new("errors-ns", "app");
        let builder = MountBuilder::new(
            env.bao.addr(),
            "errors-rl",
            &kv("errors-rl/data/app", "k"),
        )
        .pod(&pod, &env.signer, "vault");
        provider
            .mount(builder.build())
            .await
            .expect("the first read is within the quota");
        expect_error(
            &provider,
            builder,
            Code::Unavailable,
            &["rate-limiting", "429"],
        )
        .await;
    });
}
