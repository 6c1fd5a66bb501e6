//! Dynamic database credentials from a real PostgreSQL through OpenBao's
//! database engine: kept unchanged across polls and replicas, renewed, and
//! replaced before they die — including when the token dies first.  Every
//! credential the provider hands out must log in to PostgreSQL.

mod common;

use std::time::{Duration, Instant};

use common::postgres::{self, Postgres, database_engine};
use common::requests::file;
use common::{MountBuilder, Provider, TestPod, env, run};
use reqwest::Method;
use serde_json::json;

const OBJECTS: &str = "- objectName: username\n  secretPath: database/creds/app\n  secretKey: username\n- objectName: password\n  secretPath: database/creds/app\n  secretKey: password\n";

/// Mounts every 400 ms for `duration`; every credential must work at the
/// moment it is handed out.  Returns the distinct usernames seen, in order.
async fn poll(
    provider: &Provider,
    request: &MountBuilder,
    pg: &Postgres,
    duration: Duration,
) -> Vec<String> {
    let until = Instant::now() + duration;
    let mut seen: Vec<String> = Vec::new();
    while Instant::now() < until {
        let response = provider
            .mount(request.build())
            .await
            .expect("every mount succeeds");
        let (user, password) = (
            file(&response, "username").to_string(),
            file(&response, "password").to_string(),
        );
        pg.try_query_as(&user, &password, "SELECT 1")
            .unwrap_or_else(|e| panic!("the provider handed out a dead credential {user}: {e}"));
        if seen.last() != Some(&user) {
            seen.push(user);
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    seen
}

fn renewals(env: &common::Env) -> usize {
    env.bao
        .audit_entries()
        .iter()
        .filter(|e| {
            e["type"] == "response"
                && e["request"]["path"] == "sys/leases/renew"
                && e["error"].is_null()
        })
        .count()
}

#[test]
fn database_credentials_are_kept_renewed_and_replaced_before_max_ttl() {
    run(async {
        let _serial = common::SERIAL.lock().await;
        let env = env().await;
        let pg = postgres::start().await;
        database_engine(&pg, "database", &[("app", "3s", "9s")]).await;
        env.k8s_role(
            "leases",
            "app",
            "lease-ns",
            &[("database/creds/app", "\"read\"")],
            Duration::from_secs(600),
        )
        .await;
        let provider = Provider::start(&[]).await;
        let (a, b) = (
            TestPod::new("lease-ns", "app"),
            TestPod::new("lease-ns", "app"),
        );
        let request =
            MountBuilder::new(env.bao.addr(), "leases", OBJECTS).pod(&a, &env.signer, "vault");
        let first = provider.mount(request.build()).await.expect("mount");
        // Username and password come from one lease; a replica gets the same.
        let replica = provider
            .mount(
                MountBuilder::new(env.bao.addr(), "leases", OBJECTS)
                    .pod(&b, &env.signer, "vault")
                    .build(),
            )
            .await
            .expect("mount");
        assert_eq!(file(&replica, "username"), file(&first, "username"));
        assert_eq!(file(&replica, "password"), file(&first, "password"));
        let issued = env.audit_requests("database/creds/app");

        // Polled for 12 s (past the 9 s max TTL): renewed in between, replaced
        // before it died, and never a dead credential.
        let renewals_before = renewals(env);
        let seen = poll(&provider, &request, &pg, Duration::from_secs(12)).await;
        assert_eq!(seen[0], file(&first, "username"), "kept across polls");
        let logs = provider.logs();
        let outcomes: Vec<&str> = logs
            .lines()
            .filter(|l| l.contains("dynamic secret"))
            .map(|l| l.rsplit("outcome=").next().unwrap_or(l))
            .collect();
        assert!(
            renewals(env) > renewals_before,
            "the lease was renewed: {seen:?} {outcomes:?}"
        );
        assert!(seen.len() >= 2, "replaced before max TTL: {seen:?}");
        // About one issue per lease period, not one per poll (30 polls).
        let issues = env.audit_requests("database/creds/app") - issued;
        assert!(
            (1..=4).contains(&issues),
            "{issues} credentials issued in 12 s"
        );
        // Leases handed out are never revoked by the provider.
        let revocations = env
            .bao
            .audit_entries()
            .iter()
            .filter(|e| {
                e["request"]["path"]
                    .as_str()
                    .is_some_and(|p| p.starts_with("sys/leases/revoke"))
            })
            .count();
        assert_eq!(revocations, 0);

        // dynamicSecretReuse: false — a new credential per mount, as HashiCorp does.
        let never = request.clone().param("dynamicSecretReuse", "false");
        let one = provider.mount(never.build()).await.unwrap();
        let two = provider.mount(never.build()).await.unwrap();
        assert_ne!(file(&one, "username"), file(&two, "username"));
    });
}

#[test]
fn a_lease_is_replaced_before_the_token_that_created_it_expires() {
    run(async {
        let _serial = common::SERIAL.lock().await;
        let env = env().await;
        let pg = postgres::start().await;
        database_engine(&pg, "database-short-token", &[("app", "60s", "120s")]).await;
        // The token lives 4 s (max 6 s); the lease would live a minute, but dies with its token.
        env.policy(
            "leases-token",
            &[("database-short-token/creds/app", "\"read\"")],
        )
        .await;
        env.api(
            Method::POST,
            "auth/kubernetes/role/leases-token",
            Some(json!({
                "bound_service_account_names": ["app"],
                "bound_service_account_namespaces": ["token-ns"],
                "token_policies": ["leases-token"],
                "token_ttl": "4s",
                "token_max_ttl": "6s",
            })),
        )
        .await;
        let provider = Provider::start(&[]).await;
        let pod = TestPod::new("token-ns", "app");
        let objects = OBJECTS.replace("database/", "database-short-token/");
        let request = MountBuilder::new(env.bao.addr(), "leases-token", &objects).pod(
            &pod,
            &env.signer,
            "vault",
        );
        let seen = poll(&provider, &request, &pg, Duration::from_secs(10)).await;
        assert!(
            seen.len() >= 2,
            "the credential was replaced on a live token: {seen:?}"
        );
    });
}
