//! The repository's Kubernetes files: reading them, validating them offline
//! against the Kubernetes schemas (scripts/validate-manifests.sh), and
//! parsing container arguments with the binary's own parser.

use std::path::{Path, PathBuf};
use std::process::Command as Process;

use vault_csi::cli::{Command, ServeSettings, parse_command};

/// The repository root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A file of the repository, by path relative to the root.
pub fn read(relative: &str) -> String {
    std::fs::read_to_string(root().join(relative))
        .unwrap_or_else(|e| panic!("cannot read {relative}: {e}"))
}

/// An environment without variables.
pub fn no_env(_: &str) -> Option<String> {
    None
}

/// Parses `args` (without the program name) as the binary would, expecting
/// the serve command.
pub fn serve(args: &[String], env: &dyn Fn(&str) -> Option<String>) -> Box<ServeSettings> {
    let argv = std::iter::once("vault-csi".to_string()).chain(args.iter().cloned());
    match parse_command(argv, env) {
        Ok(Command::Serve(settings)) => settings,
        Ok(other) => panic!("{args:?} parsed as {other:?}, not as serve"),
        Err(e) => panic!("{args:?} do not parse: {e}"),
    }
}

/// Runs scripts/validate-manifests.sh on `files` (all of deploy/ when
/// empty) and returns its standard output; panics with its output when
/// validation fails.  Fails, never skips, when python3, the venv or the
/// validator is missing.
pub fn validate(files: &[PathBuf]) -> String {
    let output = Process::new("bash")
        .arg(root().join("scripts/validate-manifests.sh"))
        .args(files)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run bash: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "scripts/validate-manifests.sh {files:?} failed ({})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    stdout
}

/// Asserts that the validator's output shows `resource` (`kind/name`,
/// lower-case kind) as checked, not skipped.
pub fn assert_validated(stdout: &str, resource: &str) {
    assert!(
        stdout.contains(&format!("passed for resource {resource} ")),
        "{resource} was not validated:\n{stdout}"
    );
}
