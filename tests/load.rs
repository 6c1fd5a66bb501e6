//! Load: 1,000 concurrent Mounts through the real provider against real
//! OpenBao, with 20 identities mixed (Kubernetes auth shared per service
//! account, JWT auth per pod), finish without error or deadlock, and the
//! per-Vault limit (`--vault-max-concurrent-requests`) holds: OpenBao never
//! has more requests from the provider in flight than the limit.

mod common;

use std::time::Duration;

use common::proxy::SlowProxy;
use common::requests::file;
use common::{MountBuilder, Provider, TestPod, env, run};
use serde_json::json;
use vault_csi::demo::token_review;

/// Concurrent Mount calls.
const MOUNTS: usize = 1000;
/// Service accounts; the first [`KUBERNETES_ACCOUNTS`] use Kubernetes auth,
/// the rest JWT auth.
const ACCOUNTS: usize = 20;
/// Service accounts using Kubernetes auth.
const KUBERNETES_ACCOUNTS: usize = 15;
/// The provider's per-Vault request limit in this test.
const LIMIT: usize = 8;
/// gRPC connections the calls are spread over, as several drivers would.
const CONNECTIONS: usize = 10;
const NAMESPACE: &str = "load-ns";

fn account(n: usize) -> String {
    format!("load-sa-{n:02}")
}

/// Secrets, a policy, one Kubernetes role for the first accounts and one JWT
/// role per remaining account.
async fn setup() -> &'static common::Env {
    let env = env().await;
    env.kv2_put("load/common", json!({"value": "shared"})).await;
    for n in 0..ACCOUNTS {
        env.kv2_put(&format!("load/{}", account(n)), json!({"value": n}))
            .await;
    }
    env.policy("load", &[("secret/data/load/*", "\"read\"")])
        .await;
    let kubernetes: Vec<String> = (0..KUBERNETES_ACCOUNTS).map(account).collect();
    let names: Vec<&str> = kubernetes.iter().map(String::as_str).collect();
    token_review::kubernetes_role(
        &env.bao,
        "kubernetes",
        "load",
        &names,
        &[NAMESPACE],
        &["load"],
        Duration::from_secs(600),
    )
    .await
    .expect("kubernetes role");
    for n in KUBERNETES_ACCOUNTS..ACCOUNTS {
        token_review::jwt_role(
            &env.bao,
            "jwt",
            &format!("load-{}", account(n)),
            &format!("system:serviceaccount:{NAMESPACE}:{}", account(n)),
            "vault",
            &["load"],
            Duration::from_secs(600),
        )
        .await
        .expect("jwt role");
    }
    env
}

/// The Mount of pod number `i`: its account's own secret and the common
/// one; every other pod may reuse reads for a few seconds, the rest always
/// read, so Vault sees both cached and uncached traffic.
fn request(env: &common::Env, vault: &str, i: usize) -> (usize, MountBuilder) {
    let n = i % ACCOUNTS;
    let pod = TestPod::new(NAMESPACE, &account(n));
    let objects = format!(
        "- objectName: common\n  secretPath: secret/data/load/common\n  secretKey: value\n\
         - objectName: own\n  secretPath: secret/data/load/{}\n  secretKey: value\n",
        account(n)
    );
    let mut builder = if n < KUBERNETES_ACCOUNTS {
        MountBuilder::new(vault, "load", &objects)
    } else {
        MountBuilder::new(vault, &format!("load-{}", account(n)), &objects)
            .param("vaultAuthMethod", "jwt")
    };
    if i.is_multiple_of(2) {
        builder = builder.param("cacheTTL", "5s");
    }
    (n, builder.pod(&pod, &env.signer, "vault"))
}

#[test]
fn a_thousand_concurrent_mounts_finish_and_vault_never_sees_more_than_the_limit() {
    run(async {
        let env = setup().await;
        let upstream = env.bao.addr().trim_start_matches("http://").to_string();
        // A few milliseconds per answer make requests overlap, so the
        // provider's slots, not OpenBao's speed, decide the concurrency.
        let proxy = SlowProxy::start(&upstream, Duration::from_millis(5)).await;
        let limit = format!("--vault-max-concurrent-requests={LIMIT}");
        let provider = Provider::start(&[&limit, "--log-level=info"]).await;
        let mut clients = Vec::new();
        for _ in 0..CONNECTIONS {
            clients.push(provider.client().await);
        }
        let mut tasks = Vec::with_capacity(MOUNTS);
        for i in 0..MOUNTS {
            let (n, builder) = request(env, &proxy.addr, i);
            let mut call = tonic::Request::new(builder.build());
            call.set_timeout(Duration::from_secs(90));
            let mut client = clients[i % CONNECTIONS].clone();
            tasks.push(tokio::spawn(async move {
                (n, client.mount(call).await.map(|r| r.into_inner()))
            }));
        }
        // A deadlock would hang here: bound the whole run generously.
        let results = tokio::time::timeout(
            Duration::from_secs(120),
            futures_util::future::join_all(tasks),
        )
        .await
        .unwrap_or_else(|_| panic!("mounts still running after 120 s:\n{}", provider.logs()));
        let mut failures = Vec::new();
        for result in results {
            let (n, answer) = result.expect("task");
            match answer {
                Ok(response) => {
                    assert_eq!(file(&response, "common"), "shared");
                    assert_eq!(file(&response, "own"), n.to_string());
                }
                Err(status) => failures.push(format!("{:?}: {}", status.code(), status.message())),
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {MOUNTS} mounts failed, first: {}",
            failures.len(),
            failures[0]
        );

        let peak = proxy.concurrency.max();
        assert!(
            peak <= LIMIT,
            "OpenBao had {peak} requests in flight at once; the limit is {LIMIT}"
        );
        // The load really queued on the limit (else the check above proves nothing).
        assert_eq!(peak, LIMIT, "the slots were never all busy");
        assert_eq!(proxy.concurrency.now(), 0);
        // Every Mount and slot was given back.
        assert_eq!(
            provider.metric("vault_csi_mounts_total{code=\"OK\"}").await,
            Some(MOUNTS as f64)
        );
        for gauge in [
            "vault_csi_mounts_in_flight",
            "vault_csi_vault_requests_in_flight",
            "vault_csi_vault_requests_waiting",
        ] {
            assert_eq!(provider.metric(gauge).await, Some(0.0), "{gauge}");
        }
    });
}
