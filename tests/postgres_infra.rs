//! Proves the PostgreSQL infrastructure (`vault_csi::demo::postgres`)
//! against the shared real OpenBao: the database secrets engine issues
//! dynamic credentials that really log in, and the exact answers OpenBao
//! gives when such a lease is read, renewed, capped at `max_ttl`, expires
//! and is revoked, which the provider's lease handling relies on.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::postgres::{self, Postgres, database_engine};
use reqwest::Method;
use serde_json::{Value, json};

/// Set in the child process of [`postgres_dies_with_the_test_binary`].
const HOLDER_ENV: &str = "VAULT_CSI_PG_HOLDER";

/// `PUT sys/leases/<op>` as root with `body`: the status and JSON answer,
/// whatever the status.
async fn leases(op: &str, body: Value) -> (u16, Value) {
    let bao = &common::env().await.bao;
    bao.raw(
        Method::PUT,
        &format!("sys/leases/{op}"),
        Some(bao.root_token()),
        None,
        Some(body),
    )
    .await
    .expect("sys/leases request")
}

/// A 400 answer's single error message.
fn error_of(answer: &(u16, Value)) -> &str {
    assert_eq!(answer.0, 400, "{}", answer.1);
    answer.1["errors"][0].as_str().expect("an error message")
}

/// Waits (at most `timeout`) until `pg` has no role `name`.
async fn wait_role_gone(pg: &Postgres, name: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while pg.role_exists(name).expect("query pg_roles") {
        assert!(Instant::now() < deadline, "role {name} still exists");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn dynamic_credentials_are_issued_renewed_and_revoked() {
    common::run(async {
        let pg = postgres::start().await;
        database_engine(&pg, "database", &[("app", "3s", "10s")]).await;
        let env = common::env().await;

        // A read issues a new PostgreSQL role under a renewable lease.
        let creds = env.api(Method::GET, "database/creds/app", None).await;
        let lease_id = creds["lease_id"].as_str().expect("lease_id").to_owned();
        assert!(lease_id.starts_with("database/creds/app/"), "{creds}");
        assert_eq!(creds["lease_duration"], 3, "{creds}");
        assert_eq!(creds["renewable"], true, "{creds}");
        let data = creds["data"].as_object().expect("data");
        let mut keys: Vec<&str> = data.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["password", "username"], "{creds}");
        let username = data["username"].as_str().expect("username");
        let password = data["password"].as_str().expect("password");
        assert!(
            pg.role_exists(username).unwrap(),
            "{username} not in pg_roles"
        );
        assert_eq!(
            pg.query(&format!(
                "SELECT 1 FROM pg_roles WHERE rolname = '{username}'"
            ))
            .unwrap(),
            "1"
        );
        assert_eq!(
            pg.try_query_as(username, password, "SELECT current_user")
                .expect("the issued credentials log in"),
            username
        );

        // Each read is a new role and lease: nothing is shared between reads.
        let other = env.api(Method::GET, "database/creds/app", None).await;
        assert_ne!(other["lease_id"], creds["lease_id"]);
        assert_ne!(other["data"]["username"], creds["data"]["username"]);

        // Renewal extends the same lease; no new credentials (`data` null).
        let renewed = leases("renew", json!({ "lease_id": lease_id, "increment": 3 })).await;
        assert_eq!(renewed.0, 200, "{}", renewed.1);
        let body = &renewed.1;
        assert_eq!(body["lease_id"], lease_id.as_str(), "{body}");
        assert_eq!(body["lease_duration"], 3, "{body}");
        assert_eq!(body["renewable"], true, "{body}");
        assert_eq!(body["data"], Value::Null, "{body}");
        assert_eq!(body["warnings"], Value::Null, "{body}");

        // An increment past max_ttl is capped with a warning, not refused.
        let capped = leases("renew", json!({ "lease_id": lease_id, "increment": 60 })).await;
        assert_eq!(capped.0, 200, "{}", capped.1);
        let body = &capped.1;
        let duration = body["lease_duration"].as_u64().expect("lease_duration");
        assert!((8..=10).contains(&duration), "{body}");
        let warning = body["warnings"][0].as_str().expect("a warning");
        assert!(
            warning.starts_with("TTL of \"1m\" exceeded the effective max_ttl of"),
            "{body}"
        );

        // A lookup reports the lease's times; its own lease fields are empty.
        let lookup = leases("lookup", json!({ "lease_id": lease_id })).await;
        assert_eq!(lookup.0, 200, "{}", lookup.1);
        let info = &lookup.1["data"];
        assert_eq!(info["id"], lease_id.as_str(), "{info}");
        assert_eq!(info["path"], "database/creds/app", "{info}");
        assert_eq!(info["renewable"], true, "{info}");
        assert!(info["ttl"].as_u64().is_some_and(|t| t <= 10), "{info}");
        for key in ["issue_time", "expire_time", "last_renewal"] {
            assert!(info[key].is_string(), "{key}: {info}");
        }

        // Revocation drops the role at once; the lease is then unknown.
        let revoked = leases("revoke", json!({ "lease_id": lease_id })).await;
        assert_eq!(revoked, (204, Value::Null));
        assert!(
            !pg.role_exists(username).unwrap(),
            "revoked role still exists"
        );
        let again = leases("renew", json!({ "lease_id": lease_id, "increment": 3 })).await;
        assert_eq!(error_of(&again), "lease not found");
        let lookup = leases("lookup", json!({ "lease_id": lease_id })).await;
        assert_eq!(error_of(&lookup), "invalid lease");
    });
}

#[test]
fn leases_end_at_max_ttl_and_expiry_drops_the_role() {
    common::run(async {
        let pg = postgres::start().await;
        database_engine(&pg, "database-ttl", &[("short", "2s", "4s")]).await;
        let env = common::env().await;
        let renewed = env.api(Method::GET, "database-ttl/creds/short", None).await;
        let left = env.api(Method::GET, "database-ttl/creds/short", None).await;
        let lease_id = renewed["lease_id"].as_str().unwrap().to_owned();
        let left_user = left["data"]["username"].as_str().unwrap().to_owned();
        assert!(pg.role_exists(&left_user).unwrap());

        // Renew every 400 ms (well within each lease) until OpenBao refuses.
        let deadline = Instant::now() + Duration::from_secs(8);
        let mut capped = Vec::new();
        let refusal = loop {
            assert!(Instant::now() < deadline, "still renewable past max_ttl");
            let answer = leases("renew", json!({ "lease_id": lease_id, "increment": 2 })).await;
            if answer.0 != 200 {
                break answer;
            }
            let duration = answer.1["lease_duration"].as_u64().unwrap();
            if duration < 2 {
                // Capped: the warning says by how much.
                let warning = answer.1["warnings"][0].as_str().unwrap_or_default();
                assert!(
                    warning.starts_with("TTL of \"2s\" exceeded the effective max_ttl of"),
                    "{}",
                    answer.1
                );
                capped.push(duration);
            } else {
                assert_eq!(answer.1["warnings"], Value::Null, "{}", answer.1);
            }
            tokio::time::sleep(Duration::from_millis(400)).await;
        };
        assert!(!capped.is_empty(), "no renewal was capped at max_ttl");
        // Refused either just before max_ttl (less than a second left) or,
        // once the lease has expired, as unknown.
        let message = error_of(&refusal);
        assert!(
            message == "lease not found" || message.ends_with("past the max TTL, cannot renew"),
            "{}",
            refusal.1
        );

        // Expiry revokes: both roles are dropped, the leases are unknown.
        let user = renewed["data"]["username"].as_str().unwrap();
        wait_role_gone(&pg, user, Duration::from_secs(5)).await;
        wait_role_gone(&pg, &left_user, Duration::from_secs(5)).await;
        for lease in [&renewed["lease_id"], &left["lease_id"]] {
            let answer = leases("renew", json!({ "lease_id": lease, "increment": 2 })).await;
            assert_eq!(error_of(&answer), "lease not found");
            let answer = leases("lookup", json!({ "lease_id": lease })).await;
            assert_eq!(error_of(&answer), "invalid lease");
        }
    });
}

#[test]
fn dropping_postgres_stops_it_and_removes_its_files() {
    common::run(async {
        let pg = postgres::start().await;
        assert_eq!(pg.query("SELECT current_user").unwrap(), pg.superuser());
        assert_eq!(pg.query("SHOW listen_addresses").unwrap(), "127.0.0.1");
        // The superuser needs its password: a wrong one is refused.
        let refused = pg.try_query_as(pg.superuser(), "wrong", "SELECT 1");
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.to_string().contains("password authentication failed")),
            "{refused:?}"
        );
        let (port, dir, watchdog) = (pg.port(), pg.dir().to_owned(), pg.pid());
        // The postmaster's own pid, first line of its pid file.
        let pid_file = std::fs::read_to_string(dir.join("data/postmaster.pid")).unwrap();
        let server = pid_file.lines().next().unwrap().to_owned();
        drop(pg);
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
        assert!(!dir.exists(), "{} left behind", dir.display());
        for pid in [watchdog.to_string(), server] {
            assert!(
                !std::path::Path::new(&format!("/proc/{pid}")).exists(),
                "{pid} alive"
            );
        }
    });
}

/// Not a test of its own: the child process of
/// [`postgres_dies_with_the_test_binary`] starts a server, prints where it
/// is, and waits to be killed.
#[test]
#[ignore = "run by postgres_dies_with_the_test_binary"]
fn postgres_holder() {
    if std::env::var_os(HOLDER_ENV).is_none() {
        return;
    }
    common::run(async {
        let pg = postgres::start().await;
        println!("HOLDER {} {}", pg.port(), pg.dir().display());
        // Bounded, in case the parent dies before killing us.
        tokio::time::sleep(Duration::from_secs(60)).await;
    });
}

#[test]
fn postgres_dies_with_the_test_binary() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "postgres_holder", "--ignored", "--nocapture"])
        .env(HOLDER_ENV, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the holder");
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let line = stdout
        .lines()
        .map_while(Result::ok)
        .find(|l| l.starts_with("HOLDER "))
        .expect("the holder's server");
    let mut fields = line.split(' ').skip(1);
    let port: u16 = fields.next().unwrap().parse().unwrap();
    let dir = std::path::PathBuf::from(fields.next().unwrap());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());

    // SIGKILL: no destructor runs, only the closed pipe tells the watchdog.
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() || dir.exists() {
        assert!(
            Instant::now() < deadline,
            "server or {} outlived its owner",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
