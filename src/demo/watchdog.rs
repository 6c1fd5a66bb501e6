//! OpenBao processes (server or proxy) that never outlive their owner.
//!
//! bao runs under a tiny shell watchdog holding our end of a pipe: when this
//! process exits for any reason (even a panic=abort or SIGKILL), the pipe
//! closes and the watchdog stops bao.  Dropping [`Watched`] closes the pipe
//! the same way.  Test binaries keep their shared server in a static that is
//! never dropped, so without this every run would leak a server.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::process::{Child, ChildStdin, Command};

use super::DemoError;

/// The watchdog: runs `"$@"` (bao) and stops it when stdin reaches EOF;
/// exits with bao's status when bao exits by itself, and then removes bao's
/// temp dir (only one of ours, by its name).
const WATCHDOG: &str = r#"exec 3<&0
"$@" </dev/null 3<&- & pid=$!
( read -r _ <&3; kill "$pid" 2>/dev/null ) &
exec 3<&-
wait "$pid"; status=$?
case "$BAO_WATCHDOG_DIR" in */vault-csi-bao-*) rm -rf "$BAO_WATCHDOG_DIR" ;; esac
exit $status"#;

/// A bao process under the watchdog.
pub(super) struct Watched {
    /// Our end of the watchdog's pipe; closing it stops bao.
    pipe: Option<ChildStdin>,
    /// The watchdog shell.
    child: Option<Child>,
}

impl Watched {
    /// Starts `bin args…` in `dir` (removed by the watchdog when bao stops),
    /// with stdout and stderr appended to `log`.
    pub(super) fn spawn<I, S>(
        bin: &Path,
        args: I,
        dir: &Path,
        log: &Path,
    ) -> Result<Watched, DemoError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let out = std::fs::File::create(log).map_err(|e| DemoError::io("create bao log", e))?;
        let err = out
            .try_clone()
            .map_err(|e| DemoError::io("clone bao log handle", e))?;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("bao-watchdog")
            .arg(bin)
            .args(args)
            .current_dir(dir)
            .env("BAO_WATCHDOG_DIR", dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| DemoError::io(format!("spawn {}", bin.display()), e))?;
        Ok(Watched {
            pipe: child.stdin.take(),
            child: Some(child),
        })
    }

    /// The exit status, if bao has exited.
    pub(super) fn try_wait(&mut self) -> Result<Option<ExitStatus>, DemoError> {
        match self.child.as_mut() {
            Some(child) => child
                .try_wait()
                .map_err(|e| DemoError::io("wait for bao", e)),
            None => Ok(None),
        }
    }

    /// The watchdog's process id.
    pub(super) fn id(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        drop(self.pipe.take());
        let Some(mut child) = self.child.take() else {
            return;
        };
        // Reap it, so no bao (not even a zombie) outlives the owner; bounded
        // so a stuck process cannot hang a Drop.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            match child.try_wait() {
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Ok(Some(_)) | Err(_) => break,
            }
        }
    }
}
