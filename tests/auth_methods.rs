//! AppRole and token auth with credentials from the nodePublishSecretRef
//! Secret, and token renewal / re-login timing, against a real OpenBao.
//! Timing tests use TTLs of a few seconds and wait on audit-log events.

mod common;

use std::time::{Duration, Instant};

use common::requests::file;
use common::{MountBuilder, Provider, TestPod, env, run};
use reqwest::Method;
use serde_json::{Value, json};
use tonic::Code;

const OBJECTS: &str =
    "- objectName: value\n  secretPath: secret/data/methods/app\n  secretKey: value\n";

/// Enables AppRole once and creates role `name` with `settings`; returns (role_id, secret_id).
async fn approle(name: &str, settings: Value) -> (String, String) {
    let env = env().await;
    env.kv2_put("methods/app", json!({"value": "from-vault"}))
        .await;
    env.policy("methods", &[("secret/data/methods/*", "\"read\"")])
        .await;
    let _ = env
        .bao
        .api(
            Method::POST,
            "sys/auth/approle",
            Some(json!({"type": "approle"})),
        )
        .await;
    let mut body = json!({"token_policies": ["methods"]});
    body.as_object_mut()
        .unwrap()
        .extend(settings.as_object().unwrap().clone());
    env.api(
        Method::POST,
        &format!("auth/approle/role/{name}"),
        Some(body),
    )
    .await;
    let role_id = env
        .api(
            Method::GET,
            &format!("auth/approle/role/{name}/role-id"),
            None,
        )
        .await["data"]["role_id"]
        .as_str()
        .unwrap()
        .to_string();
    let secret_id = env
        .api(
            Method::POST,
            &format!("auth/approle/role/{name}/secret-id"),
            None,
        )
        .await["data"]["secret_id"]
        .as_str()
        .unwrap()
        .to_string();
    (role_id, secret_id)
}

fn approle_mount(role_id: &str, secret_id: &str, pod: &TestPod) -> MountBuilder {
    MountBuilder::new(env_addr(), "", OBJECTS)
        .param("vaultAuthMethod", "approle")
        .pod_info(pod)
        .secrets(json!({"roleId": role_id, "secretId": secret_id}))
}

fn env_addr() -> &'static str {
    common::bao_addr()
}

/// Audit responses to `path` whose token or login belongs to AppRole role `role`.
fn approle_events(path: &str, role: &str) -> usize {
    let env = common::env_now();
    env.bao
        .audit_entries()
        .iter()
        .filter(|e| {
            e["type"] == "response"
                && e["request"]["path"] == path
                && (e["auth"]["metadata"]["role_name"] == role
                    || e["response"]["auth"]["metadata"]["role_name"] == role)
                && e["error"].is_null()
        })
        .count()
}

#[test]
fn approle_logs_in_with_credentials_from_the_secret() {
    run(async {
        let (role_id, secret_id) = approle("am-basic", json!({"token_ttl": "10m"})).await;
        let provider = Provider::start(&[]).await;
        let pod = TestPod::new("am-ns", "app");
        let response = provider
            .mount(approle_mount(&role_id, &secret_id, &pod).build())
            .await
            .expect("mount");
        assert_eq!(file(&response, "value"), "from-vault");
        // snake_case keys work too, and the token is reused for the pod.
        let snake = approle_mount(&role_id, &secret_id, &pod)
            .secrets(json!({"role_id": role_id, "secret_id": secret_id}));
        provider.mount(snake.build()).await.expect("mount");
        assert_eq!(approle_events("auth/approle/login", "am-basic"), 1);

        // A wrong secret id is PermissionDenied with an AppRole hint, and never echoed.
        let wrong = approle_mount(
            &role_id,
            "00000000-0000-0000-0000-canary000000",
            &TestPod::new("am-ns", "app"),
        );
        let err = provider.mount(wrong.build()).await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{}", err.message());
        assert!(
            err.message().contains("AppRole") && err.message().contains("secret_id_ttl"),
            "{}",
            err.message()
        );
        assert!(!err.message().contains("canary") && !err.message().contains(&role_id));

        // A missing key is FailedPrecondition naming the key.
        let missing = approle_mount(&role_id, &secret_id, &pod).secrets(json!({"roleId": role_id}));
        let err = provider.mount(missing.build()).await.unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition);
        assert!(
            err.message().contains("secretId (or secret_id)"),
            "{}",
            err.message()
        );
        assert!(!provider.logs().contains(&secret_id));
    });
}

#[test]
fn token_auth_checks_the_token_once_and_reports_a_revoked_one() {
    run(async {
        let env = env().await;
        env.kv2_put("methods/app", json!({"value": "from-vault"}))
            .await;
        env.policy("methods", &[("secret/data/methods/*", "\"read\"")])
            .await;
        let created = env
            .api(
                Method::POST,
                "auth/token/create",
                Some(json!({"policies": ["methods"], "ttl": "1h"})),
            )
            .await;
        let token = created["auth"]["client_token"]
            .as_str()
            .unwrap()
            .to_string();
        let provider = Provider::start(&[]).await;
        let pod = TestPod::new("tok-ns", "app");
        let request = MountBuilder::new(env.bao.addr(), "", OBJECTS)
            .param("vaultAuthMethod", "token")
            .pod_info(&pod)
            .secrets(json!({"token": token}));
        assert_eq!(
            file(
                &provider.mount(request.build()).await.expect("mount"),
                "value"
            ),
            "from-vault"
        );
        provider.mount(request.build()).await.expect("second mount");
        let lookups = env
            .bao
            .audit_entries()
            .iter()
            .filter(|e| {
                e["type"] == "response"
                    && e["request"]["path"] == "auth/token/lookup-self"
                    && e["request"]["client_token"] == token.as_str()
            })
            .count();
        assert_eq!(lookups, 1, "looked up once, then cached");

        env.api(
            Method::POST,
            "auth/token/revoke",
            Some(json!({"token": token})),
        )
        .await;
        let err = provider.mount(request.build()).await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{}", err.message());
        assert!(
            err.message().contains("key token") && err.message().contains("expired, revoked"),
            "{}",
            err.message()
        );
        assert!(!err.message().contains(&token));

        let missing = MountBuilder::new(env.bao.addr(), "", OBJECTS)
            .param("vaultAuthMethod", "token")
            .pod_info(&pod);
        let err = provider.mount(missing.build()).await.unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition);
        assert!(err.message().contains("key token"), "{}", err.message());
    });
}

/// Mounts every 200 ms until `done` holds (an audit-log event), at most
/// `limit`; every mount must succeed.  Returns the mounts made.
async fn mount_until(
    provider: &Provider,
    request: &MountBuilder,
    limit: Duration,
    done: impl Fn() -> bool,
) -> usize {
    let deadline = Instant::now() + limit;
    let mut mounts = 0;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "the awaited event did not happen in {limit:?}"
        );
        let response = provider
            .mount(request.build())
            .await
            .expect("every mount succeeds across renewals");
        assert_eq!(file(&response, "value"), "from-vault");
        mounts += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    mounts
}

#[test]
fn renewable_tokens_are_renewed_then_replaced_before_their_max_ttl() {
    run(async {
        let (role_id, secret_id) = approle(
            "am-renew",
            json!({"token_ttl": "3s", "token_max_ttl": "7s"}),
        )
        .await;
        let provider = Provider::start(&[]).await;
        let pod = TestPod::new("am-ns", "renew");
        let request = approle_mount(&role_id, &secret_id, &pod);
        provider.mount(request.build()).await.expect("mount");
        assert_eq!(approle_events("auth/approle/login", "am-renew"), 1);
        // Past two thirds of 3 s the token is renewed rather than replaced…
        mount_until(&provider, &request, Duration::from_secs(10), || {
            approle_events("auth/token/renew-self", "am-renew") >= 1
        })
        .await;
        assert_eq!(approle_events("auth/approle/login", "am-renew"), 1);
        // …and once renewal is capped by the 7 s max TTL, a new login replaces it.
        mount_until(&provider, &request, Duration::from_secs(15), || {
            approle_events("auth/approle/login", "am-renew") >= 2
        })
        .await;
    });
}

#[test]
fn non_renewable_tokens_are_replaced_by_a_fresh_login() {
    run(async {
        let (role_id, secret_id) = approle(
            "am-batch",
            json!({"token_ttl": "3s", "token_type": "batch"}),
        )
        .await;
        let provider = Provider::start(&[]).await;
        let request = approle_mount(&role_id, &secret_id, &TestPod::new("am-ns", "batch"));
        provider.mount(request.build()).await.expect("mount");
        mount_until(&provider, &request, Duration::from_secs(10), || {
            approle_events("auth/approle/login", "am-batch") >= 2
        })
        .await;
        assert_eq!(
            approle_events("auth/token/renew-self", "am-batch"),
            0,
            "batch tokens are not renewable"
        );
    });
}
