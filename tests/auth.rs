//! Authentication against a real OpenBao: Kubernetes auth (through the fake
//! TokenReview API), JWT auth with a static key, namespaces, the token
//! cache, re-login after a 403, and concurrency.

mod common;

use std::time::Duration;

use common::requests::file;
use common::{MountBuilder, Provider, TestPod, env, run};
use reqwest::Method;
use serde_json::json;
use tonic::Code;
use vault_csi::demo::token_review;

const KV_READ: &str = "\"read\"";

/// Whether an audit entry is a successful Kubernetes-auth login as `role`
/// (tests run concurrently, so each counts its own role's logins).
fn is_login(e: &serde_json::Value, role: &str) -> bool {
    e["type"] == "response"
        && e["request"]["path"] == "auth/kubernetes/login"
        && e["request"]["data"]["role"] == role
        && e["response"]["auth"].is_object()
}

/// Successful logins as `role` so far.
fn logins(env: &common::Env, role: &str) -> usize {
    env.bao
        .audit_entries()
        .iter()
        .filter(|e| is_login(e, role))
        .count()
}

/// Waits until the audit log holds `n` successful logins as `role`.
async fn wait_logins(env: &common::Env, role: &str, n: usize) {
    env.bao
        .wait_for_audit(|e| is_login(e, role), n, Duration::from_secs(10))
        .await
        .unwrap();
}

fn objects(path: &str) -> String {
    format!("- objectName: value\n  secretPath: secret/data/{path}\n  secretKey: value\n")
}

#[test]
fn kubernetes_auth_shares_one_token_per_service_account_only_with_proof() {
    run(async {
        let env = env().await;
        env.kv2_put("auth-cache/app", json!({"value": "v1"})).await;
        env.k8s_role(
            "auth-cache",
            "app",
            "auth-ns",
            &[("secret/data/auth-cache/*", KV_READ)],
            Duration::from_secs(600),
        )
        .await;
        let provider = Provider::start(&[]).await;
        let base = logins(env, "auth-cache");
        let mount = |pod: &TestPod, token: Option<String>| {
            let builder =
                MountBuilder::new(env.bao.addr(), "auth-cache", &objects("auth-cache/app"));
            match token {
                Some(token) => builder.pod_with_token(pod, "vault", &token),
                None => builder.pod(pod, &env.signer, "vault"),
            }
            .build()
        };
        // Three mounts of one pod and one of a second replica: one login.
        let (a, b) = (
            TestPod::new("auth-ns", "app"),
            TestPod::new("auth-ns", "app"),
        );
        for _ in 0..3 {
            assert_eq!(
                file(
                    &provider.mount(mount(&a, None)).await.expect("mount"),
                    "value"
                ),
                "v1"
            );
        }
        provider.mount(mount(&b, None)).await.expect("mount");
        wait_logins(env, "auth-cache", base + 1).await;
        assert_eq!(
            logins(env, "auth-cache"),
            base + 1,
            "one login for the service account"
        );

        // A pod presenting another pod's token does not get the shared token:
        // it logs in with what it has.
        let c = TestPod::new("auth-ns", "app");
        provider
            .mount(mount(&c, Some(a.token(&env.signer, "vault"))))
            .await
            .expect("mount");
        wait_logins(env, "auth-cache", base + 2).await;
        // Neither does a pod whose token is for another audience.
        let d = TestPod::new("auth-ns", "app");
        provider
            .mount(mount(&d, Some(d.token(&env.signer, "other"))))
            .await
            .expect("mount");
        wait_logins(env, "auth-cache", base + 3).await;

        // --cache-scope=pod: every pod logs in for itself.
        let per_pod = Provider::start(&["--cache-scope=pod"]).await;
        let (e, f) = (
            TestPod::new("auth-ns", "app"),
            TestPod::new("auth-ns", "app"),
        );
        for pod in [&e, &f, &e] {
            per_pod.mount(mount(pod, None)).await.expect("mount");
        }
        wait_logins(env, "auth-cache", base + 5).await;
        assert_eq!(logins(env, "auth-cache"), base + 5);
    });
}

#[test]
fn jwt_auth_never_shares_a_token_between_pods() {
    run(async {
        let env = env().await;
        env.kv2_put("auth-jwt-share/app", json!({"value": "v"}))
            .await;
        env.policy(
            "auth-jwt-share",
            &[("secret/data/auth-jwt-share/*", KV_READ)],
        )
        .await;
        token_review::jwt_role(
            &env.bao,
            "jwt",
            "auth-jwt-share",
            "system:serviceaccount:jwt-share:app",
            "vault",
            &["auth-jwt-share"],
            Duration::from_secs(600),
        )
        .await
        .unwrap();
        let provider = Provider::start(&[]).await;
        for _ in 0..2 {
            let pod = TestPod::new("jwt-share", "app");
            let request = MountBuilder::new(
                env.bao.addr(),
                "auth-jwt-share",
                &objects("auth-jwt-share/app"),
            )
            .param("vaultAuthMethod", "jwt")
            .pod(&pod, &env.signer, "vault");
            provider.mount(request.build()).await.expect("mount");
        }
        let jwt_logins = env
            .bao
            .audit_entries()
            .iter()
            .filter(|e| {
                e["type"] == "response"
                    && e["request"]["path"] == "auth/jwt/login"
                    && e["request"]["data"]["role"] == "auth-jwt-share"
                    && e["response"]["auth"].is_object()
            })
            .count();
        assert_eq!(jwt_logins, 2, "one login per pod under JWT auth");
    });
}

#[test]
fn nothing_cached_for_one_identity_reaches_another() {
    run(async {
        let env = env().await;
        env.kv2_put("auth-iso/app", json!({"value": "only-for-a"}))
            .await;
        env.k8s_role(
            "auth-iso-a",
            "sa-a",
            "iso-ns",
            &[("secret/data/auth-iso/*", KV_READ)],
            Duration::from_secs(600),
        )
        .await;
        env.k8s_role(
            "auth-iso-b",
            "sa-b",
            "iso-ns",
            &[("secret/data/other/*", KV_READ)],
            Duration::from_secs(600),
        )
        .await;
        // Long TTL: the response stays cached for the whole test.
        let provider = Provider::start(&["--cache-ttl=5m"]).await;
        let a = TestPod::new("iso-ns", "sa-a");
        let request = MountBuilder::new(env.bao.addr(), "auth-iso-a", &objects("auth-iso/app"))
            .pod(&a, &env.signer, "vault");
        assert_eq!(
            file(
                &provider.mount(request.build()).await.expect("mount"),
                "value"
            ),
            "only-for-a"
        );
        // Service account B asks for the same path: Vault decides, not the cache.
        let b = TestPod::new("iso-ns", "sa-b");
        let request = MountBuilder::new(env.bao.addr(), "auth-iso-b", &objects("auth-iso/app"))
            .pod(&b, &env.signer, "vault");
        let err = provider.mount(request.build()).await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{}", err.message());
        // Even with B's role name, a pod of A's namespace but B's account cannot ride A's entry.
        let request = MountBuilder::new(env.bao.addr(), "auth-iso-a", &objects("auth-iso/app"))
            .pod(&b, &env.signer, "vault");
        assert_eq!(
            provider.mount(request.build()).await.unwrap_err().code(),
            Code::PermissionDenied
        );
    });
}

#[test]
fn a_wrong_service_account_is_denied_with_a_hint() {
    run(async {
        let env = env().await;
        env.kv2_put("auth-wrong/app", json!({"value": "x"})).await;
        env.k8s_role(
            "auth-wrong",
            "app",
            "auth-ns",
            &[("secret/data/auth-wrong/*", KV_READ)],
            Duration::from_secs(600),
        )
        .await;
        let provider = Provider::start(&[]).await;
        let intruder = TestPod::new("auth-ns", "intruder");
        let err = provider
            .mount(
                MountBuilder::new(env.bao.addr(), "auth-wrong", &objects("auth-wrong/app"))
                    .pod(&intruder, &env.signer, "vault")
                    .build(),
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{}", err.message());
        let message = err.message();
        for expected in [
            "service account name not authorized",
            "\"auth-wrong\"",
            "auth-ns/intruder",
            "bound_service_account_names",
            "test-spc",
        ] {
            assert!(
                message.contains(expected),
                "missing {expected:?} in: {message}"
            );
        }
        // A pod in another namespace is refused for its namespace.
        let elsewhere = TestPod::new("other-ns", "app");
        let err = provider
            .mount(
                MountBuilder::new(env.bao.addr(), "auth-wrong", &objects("auth-wrong/app"))
                    .pod(&elsewhere, &env.signer, "vault")
                    .build(),
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied);
        assert!(
            err.message().contains("bound_service_account_namespaces"),
            "{}",
            err.message()
        );
    });
}

#[test]
fn jwt_auth_with_a_static_key_and_audience_checks() {
    run(async {
        let env = env().await;
        env.kv2_put("auth-jwt/app", json!({"value": "from-jwt"}))
            .await;
        env.policy("auth-jwt", &[("secret/data/auth-jwt/*", KV_READ)])
            .await;
        token_review::jwt_role(
            &env.bao,
            "jwt",
            "auth-jwt",
            "system:serviceaccount:jwt-ns:app",
            "vault",
            &["auth-jwt"],
            Duration::from_secs(600),
        )
        .await
        .unwrap();
        let provider = Provider::start(&[]).await;
        let pod = TestPod::new("jwt-ns", "app");
        // HashiCorp style: the JWT mount named with vaultAuthMountPath.
        let legacy = MountBuilder::new(env.bao.addr(), "auth-jwt", &objects("auth-jwt/app"))
            .param("vaultAuthMountPath", "jwt")
            .pod(&pod, &env.signer, "vault");
        assert_eq!(
            file(
                &provider.mount(legacy.build()).await.expect("mount"),
                "value"
            ),
            "from-jwt"
        );
        // vault-csi style: vaultAuthMethod, whose mount defaults to the method's name.
        let other = TestPod::new("jwt-ns", "app");
        let explicit = MountBuilder::new(env.bao.addr(), "auth-jwt", &objects("auth-jwt/app"))
            .param("vaultAuthMethod", "jwt")
            .pod(&other, &env.signer, "vault");
        assert_eq!(
            file(
                &provider.mount(explicit.build()).await.expect("mount"),
                "value"
            ),
            "from-jwt"
        );
        // A token minted for another audience is refused, and the hint names the audience.
        let wrong = TestPod::new("jwt-ns", "app");
        let request = MountBuilder::new(env.bao.addr(), "auth-jwt", &objects("auth-jwt/app"))
            .param("vaultAuthMethod", "jwt")
            .param("audience", "not-vault")
            .pod(&wrong, &env.signer, "not-vault");
        let err = provider.mount(request.build()).await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{}", err.message());
        assert!(
            err.message().contains("invalid audience") && err.message().contains("\"not-vault\""),
            "{}",
            err.message()
        );
    });
}

#[test]
fn missing_token_for_the_audience_is_failed_precondition() {
    run(async {
        let env = env().await;
        let provider = Provider::start(&[]).await;
        let pod = TestPod::new("auth-ns", "app");
        let request = MountBuilder::new(env.bao.addr(), "any", &objects("any/app")).pod_info(&pod);
        let err = provider.mount(request.build()).await.unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition);
        assert!(
            err.message().contains("tokenRequests[0].audience=vault"),
            "{}",
            err.message()
        );
        // A token for another audience only does not count either.
        let request = MountBuilder::new(env.bao.addr(), "any", &objects("any/app")).pod(
            &pod,
            &env.signer,
            "other",
        );
        assert_eq!(
            provider.mount(request.build()).await.unwrap_err().code(),
            Code::FailedPrecondition
        );
    });
}

#[test]
fn namespaces_are_sent_as_x_vault_namespace() {
    run(async {
        let env = env().await;
        env.api(Method::POST, "sys/namespaces/tenant-x", Some(json!({})))
            .await;
        let ns = "tenant-x";
        env.bao
            .api_ns(
                ns,
                Method::POST,
                "sys/mounts/secret",
                Some(json!({"type": "kv", "options": {"version": "2"}})),
            )
            .await
            .unwrap();
        env.bao
            .api_ns(
                ns,
                Method::POST,
                "secret/data/db",
                Some(json!({"data": {"value": "in-namespace"}})),
            )
            .await
            .unwrap();
        env.bao
            .api_ns(
                ns,
                Method::PUT,
                "sys/policies/acl/ns-read",
                Some(json!({"policy": "path \"secret/data/*\" { capabilities = [\"read\"] }"})),
            )
            .await
            .unwrap();
        token_review::configure_kubernetes_auth(&env.bao, "kubernetes", &env.review, Some(ns))
            .await
            .unwrap();
        token_review::kubernetes_role_in(
            &env.bao,
            Some(ns),
            "kubernetes",
            "ns-role",
            &["app"],
            &["ns-pods"],
            &["ns-read"],
            Duration::from_secs(600),
        )
        .await
        .unwrap();
        let provider = Provider::start(&[]).await;
        let pod = TestPod::new("ns-pods", "app");
        let request = MountBuilder::new(env.bao.addr(), "ns-role", &objects("db"))
            .param("vaultNamespace", ns)
            .pod(&pod, &env.signer, "vault");
        assert_eq!(
            file(
                &provider.mount(request.build()).await.expect("mount"),
                "value"
            ),
            "in-namespace"
        );
        // The same SPC without the namespace finds no such role in the root namespace.
        let other = TestPod::new("ns-pods", "app");
        let request = MountBuilder::new(env.bao.addr(), "ns-role", &objects("db")).pod(
            &other,
            &env.signer,
            "vault",
        );
        assert_eq!(
            provider.mount(request.build()).await.unwrap_err().code(),
            Code::PermissionDenied
        );
    });
}

#[test]
fn a_revoked_token_is_replaced_by_one_login_and_a_403_with_a_fresh_token_is_final() {
    run(async {
        let env = env().await;
        env.kv2_put("auth-relogin/app", json!({"value": "ok"}))
            .await;
        env.kv2_put("auth-relogin-denied/app", json!({"value": "no"}))
            .await;
        env.k8s_role(
            "auth-relogin",
            "relogin-sa",
            "auth-ns",
            &[("secret/data/auth-relogin/*", KV_READ)],
            Duration::from_secs(600),
        )
        .await;
        let provider = Provider::start(&[]).await;
        let pod = TestPod::new("auth-ns", "relogin-sa");
        let ok = MountBuilder::new(env.bao.addr(), "auth-relogin", &objects("auth-relogin/app"))
            .pod(&pod, &env.signer, "vault");
        provider.mount(ok.build()).await.expect("first mount");
        let base = logins(env, "auth-relogin");

        // Revoke the cached token (the raw audit log shows it): Vault now refuses it.
        let token = env
            .bao
            .audit_entries()
            .into_iter()
            .rfind(|e| is_login(e, "auth-relogin"))
            .map(|e| {
                e["response"]["auth"]["client_token"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .unwrap();
        env.api(
            Method::POST,
            "auth/token/revoke",
            Some(json!({ "token": token })),
        )
        .await;
        let response = provider
            .mount(ok.build())
            .await
            .expect("mount after revocation");
        assert_eq!(file(&response, "value"), "ok");
        wait_logins(env, "auth-relogin", base + 1).await;
        assert_eq!(
            logins(env, "auth-relogin"),
            base + 1,
            "exactly one re-login"
        );

        // A path the policy does not allow: 403 with the cached token, one re-login, 403 again, final.
        let denied = MountBuilder::new(
            env.bao.addr(),
            "auth-relogin",
            &objects("auth-relogin-denied/app"),
        )
        .pod(&pod, &env.signer, "vault");
        let err = provider.mount(denied.build()).await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied);
        assert!(
            err.message()
                .contains("grant role \"auth-relogin\" a policy"),
            "{}",
            err.message()
        );
        wait_logins(env, "auth-relogin", base + 2).await;
        let err = provider.mount(denied.build()).await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied);
        wait_logins(env, "auth-relogin", base + 3).await;
        assert_eq!(
            logins(env, "auth-relogin"),
            base + 3,
            "one re-login per refused mount, never a loop"
        );
    });
}

#[test]
fn a_hundred_replicas_mounting_at_once_cause_one_login() {
    run(async {
        let env = env().await;
        env.kv2_put("auth-many/app", json!({"value": "many"})).await;
        env.k8s_role(
            "auth-many",
            "many-sa",
            "many-ns",
            &[("secret/data/auth-many/*", KV_READ)],
            Duration::from_secs(600),
        )
        .await;
        let provider = Provider::start(&["--log-level=info", "--cache-ttl=30s"]).await;
        let base = logins(env, "auth-many");
        let reads_before = env.audit_requests("secret/data/auth-many/app");
        let mut tasks = Vec::new();
        for _ in 0..100 {
            let pod = TestPod::new("many-ns", "many-sa");
            let request = MountBuilder::new(env.bao.addr(), "auth-many", &objects("auth-many/app"))
                .pod(&pod, &env.signer, "vault")
                .build();
            let mut client = provider.client().await;
            tasks.push(tokio::spawn(async move {
                client.mount(request).await.map(|r| r.into_inner())
            }));
        }
        for task in tasks {
            let response = task
                .await
                .unwrap()
                .unwrap_or_else(|e| panic!("mount: {e:?}"));
            assert_eq!(file(&response, "value"), "many");
        }
        wait_logins(env, "auth-many", base + 1).await;
        assert_eq!(
            logins(env, "auth-many"),
            base + 1,
            "one login for 100 replicas"
        );
        // Their identical reads coalesced and were then served from the cache.
        assert_eq!(
            env.audit_requests("secret/data/auth-many/app"),
            reads_before + 1
        );

        // Per-pod scope: 100 mounts of 10 pods, one login per pod.
        let per_pod = Provider::start(&["--cache-scope=pod"]).await;
        let pods: Vec<TestPod> = (0..10)
            .map(|_| TestPod::new("many-ns", "many-sa"))
            .collect();
        let base = logins(env, "auth-many");
        let mut tasks = Vec::new();
        for i in 0..100 {
            let request = MountBuilder::new(env.bao.addr(), "auth-many", &objects("auth-many/app"))
                .pod(&pods[i % 10], &env.signer, "vault")
                .build();
            let mut client = per_pod.client().await;
            tasks.push(tokio::spawn(async move {
                client.mount(request).await.map(|r| r.into_inner())
            }));
        }
        for task in tasks {
            task.await
                .unwrap()
                .unwrap_or_else(|e| panic!("mount: {e:?}"));
        }
        wait_logins(env, "auth-many", base + 10).await;
        assert_eq!(logins(env, "auth-many"), base + 10, "one login per pod");
    });
}

#[test]
fn without_a_driver_token_the_provider_mints_a_pod_bound_one() {
    run(async {
        let env = env().await;
        env.kv2_put("auth-mint/app", json!({"value": "minted"}))
            .await;
        env.k8s_role(
            "auth-mint",
            "minted",
            "mint-ns",
            &[("secret/data/auth-mint/*", KV_READ)],
            Duration::from_secs(600),
        )
        .await;
        let kube = common::kube_api::KubeApi::start().await;
        kube.sign_tokens_with(env.signer.clone());
        let kubeconfig = kube.kubeconfig();
        let home = kube.empty_home();
        let provider = Provider::start_opts(
            &[],
            &[
                ("KUBECONFIG", kubeconfig.to_str().unwrap()),
                ("HOME", home.to_str().unwrap()),
            ],
            true,
        )
        .await;
        let pod = TestPod::new("mint-ns", "minted");
        let request = MountBuilder::new(env.bao.addr(), "auth-mint", &objects("auth-mint/app"))
            .pod_info(&pod);
        assert_eq!(
            file(
                &provider.mount(request.build()).await.expect("mount"),
                "value"
            ),
            "minted"
        );
        provider.mount(request.build()).await.expect("second mount");

        let path = "/api/v1/namespaces/mint-ns/serviceaccounts/minted/token";
        let minted: Vec<_> = kube
            .requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect();
        assert_eq!(
            minted.len(),
            1,
            "one token, minted only when a login was needed"
        );
        let spec = &minted[0].body.as_ref().unwrap()["spec"];
        assert_eq!(spec["expirationSeconds"], 900);
        assert_eq!(spec["boundObjectRef"]["kind"], "Pod");
        assert_eq!(spec["boundObjectRef"]["name"], pod.name.as_str());
        assert_eq!(spec["boundObjectRef"]["uid"], pod.uid.as_str());
        assert!(
            spec["audiences"].as_array().is_none_or(|a| a.is_empty()),
            "no audience parameter: the API server's default"
        );

        // With an explicit audience, the token is requested for it.
        let other = TestPod::new("mint-ns", "minted");
        let request = MountBuilder::new(env.bao.addr(), "auth-mint", &objects("auth-mint/app"))
            .param("audience", "vault")
            .pod_info(&other);
        provider
            .mount(request.build())
            .await
            .expect("mount with audience");
        let last = kube
            .requests()
            .into_iter()
            .rfind(|r| r.path == path)
            .unwrap();
        assert_eq!(last.body.unwrap()["spec"]["audiences"], json!(["vault"]));

        // Without RBAC for serviceaccounts/token, the error names the rule.
        kube.set_forbidden(true);
        let denied = TestPod::new("mint-ns", "minted");
        let request = MountBuilder::new(env.bao.addr(), "auth-mint", &objects("auth-mint/app"))
            .pod_info(&denied);
        let err = provider.mount(request.build()).await.unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition, "{}", err.message());
        for expected in [
            "serviceaccounts/token",
            "\"create\"",
            "tokenRequests",
            "mint-ns/minted",
        ] {
            assert!(
                err.message().contains(expected),
                "missing {expected:?} in {}",
                err.message()
            );
        }
    });
}

#[test]
fn an_issuer_mismatch_is_explained() {
    run(async {
        let env = env().await;
        // Kubernetes auth that validates the issuer against another cluster's.
        env.api(
            Method::POST,
            "sys/auth/k8s-iss",
            Some(json!({"type": "kubernetes"})),
        )
        .await;
        env.api(
            Method::POST,
            "auth/k8s-iss/config",
            Some(json!({
                "kubernetes_host": env.review.url(),
                "disable_local_ca_jwt": true,
                "kubernetes_ca_cert": "unused: plain http",
                "issuer": "https://other-cluster.example",
                "disable_iss_validation": false,
            })),
        )
        .await;
        token_review::kubernetes_role(
            &env.bao,
            "k8s-iss",
            "auth-iss",
            &["app"],
            &["iss-ns"],
            &["default"],
            Duration::from_secs(60),
        )
        .await
        .unwrap();
        let provider = Provider::start(&[]).await;
        let pod = TestPod::new("iss-ns", "app");
        let request = MountBuilder::new(env.bao.addr(), "auth-iss", &objects("x"))
            .param("vaultAuthMountPath", "k8s-iss")
            .pod(&pod, &env.signer, "vault");
        let err = provider.mount(request.build()).await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{}", err.message());
        assert!(
            err.message().contains("issuer must match"),
            "{}",
            err.message()
        );
    });
}
