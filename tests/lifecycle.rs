//! The provider process: graceful shutdown, socket ownership during rolling
//! updates, versions across restarts, and the command line.

mod common;

use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::proxy::SlowProxy;
use common::requests::{file, version};
use common::{MountBuilder, Provider, TestPod, env, run};
use serde_json::json;
use vault_csi::proto::VersionRequest;

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

#[test]
fn sigterm_lets_in_flight_mounts_finish_then_removes_the_socket() {
    run(async {
        let env = setup().await;
        let upstream = env.bao.addr().trim_start_matches("http://").to_string();
        // Every answer from Vault takes a second: mounts are in flight for about two.
        let proxy = SlowProxy::start(&upstream, Duration::from_secs(1)).await;
        let mut provider = Provider::start(&[]).await;
        let client = provider.client().await;
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let pod = TestPod::new("life-ns", "app");
            let request = MountBuilder::new(&proxy.addr, "life", OBJECTS)
                .pod(&pod, &env.signer, "vault")
                .build();
            let mut client = client.clone();
            tasks.push(tokio::spawn(async move {
                client.mount(request).await.map(|r| r.into_inner())
            }));
        }
        // Wait until the mounts have reached Vault, then ask the provider to stop.
        while proxy.requests.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        provider.send_sigterm();
        for task in tasks {
            let response = task
                .await
                .unwrap()
                .expect("an in-flight mount finishes after SIGTERM");
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

#[test]
fn a_successors_socket_survives_the_old_process_and_versions_are_stable() {
    run(async {
        let env = setup().await;
        let mut old = Provider::start(&[]).await;
        let pod = TestPod::new("life-ns", "app");
        let request =
            MountBuilder::new(env.bao.addr(), "life", OBJECTS).pod(&pod, &env.signer, "vault");
        let before = old.mount(request.build()).await.expect("mount");

        // Rolling update: the new process binds the same path while the old one runs.
        let new = old.restart().await;
        old.send_sigterm();
        assert!(old.wait_exit(Duration::from_secs(30)).await.success());
        assert!(
            new.socket.exists(),
            "the old process must not remove its successor's socket"
        );
        let answer = new
            .client()
            .await
            .version(VersionRequest {
                version: "v1alpha1".into(),
            })
            .await;
        assert!(answer.is_ok());

        // The same secret gives the same version from the new process (same key).
        let after = new
            .mount(request.build())
            .await
            .expect("mount after restart");
        assert_eq!(version(&after, "value"), version(&before, "value"));
        assert_eq!(after.files, before.files);
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
