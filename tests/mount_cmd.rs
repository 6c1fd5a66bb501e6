//! `vault-csi mount` as a user runs it from a laptop: the real binary, a
//! SecretProviderClass file, a real OpenBao, a Vault token or a pod's JWT;
//! checked by the files it leaves and what it prints.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::Duration;

use common::cli::vault_csi;
use common::{TestPod, env, run};
use reqwest::Method;
use serde_json::json;

/// The password the tests store; it must never be printed unless asked.
const PASSWORD: &str = "mount-cmd-canary-password";

/// A SecretProviderClass file in `dir` for role `role` in `namespace`,
/// whose `vaultAddress` leads nowhere (`--vault-addr` replaces it).
fn write_spc(dir: &Path, role: &str, namespace: &str, objects: &str) -> String {
    let objects: String = objects.lines().map(|l| format!("      {l}\n")).collect();
    let yaml = format!(
        "apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\nmetadata:\n  name: laptop\n  \
         namespace: {namespace}\nspec:\n  provider: vault\n  parameters:\n    roleName: {role}\n    \
         vaultAddress: http://127.0.0.1:1\n    objects: |\n{objects}"
    );
    let path = dir.join("spc.yaml");
    std::fs::write(&path, yaml).unwrap();
    path.to_str().unwrap().to_string()
}

/// The objects of the tests: a key, a key with mode 0600, and a whole
/// response in a subfolder.
const OBJECTS: &str = "\
- {objectName: username, secretPath: secret/data/mount-cmd/app, secretKey: username}
- {objectName: password, secretPath: secret/data/mount-cmd/app, secretKey: password, filePermission: 0600}
- {objectName: config/app.json, secretPath: secret/data/mount-cmd/app}";

/// Stores the secret the objects read.
async fn seed() {
    env()
        .await
        .kv2_put(
            "mount-cmd/app",
            json!({"username": "laptop-user", "password": PASSWORD}),
        )
        .await;
}

/// The mode bits of a file.
fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_token_mount_writes_the_files_with_modes_and_hides_the_values() {
    run(async {
        let env = env().await;
        seed().await;
        env.policy(
            "mount-cmd-token",
            &[("secret/data/mount-cmd/app", "\"read\"")],
        )
        .await;
        let token = env
            .api(
                Method::POST,
                "auth/token/create",
                Some(json!({"policies": ["mount-cmd-token"], "ttl": "10m"})),
            )
            .await["auth"]["client_token"]
            .as_str()
            .unwrap()
            .to_string();
        let dir = tempfile::tempdir().unwrap();
        let spc = write_spc(dir.path(), "unused-with-a-token", "mount-cmd", OBJECTS);
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, format!("{token}\n")).unwrap();
        let out = dir.path().join("out");
        let out_arg = out.to_str().unwrap();

        let run = vault_csi(
            &[
                "mount",
                "--spc",
                &spc,
                "--out",
                out_arg,
                "--vault-addr",
                env.bao.addr(),
                "--token-file",
                token_file.to_str().unwrap(),
            ],
            &[],
            None,
        )
        .await;
        assert_eq!(run.code(), 0, "{run:?}");
        assert_eq!(
            std::fs::read_to_string(out.join("username")).unwrap(),
            "laptop-user"
        );
        assert_eq!(
            std::fs::read_to_string(out.join("password")).unwrap(),
            PASSWORD
        );
        let whole: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("config/app.json")).unwrap()).unwrap();
        assert_eq!(whole["data"]["data"]["password"], PASSWORD);
        assert_eq!(mode(&out.join("username")), 0o644, "the driver's default");
        assert_eq!(mode(&out.join("password")), 0o600, "filePermission");
        assert_eq!(mode(&out), 0o700, "a new output folder is owner-only");
        let leftovers: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");

        let listing = &run.stdout;
        assert!(
            listing.contains("(token auth)") && listing.contains(env.bao.addr()),
            "{listing}"
        );
        let row: Vec<&str> = listing
            .lines()
            .find(|l| l.trim_start().starts_with("password "))
            .unwrap_or_else(|| panic!("no password row: {listing}"))
            .split_whitespace()
            .collect();
        let size = PASSWORD.len().to_string();
        assert_eq!(row[..3], ["password", "0600", size.as_str()], "{listing}");
        assert!(row[3].len() > 20, "a version: {listing}");
        assert!(listing.contains("config/app.json"), "{listing}");
        assert!(listing.contains("--show-values"), "{listing}");
        assert!(
            !listing.contains(PASSWORD),
            "values hidden by default: {listing}"
        );
        assert!(!run.stdout.contains(&token) && !run.stderr.contains(&token));

        // The same with VAULT_TOKEN and --show-values.
        let shown = vault_csi(
            &[
                "mount",
                "--spc",
                &spc,
                "--out",
                out_arg,
                "--vault-addr",
                env.bao.addr(),
                "--show-values",
            ],
            &[("VAULT_TOKEN", &token)],
            None,
        )
        .await;
        assert_eq!(shown.code(), 0, "{shown:?}");
        assert!(
            shown
                .stdout
                .contains(&format!("--- password ---\n{PASSWORD}\n")),
            "{}",
            shown.stdout
        );
    });
}

#[test]
fn a_jwt_mount_logs_in_with_the_spc_role_as_the_pod() {
    run(async {
        let env = env().await;
        seed().await;
        env.k8s_role(
            "mount-cmd-jwt",
            "app",
            "mount-cmd",
            &[("secret/data/mount-cmd/app", "\"read\"")],
            Duration::from_secs(600),
        )
        .await;
        let pod = TestPod::new("mount-cmd", "app");
        let jwt = pod.token(&env.signer, "vault");
        let dir = tempfile::tempdir().unwrap();
        let spc = write_spc(dir.path(), "mount-cmd-jwt", "mount-cmd", OBJECTS);
        let jwt_file = dir.path().join("jwt");
        std::fs::write(&jwt_file, &jwt).unwrap();
        let out = dir.path().join("out");
        let logins_before = logins(env, "mount-cmd-jwt");

        let run = vault_csi(
            &[
                "mount",
                "--spc",
                &spc,
                "--out",
                out.to_str().unwrap(),
                "--vault-addr",
                env.bao.addr(),
                "--jwt-file",
                jwt_file.to_str().unwrap(),
                "--pod-name",
                &pod.name,
                "--service-account",
                "app",
            ],
            &[],
            None,
        )
        .await;
        assert_eq!(run.code(), 0, "{run:?}");
        assert_eq!(
            std::fs::read_to_string(out.join("password")).unwrap(),
            PASSWORD
        );
        assert!(
            run.stdout.contains(&format!(
                "as pod mount-cmd/{} (kubernetes auth, role mount-cmd-jwt)",
                pod.name
            )),
            "{}",
            run.stdout
        );
        assert_eq!(logins(env, "mount-cmd-jwt"), logins_before + 1);
        assert!(!run.stdout.contains(&jwt) && !run.stderr.contains(&jwt));
    });
}

/// Kubernetes-auth logins to `role` in the audit log.
fn logins(env: &common::Env, role: &str) -> usize {
    env.bao
        .audit_entries()
        .iter()
        .filter(|e| {
            e["type"] == "response"
                && e["request"]["path"] == "auth/kubernetes/login"
                && e["request"]["data"]["role"] == role
                && !e["auth"]["client_token"].is_null()
        })
        .count()
}

#[test]
fn failures_exit_non_zero_with_the_providers_message_and_write_nothing() {
    run(async {
        let env = env().await;
        seed().await;
        let dir = tempfile::tempdir().unwrap();
        let spc = write_spc(
            dir.path(),
            "unused",
            "mount-cmd",
            "- {objectName: secret, secretPath: secret/data/mount-cmd/app, secretKey: nope}",
        );
        let out = dir.path().join("out");
        let out_arg = out.to_str().unwrap();
        let root = env.bao.root_token();

        // A key that is not there: the provider's NotFound, naming object and keys.
        let missing = vault_csi(
            &[
                "mount",
                "--spc",
                &spc,
                "--out",
                out_arg,
                "--vault-addr",
                env.bao.addr(),
            ],
            &[("VAULT_TOKEN", root)],
            None,
        )
        .await;
        assert_eq!(missing.code(), 1, "{missing:?}");
        assert!(
            missing.stderr.contains("Mount failed (NotFound)")
                && missing.stderr.contains("object \"secret\"")
                && missing
                    .stderr
                    .contains("the keys there are: password, username"),
            "{}",
            missing.stderr
        );
        assert!(!out.exists(), "nothing is written when the mount fails");

        // Without --vault-addr the SPC's own (dead) address is used.
        let unreachable = vault_csi(
            &["mount", "--spc", &spc, "--out", out_arg],
            &[("VAULT_TOKEN", root)],
            None,
        )
        .await;
        assert_eq!(unreachable.code(), 1, "{unreachable:?}");
        assert!(
            unreachable.stderr.contains("127.0.0.1:1"),
            "{}",
            unreachable.stderr
        );

        // No credential at all: a usage error with the choices.
        let no_credential = vault_csi(&["mount", "--spc", &spc, "--out", out_arg], &[], None).await;
        assert_eq!(no_credential.code(), 2, "{no_credential:?}");
        assert!(
            no_credential.stderr.contains("--token-file")
                && no_credential.stderr.contains("--jwt-file"),
            "{}",
            no_credential.stderr
        );
    });
}
