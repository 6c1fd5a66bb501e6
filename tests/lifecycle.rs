//! The provider process: graceful shutdown, socket ownership during rolling
//! updates, versions across restarts, and the command line.

mod common;

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::proxy::SlowProxy;
use common::requests::{file, version};
use common::{MountBuilder, Provider, TestPod, env, run};
use reqwest::Method;
use serde_json::{Value, json};
use vault_csi::demo::token_review;
use vault_csi::proto::{MountRequest, MountResponse, VersionRequest};

const OBJECTS: &str =
    "- objectName: value\n  secretPath: secret/data/life/app\n  secretKey: value\n";

async fn setup() -> &'static common::Env {
    let env = env().await;
    env.kv2_put("life/app", json!({"value": "alive"})).await;
    env.k8s_role(
        "life",
        "app",
        "life-ns",
        &[("secret/data/life/*", "\"read\"")],
        Duration::from_secs(600),
    )
    .await;
    env
}

/// Mount calls in flight when SIGTERM arrives.
const IN_FLIGHT: usize = 100;

#[test]
fn sigterm_lets_100_in_flight_mounts_finish_then_removes_the_socket() {
    run(async {
        let env = setup().await;
        // Ten service accounts of one role: ten logins and ten reads.
        let accounts: Vec<String> = (0..10).map(|n| format!("term-{n}")).collect();
        let names: Vec<&str> = accounts.iter().map(String::as_str).collect();
        token_review::kubernetes_role(
            &env.bao,
            "kubernetes",
            "life-term",
            &names,
            &["life-ns"],
            &["life"],
            Duration::from_secs(600),
        )
        .await
        .unwrap();
        let upstream = env.bao.addr().trim_start_matches("http://").to_string();
        // Every answer from Vault takes two seconds: a mount (login, then
        // read) takes at least four.
        let proxy = SlowProxy::start(&upstream, Duration::from_secs(2)).await;
        let mut provider = Provider::start(&["--log-level=info"]).await;
        let mut clients = Vec::new();
        for _ in 0..4 {
            clients.push(provider.client().await);
        }
        let mut tasks = Vec::new();
        for i in 0..IN_FLIGHT {
            let pod = TestPod::new("life-ns", &accounts[i % accounts.len()]);
            let mut call = tonic::Request::new(
                MountBuilder::new(&proxy.addr, "life-term", OBJECTS)
                    .pod(&pod, &env.signer, "vault")
                    .build(),
            );
            call.set_timeout(Duration::from_secs(60));
            let mut client = clients[i % clients.len()].clone();
            tasks.push(tokio::spawn(async move {
                client.mount(call).await.map(|r| r.into_inner())
            }));
        }
        // SIGTERM once the provider holds all of them and they have reached
        // Vault (through the proxy, which holds every answer for seconds).
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let in_flight = provider.metric("vault_csi_mounts_in_flight").await;
            if in_flight == Some(IN_FLIGHT as f64) && proxy.requests.load(Ordering::SeqCst) > 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{in_flight:?} mounts in flight:\n{}",
                provider.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        provider.send_sigterm();
        for task in tasks {
            let response = task
                .await
                .unwrap()
                .unwrap_or_else(|e| panic!("an in-flight mount failed after SIGTERM: {e:?}"));
            assert_eq!(file(&response, "value"), "alive");
        }
        let status = provider.wait_exit(Duration::from_secs(30)).await;
        assert!(
            status.success(),
            "exit status {status}:\n{}",
            provider.logs()
        );
        assert!(!provider.socket.exists(), "the socket is removed on exit");
    });
}

/// A driver that keeps calling Mount for its pods, one call after another,
/// each on a new connection to the socket path (so it reaches whichever
/// process serves the path), until told to stop.
struct Driver {
    /// Set to stop after the current call.
    stop: Arc<AtomicBool>,
    /// Calls answered so far.
    calls: Arc<AtomicUsize>,
    /// Every answer, with the index of the pod it was for.
    task: tokio::task::JoinHandle<Vec<(usize, Result<MountResponse, tonic::Status>)>>,
}

impl Driver {
    fn start(socket: PathBuf, requests: Vec<MountRequest>) -> Driver {
        let stop = Arc::new(AtomicBool::new(false));
        let calls = Arc::new(AtomicUsize::new(0));
        let (stopping, counting) = (stop.clone(), calls.clone());
        let task = tokio::spawn(async move {
            let mut answers = Vec::new();
            while !stopping.load(Ordering::SeqCst) {
                for (i, request) in requests.iter().enumerate() {
                    let answer = common::provider::connect(&socket)
                        .await
                        .mount(request.clone())
                        .await
                        .map(|r| r.into_inner());
                    answers.push((i, answer));
                    counting.fetch_add(1, Ordering::SeqCst);
                }
            }
            answers
        });
        Driver { stop, calls, task }
    }

    /// Waits until `more` further calls have been answered.
    async fn wait_for_calls(&self, more: usize) {
        let target = self.calls.load(Ordering::SeqCst) + more;
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.calls.load(Ordering::SeqCst) < target {
            assert!(Instant::now() < deadline, "the driver's calls stalled");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[test]
fn a_restart_while_the_driver_keeps_calling_loses_nothing_and_revokes_nothing() {
    run(async {
        let env = setup().await;
        env.api(
            Method::POST,
            "sys/mounts/pki-life",
            Some(json!({"type": "pki", "config": {"max_lease_ttl": "87600h"}})),
        )
        .await;
        env.api(
            Method::POST,
            "pki-life/root/generate/internal",
            Some(json!({"common_name": "life-ca", "ttl": "87600h"})),
        )
        .await;
        // generate_lease: each certificate comes with a Vault lease, so a
        // revocation would show in the audit log.
        env.api(
            Method::POST,
            "pki-life/roles/web",
            Some(
                json!({"allowed_domains": "example.com", "allow_subdomains": true,
                        "max_ttl": "72h", "generate_lease": true}),
            ),
        )
        .await;
        env.policy(
            "life-restart",
            &[
                ("secret/data/life/*", "\"read\""),
                ("pki-life/issue/web", "\"update\""),
            ],
        )
        .await;
        token_review::kubernetes_role(
            &env.bao,
            "kubernetes",
            "life-restart",
            &["restart-a", "restart-b"],
            &["life-ns"],
            &["life-restart"],
            Duration::from_secs(600),
        )
        .await
        .unwrap();
        let objects = format!(
            "{OBJECTS}- objectName: tls.crt\n  secretPath: pki-life/issue/web\n  method: PUT\n  \
             secretKey: certificate\n  secretArgs:\n    common_name: app.example.com\n    ttl: 1h\n"
        );
        // Two identities (service accounts), two pods each.
        let accounts = ["restart-a", "restart-a", "restart-b", "restart-b"];
        let requests: Vec<MountRequest> = accounts
            .iter()
            .map(|sa| {
                MountBuilder::new(env.bao.addr(), "life-restart", &objects)
                    .pod(&TestPod::new("life-ns", sa), &env.signer, "vault")
                    .build()
            })
            .collect();
        let issues = || env.audit_requests("pki-life/issue/web");

        let mut old = Provider::start(&[]).await;
        let driver = Driver::start(old.socket.clone(), requests);
        driver.wait_for_calls(2 * accounts.len()).await;
        assert_eq!(issues(), 2, "one certificate per identity");

        // Rolling update while the driver keeps calling: the new process
        // takes over the path, then the old one is told to stop.
        let new = old.restart().await;
        old.send_sigterm();
        assert!(old.wait_exit(Duration::from_secs(30)).await.success());
        assert!(
            new.socket.exists(),
            "the old process must not remove its successor's socket"
        );
        // Two more rounds, all answered by the new process.
        driver.wait_for_calls(2 * accounts.len()).await;
        driver.stop.store(true, Ordering::SeqCst);
        let answers = driver.task.await.unwrap();

        // Nothing was lost: every call succeeded, and the static object kept
        // its version (same key, same content) across the restart.
        let mut certificates: Vec<HashSet<String>> = vec![HashSet::new(); 2];
        let first = answers[0].1.as_ref().expect("the first call");
        for (i, answer) in &answers {
            let response = answer
                .as_ref()
                .unwrap_or_else(|e| panic!("a call during the restart failed: {e:?}"));
            assert_eq!(file(response, "value"), "alive");
            assert_eq!(version(response, "value"), version(first, "value"));
            certificates[i / 2].insert(file(response, "tls.crt").to_string());
        }
        // Certificates: issued afresh once per identity by the new process,
        // shared by the identity's pods in each process.
        assert_eq!(
            issues(),
            4,
            "one new certificate per identity after the restart"
        );
        for (sa, certs) in ["restart-a", "restart-b"].iter().zip(&certificates) {
            assert_eq!(certs.len(), 2, "{sa}: one certificate per process");
        }
        // Old leases and tokens are left to expire, never revoked (the dev
        // server revoking its own initial root token at start is not ours).
        let entries = env.bao.audit_entries();
        let revocations: Vec<&Value> = entries
            .iter()
            .filter(|e| {
                e["auth"]["display_name"] != "root"
                    && e["request"]["path"]
                        .as_str()
                        .is_some_and(|p| p.contains("revoke"))
            })
            .collect();
        assert!(revocations.is_empty(), "revoked: {revocations:?}");
        let leases: HashSet<&str> = entries
            .iter()
            .filter(|e| e["type"] == "response" && e["request"]["path"] == "pki-life/issue/web")
            .filter_map(|e| e["response"]["secret"]["lease_id"].as_str())
            .collect();
        assert_eq!(leases.len(), 4, "every certificate has its own lease");
        for lease in leases {
            let found = env
                .api(
                    Method::PUT,
                    "sys/leases/lookup",
                    Some(json!({ "lease_id": lease })),
                )
                .await;
            assert!(found["data"]["ttl"].as_u64() > Some(0), "{found}");
        }
        let answer = new
            .client()
            .await
            .version(VersionRequest {
                version: "v1alpha1".into(),
            })
            .await;
        assert!(answer.is_ok());
    });
}

#[test]
fn refuses_to_replace_something_that_is_not_a_socket() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = dir.path().join("vault.sock");
    std::fs::write(&endpoint, "precious").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_vault-csi"))
        .arg(format!("-endpoint={}", endpoint.display()))
        .arg("-health-addr=127.0.0.1:0")
        .arg("--hmac-key-file=/dev/null")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("hmac-key-file") || stderr.contains("not a socket"),
        "{stderr}"
    );
    let key = dir.path().join("key");
    std::fs::write(&key, [1u8; 32]).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_vault-csi"))
        .arg(format!("-endpoint={}", endpoint.display()))
        .arg("-health-addr=127.0.0.1:0")
        .arg(format!("--hmac-key-file={}", key.display()))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("is not a socket"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&endpoint).unwrap(), "precious");
}

#[test]
fn version_flag_prints_build_information() {
    let output = Command::new(env!("CARGO_BIN_EXE_vault-csi"))
        .args(["-version", "-output=json"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let info: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(info["runtimeName"], "vault-csi");
    let output = Command::new(env!("CARGO_BIN_EXE_vault-csi"))
        .args(["--version", "--output=yaml"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&output.stdout).contains("runtimeName: vault-csi"));
    let output = Command::new(env!("CARGO_BIN_EXE_vault-csi"))
        .args(["-log-level=loud"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--log-level"));
}
