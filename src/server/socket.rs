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
    /// Binds `path`, removing a stale socket first.  Refuses to remove
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
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => {
                std::fs::remove_file(path).map_err(|e| {
                    format!("cannot remove the stale socket {}: {e}", path.display())
                })?;
                tracing::info!(path = %path.display(), "removed a stale socket");
            }
            Ok(_) => {
                return Err(format!(
                    "refusing to replace {}: it exists and is not a socket; remove it or choose another --endpoint",
                    path.display()
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot inspect {}: {e}", path.display())),
        }
        let listener = UnixListener::bind(path)
            .map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
        // Only root (the driver) needs to connect.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("cannot restrict the permissions of {}: {e}", path.display()))?;
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
