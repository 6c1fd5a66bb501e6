//! `vault-csi demo` as a user runs it: the real binary against a real OpenBao,
//! from a directory outside the repository (the SecretProviderClass is
//! embedded), checked by the files it leaves and the rotation it prints.

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The demo bounds itself at 60 s; this adds margin for a slow machine.
const TIMEOUT: Duration = Duration::from_secs(90);

/// `BAO_BIN` if set, else the repository's `.venv/bin/bao`
/// (`scripts/install-openbao.sh`).
fn bao_bin() -> PathBuf {
    std::env::var_os("BAO_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/bao"))
}

/// What a finished demo run left behind.
struct Run {
    /// The exit status.
    status: ExitStatus,
    /// Everything printed to stdout.
    stdout: String,
    /// Everything logged to stderr.
    stderr: String,
}

/// Kills the child if the test fails while it runs, so no demo (and hence no
/// OpenBao) outlives the test.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `vault-csi demo --out <out>` in `cwd` with `bao` as `BAO_BIN` and
/// waits at most [`TIMEOUT`]. Output goes to files, not pipes, so a chatty
/// child cannot block on a full pipe while we poll.
fn run_demo(cwd: &Path, out: &Path, bao: &Path) -> Run {
    let stdout_path = cwd.join("stdout.txt");
    let stderr_path = cwd.join("stderr.txt");
    let child = Command::new(env!("CARGO_BIN_EXE_vault-csi"))
        .arg("demo")
        .arg("--out")
        .arg(out)
        .current_dir(cwd)
        .env("BAO_BIN", bao)
        .stdin(Stdio::null())
        .stdout(File::create(&stdout_path).expect("stdout file"))
        .stderr(File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("spawn vault-csi demo");
    let mut child = KillOnDrop(child);
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("wait for vault-csi demo") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "vault-csi demo did not finish in {TIMEOUT:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            read(&stdout_path),
            read(&stderr_path)
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    Run {
        status,
        stdout: read(&stdout_path),
        stderr: read(&stderr_path),
    }
}

/// The trimmed stdout line that starts with `prefix`.
fn line_starting<'a>(stdout: &'a str, prefix: &str) -> &'a str {
    stdout
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{stdout}"))
}

/// The happy path: files, modes, contents after rotation, and the printed diff.
#[test]
fn demo_mounts_writes_and_rotates() {
    let cwd = tempfile::tempdir().expect("temp dir");
    let out = cwd.path().join("out");
    let run = run_demo(cwd.path(), &out, &bao_bin());
    assert!(
        run.status.success(),
        "demo failed ({})\n--- stdout ---\n{}\n--- stderr ---\n{}",
        run.status,
        run.stdout,
        run.stderr
    );

    // The files hold the values after rotation, with the driver's modes.
    let file = |name: &str| {
        let path = out.join(name);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", path.display(), run.stdout));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        (text, mode)
    };
    assert_eq!(file("db-username"), ("demo-user".into(), 0o644));
    assert_eq!(file("db-password"), ("demo-password-v2".into(), 0o644));
    assert_eq!(file("api-key"), ("demo-api-key-0123456789".into(), 0o600));
    let (whole, mode) = file("db.json");
    assert_eq!(mode, 0o644);
    let whole: Value = serde_json::from_str(&whole).expect("db.json is JSON");
    assert_eq!(whole["data"]["data"]["password"], "demo-password-v2");
    assert_eq!(whole["data"]["data"]["username"], "demo-user");
    assert_eq!(whole["data"]["metadata"]["version"], 2);

    // Atomic writes leave no temp files behind.
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["api-key", "db-password", "db-username", "db.json"]);

    // The output shows both passwords and which versions moved.
    assert!(run.stdout.contains("demo-password-v1"), "{}", run.stdout);
    assert!(run.stdout.contains("| demo-password-v2"), "{}", run.stdout);
    assert!(run.stdout.contains("mode 0600"), "{}", run.stdout);
    for changed in ["db-password ", "db.json "] {
        let line = line_starting(&run.stdout, changed);
        assert!(line.contains(" changed:"), "{line}");
        assert!(line.contains(" -> "), "{line}");
    }
    for same in ["db-username ", "api-key "] {
        let line = line_starting(&run.stdout, same);
        assert!(line.contains("unchanged:"), "{line}");
    }
    assert!(run.stdout.contains("README"), "{}", run.stdout);
}

/// Without a `bao` binary the demo fails early with the install hint.
#[test]
fn demo_without_openbao_says_how_to_install_it() {
    let cwd = tempfile::tempdir().expect("temp dir");
    let missing = cwd.path().join("no-such-bao");
    let run = run_demo(cwd.path(), &cwd.path().join("out"), &missing);
    assert!(!run.status.success(), "{}", run.stdout);
    assert!(
        run.stderr.contains("scripts/install-openbao.sh"),
        "{}",
        run.stderr
    );
    assert!(!cwd.path().join("out").exists());
}
