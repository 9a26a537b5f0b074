//! Crash-safe file replacement. Every file of the store is written through
//! [`write_atomic`]: a temporary file in the same directory (so the rename
//! cannot cross file systems), created owner-only, written, fsynced, renamed
//! over the target, and the directory fsynced so the rename itself is durable.
//! A crash at any point leaves either the old file or the new one; a leftover
//! temporary file (name starting with `.tmp-`) is ignored by readers and
//! removed the next time the store is opened for writing.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// Prefix of temporary files; readers skip names starting with it.
pub(crate) const TMP_PREFIX: &str = ".tmp-";

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Replace `target` with `bytes`, atomically and durably, with permission `mode`.
pub(crate) fn write_atomic(target: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = parent_dir(target);
    let file_name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        "{TMP_PREFIX}{}-{}-{file_name}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = write_tmp_and_rename(&tmp, target, bytes, mode, &dir);
    if result.is_err() {
        // Best effort: the temporary file is harmless but untidy.
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn write_tmp_and_rename(
    tmp: &Path,
    target: &Path,
    bytes: &[u8],
    mode: u32,
    dir: &Path,
) -> Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(tmp)
        .map_err(|e| Error::io("cannot create", tmp, e))?;
    file.write_all(bytes)
        .map_err(|e| Error::io("cannot write", tmp, e))?;
    file.sync_all()
        .map_err(|e| Error::io("cannot flush to disk", tmp, e))?;
    drop(file);
    fs::rename(tmp, target).map_err(|e| Error::io("cannot replace", target, e))?;
    sync_dir(dir)
}

/// Remove `target` durably (no-op if it is already gone).
pub(crate) fn remove_durable(target: &Path) -> Result<()> {
    match fs::remove_file(target) {
        Ok(()) => sync_dir(&parent_dir(target)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("cannot remove", target, e)),
    }
}

/// fsync a directory so that renames and unlinks in it survive a power cut.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("cannot flush directory", dir, e))
}

/// Remove temporary files left by an interrupted write.
pub(crate) fn clean_stale_tmp(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

fn parent_dir(target: &Path) -> PathBuf {
    match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn replaces_content_with_mode_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("key.json");
        write_atomic(&target, b"old", 0o600).unwrap();
        write_atomic(&target, b"new", 0o600).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"new");
        let mode = fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn failed_write_keeps_old_content() {
        let dir = tempfile::tempdir().unwrap();
        // The target is a non-empty directory: rename must fail, old state stays.
        let target = dir.path().join("entry");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("inside"), b"old").unwrap();
        assert!(write_atomic(&target, b"new", 0o600).is_err());
        assert_eq!(fs::read(target.join("inside")).unwrap(), b"old");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 1, "temporary file left behind: {names:?}");
    }

    #[test]
    fn stale_temp_files_are_cleaned() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(".tmp-1-2-x.json"), b"half").unwrap();
        fs::write(dir.path().join("x.json"), b"whole").unwrap();
        clean_stale_tmp(dir.path());
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("x.json")]);
    }
}
