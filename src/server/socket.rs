//! The provider's unix socket: created safely, removed only if still ours.
//!
//! During a rolling update the new provider pod binds the same path before
//! the old one exits; the old one must not unlink its successor's socket, so
//! it remembers the device and inode it bound and compares before removing.

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;

/// The socket this process bound.
#[derive(Debug)]
pub struct ProviderSocket {
    /// Path of the socket.
    path: PathBuf,
    /// Device of the socket file we created.
    dev: u64,
    /// Inode of the socket file we created.
    ino: u64,
    /// Change time (seconds, nanoseconds) of the socket file we created:
    /// inode numbers are recycled, so a successor's socket can reuse ours.
    ctime: (i64, i64),
}

impl ProviderSocket {
    /// Binds `path`, atomically replacing a socket already there (a stale
    /// one, or a predecessor's during a rolling update).  Refuses to replace
    /// anything that is not a socket, and refuses a directory that anyone may
    /// write to without the sticky bit (anyone could then swap the socket).
    pub fn bind(path: &Path) -> Result<(UnixListener, ProviderSocket), String> {
        let parent = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let dir = std::fs::metadata(parent).map_err(|e| {
            format!(
                "the socket directory {} is not usable: {e}",
                parent.display()
            )
        })?;
        let mode = dir.permissions().mode();
        if mode & 0o002 != 0 && mode & 0o1000 == 0 {
            return Err(format!(
                "refusing to serve: the socket directory {} is world-writable without the sticky bit",
                parent.display()
            ));
        }
        let replacing = match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => true,
            Ok(_) => {
                return Err(format!(
                    "refusing to replace {}: it exists and is not a socket; remove it or choose another --endpoint",
                    path.display()
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(format!("cannot inspect {}: {e}", path.display())),
        };
        // Bind beside the path, restrict it, then rename it over the path:
        // rename is atomic, so during a rolling update the driver always
        // finds a socket there (the predecessor's, then ours) and never a
        // moment without one, and the socket is never reachable with looser
        // permissions than 0600.
        let staging = parent.join(format!(".{:x}.tmp", std::process::id()));
        match std::fs::symlink_metadata(&staging) {
            Ok(meta) if meta.file_type().is_socket() => {
                let _ = std::fs::remove_file(&staging);
            }
            _ => {}
        }
        let listener = UnixListener::bind(&staging)
            .map_err(|e| format!("cannot listen on {}: {e}", staging.display()))?;
        let placed = std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| {
                format!(
                    "cannot restrict the permissions of {}: {e}",
                    staging.display()
                )
            })
            .and_then(|()| {
                std::fs::rename(&staging, path)
                    .map_err(|e| format!("cannot move the socket to {}: {e}", path.display()))
            });
        if let Err(e) = placed {
            let _ = std::fs::remove_file(&staging);
            return Err(e);
        }
        if replacing {
            tracing::info!(path = %path.display(), "replaced the socket of a previous process");
        }
        // Taken after the rename, which changes the change time.
        let meta = std::fs::symlink_metadata(path)
            .map_err(|e| format!("cannot inspect {} after binding: {e}", path.display()))?;
        Ok((
            listener,
            ProviderSocket {
                path: path.to_path_buf(),
                dev: meta.dev(),
                ino: meta.ino(),
                ctime: (meta.ctime(), meta.ctime_nsec()),
            },
        ))
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the socket if the path still holds the one this process bound
    /// (same device, inode and change time).
    pub fn remove_if_ours(&self) {
        match std::fs::symlink_metadata(&self.path) {
            Ok(meta)
                if meta.dev() == self.dev
                    && meta.ino() == self.ino
                    && (meta.ctime(), meta.ctime_nsec()) == self.ctime =>
            {
                if let Err(e) = std::fs::remove_file(&self.path) {
                    tracing::warn!(path = %self.path.display(), error = %e, "cannot remove the socket");
                }
            }
            Ok(_) => {
                tracing::info!(path = %self.path.display(), "the socket now belongs to another process; leaving it")
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn replaces_stale_sockets_but_not_files_and_keeps_a_successors_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault.sock");
        let (first, ours) = ProviderSocket::bind(&path).unwrap();
        drop(first);
        // The stale socket of a dead process is replaced.
        let (second, successor) = ProviderSocket::bind(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // Nothing but the socket is left behind (the staging name is gone).
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["vault.sock"]);
        // The first process shutting down must not remove the successor's socket.
        ours.remove_if_ours();
        assert!(path.exists());
        successor.remove_if_ours();
        assert!(!path.exists());
        drop(second);

        std::fs::write(&path, b"not a socket").unwrap();
        let err = ProviderSocket::bind(&path).unwrap_err();
        assert!(err.contains("not a socket"), "{err}");
        assert!(path.exists());
    }

    #[tokio::test]
    async fn refuses_a_world_writable_directory_without_sticky_bit() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = ProviderSocket::bind(&dir.path().join("vault.sock")).unwrap_err();
        assert!(err.contains("world-writable"), "{err}");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(ProviderSocket::bind(&dir.path().join("vault.sock")).is_ok());
    }
}

#[cfg(test)]
mod rolling_update {
    use super::*;

    /// A successor binding while the predecessor still serves never leaves
    /// the path without a listening socket: a client dialling in a loop all
    /// the while always connects.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_path_always_holds_a_listening_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault.sock");
        let (old, _) = ProviderSocket::bind(&path).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let dialler = {
            let (path, stop) = (path.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut dials = 0u32;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    std::os::unix::net::UnixStream::connect(&path)
                        .unwrap_or_else(|e| panic!("dial {dials} found no socket: {e}"));
                    dials += 1;
                }
                dials
            })
        };
        // Every generation keeps listening, as a predecessor does until it exits.
        let mut generations = vec![old];
        for _ in 0..50 {
            generations.push(ProviderSocket::bind(&path).unwrap().0);
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(dialler.join().unwrap() > 0);
    }
}
