//! The `vault-csi` binary run as a command, the way a person runs `check`
//! or `mount`: arguments, environment, optional stdin; output captured.

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncWriteExt as _;

/// Every run ends well within this; it bounds a hang.
const TIMEOUT: Duration = Duration::from_secs(90);

/// Environment variables a developer's shell may set that would change
/// what the command does; removed so only what a test passes counts.
const CLEARED: &[&str] = &[
    "VAULT_ADDR",
    "BAO_ADDR",
    "VAULT_TOKEN",
    "VAULT_NAMESPACE",
    "VAULT_CACERT",
    "VAULT_CAPATH",
    "VAULT_SKIP_VERIFY",
    "VAULT_TLS_SERVER_NAME",
    "VAULT_CLIENT_CERT",
    "VAULT_CLIENT_KEY",
];

/// A finished run.
#[derive(Debug)]
pub struct CliRun {
    /// How it exited.
    pub status: ExitStatus,
    /// Everything printed to stdout.
    pub stdout: String,
    /// Everything printed to stderr.
    pub stderr: String,
}

impl CliRun {
    /// The exit code (panics if killed by a signal).
    pub fn code(&self) -> i32 {
        self.status
            .code()
            .unwrap_or_else(|| panic!("killed by a signal: {self:?}"))
    }

    /// stdout as JSON (panics with the output if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }
}

/// Runs `vault-csi` with `args`, the extra environment `env`, and `stdin`
/// (closed when `None`).
pub async fn vault_csi(args: &[&str], env: &[(&str, &str)], stdin: Option<&[u8]>) -> CliRun {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_vault-csi"));
    command
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for key in CLEARED {
        command.env_remove(key);
    }
    command.envs(env.iter().copied());
    let mut child = command.spawn().expect("start vault-csi");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        pipe.write_all(input).await.expect("write stdin");
        drop(pipe);
    }
    let output = tokio::time::timeout(TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("vault-csi {args:?} did not finish within {TIMEOUT:?}"))
        .expect("wait for vault-csi");
    CliRun {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}
