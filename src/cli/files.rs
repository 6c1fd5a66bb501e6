//! Writing a Mount's files the way the driver does: parent folders, a temp
//! file in the same folder with the final mode, then a rename, so readers
//! never see half a file.  Used by `demo` and `mount`.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Component, Path};

use crate::proto::File;

/// Creates `out` owner-only (0700) when it does not exist: it is about to
/// hold secrets.  An existing folder keeps its mode.
pub fn create_out_dir(out: &Path) -> Result<(), String> {
    if out.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(out)
        .map_err(|e| format!("cannot create {}: {e}", out.display()))
}

/// Writes one file of a response under `out`, atomically, with its mode.
pub fn write_file(out: &Path, file: &File) -> Result<(), String> {
    let relative = safe_relative_path(&file.path)?;
    let mode = u32::try_from(file.mode)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| {
            format!(
                "refusing {:?}: mode {} is out of range",
                file.path, file.mode
            )
        })?;
    let target = out.join(relative);
    let dir = target.parent().unwrap_or(out);
    let fail = |what: &str, e: std::io::Error| format!("cannot {what} {}: {e}", target.display());
    std::fs::create_dir_all(dir).map_err(|e| fail("create the folder of", e))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".vault-csi-")
        .tempfile_in(dir)
        .map_err(|e| fail("create a temp file for", e))?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(|e| fail("set the mode of", e))?;
    tmp.write_all(&file.contents)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| fail("write", e))?;
    tmp.persist(&target)
        .map_err(|e| fail("rename into place", e.error))?;
    Ok(())
}

/// Accepts only plain relative paths: the provider validates object names
/// already, but a writer must not trust its input (defence in depth).
fn safe_relative_path(path: &str) -> Result<&Path, String> {
    let p = Path::new(path);
    let plain = p.components().all(|c| matches!(c, Component::Normal(_)));
    if path.is_empty() || !plain {
        return Err(format!(
            "refusing to write {path:?}: only relative paths without \"..\" are allowed"
        ));
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    /// Absolute paths and `..` never reach the file system.
    #[test]
    fn unsafe_paths_are_refused() {
        for bad in ["", "/etc/passwd", "../x", "a/../b", "./x"] {
            assert!(safe_relative_path(bad).is_err(), "{bad:?}");
        }
        assert!(safe_relative_path("dir/file.json").is_ok());
    }

    /// Nested names get their folders; the mode is the response's; no temp
    /// file is left behind.
    #[test]
    fn writes_nested_files_with_their_modes() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        create_out_dir(&out).unwrap();
        assert_eq!(
            std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let file = File {
            path: "tls/key.pem".into(),
            mode: 0o600,
            contents: b"k".to_vec(),
        };
        write_file(&out, &file).unwrap();
        let written = out.join("tls/key.pem");
        assert_eq!(std::fs::read(&written).unwrap(), b"k");
        assert_eq!(
            std::fs::metadata(&written).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(std::fs::read_dir(out.join("tls")).unwrap().count(), 1);
    }
}
