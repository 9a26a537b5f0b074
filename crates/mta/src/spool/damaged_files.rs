//! Files kept for the operator beside the spool: the bytes cut from a torn
//! tail (`<segment>.torn-<offset>`) and the segments `queue salvage` moved
//! aside (`<segment>.damaged-<time>`). They help find out what happened, but
//! an unattended gateway must not let them fill the disk: at most
//! [`Retention::files`] of them and [`Retention::bytes`] in total are kept,
//! the oldest removed first, each removal logged. Saving one is best effort:
//! on a full disk the bytes are dropped with a log line rather than leave a
//! half-written file or stop the gateway from starting.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// How many damaged or torn files to keep, and how many bytes of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub files: usize,
    pub bytes: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            files: 10,
            bytes: 64 << 20,
        }
    }
}

/// Whether `name` is a kept damaged or torn file.
pub(super) fn is_kept_file(name: &str) -> bool {
    name.contains(".log.torn-") || name.contains(".log.damaged-")
}

/// Saves `bytes` as `path` if the retention and the disk allow, then trims
/// the kept files. Returns the path when saved.
pub(super) fn keep(path: &Path, bytes: &[u8], retention: Retention) -> Option<PathBuf> {
    if bytes.is_empty() {
        return None;
    }
    if retention.files == 0 || bytes.len() as u64 > retention.bytes {
        tracing::warn!(
            file = %path.display(), bytes = bytes.len(),
            "not keeping the cut bytes: larger than the spool's keep-damaged limits"
        );
        return None;
    }
    let written = fs::File::create(path).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    if let Err(e) = written {
        let _ = fs::remove_file(path);
        tracing::warn!(file = %path.display(), error = %e, "could not keep the cut bytes; dropped them");
        return None;
    }
    if let Some(dir) = path.parent() {
        trim(dir, retention, Some(path));
    }
    Some(path.to_path_buf())
}

/// Removes the oldest kept files until at most `retention` remain. `newest`
/// (the file just kept) goes last.
pub(super) fn trim(dir: &Path, retention: Retention, newest: Option<&Path>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut kept: Vec<(SystemTime, PathBuf, u64)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_str().is_some_and(is_kept_file))
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            let when = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            Some((when, e.path(), meta.len()))
        })
        .collect();
    kept.sort_by(|a, b| {
        let last = |p: &Path| Some(p) == newest;
        (last(&a.1), a.0, &a.1).cmp(&(last(&b.1), b.0, &b.1))
    });
    let mut count = kept.len();
    let mut total: u64 = kept.iter().map(|k| k.2).sum();
    for (_, path, len) in kept {
        if count <= retention.files && total <= retention.bytes {
            break;
        }
        match fs::remove_file(&path) {
            Ok(()) => tracing::warn!(
                file = %path.display(), bytes = len,
                "removed the oldest kept damaged spool file (keep-damaged-files {}, keep-damaged-mib {})",
                retention.files, retention.bytes >> 20
            ),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "could not remove a kept damaged spool file")
            }
        }
        count -= 1;
        total = total.saturating_sub(len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_kept_files_go_first() {
        let dir = tempfile::tempdir().unwrap();
        let r = Retention {
            files: 2,
            bytes: 1 << 20,
        };
        let a = dir.path().join("0000000000000001.log.torn-20");
        let b = dir.path().join("0000000000000002.log.torn-20");
        let c = dir.path().join("0000000000000003.log.damaged-5");
        // Make the ages explicit instead of waiting for the clock.
        let aged = |path: &Path, secs: u64| {
            let f = fs::File::create(path).unwrap();
            f.set_modified(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs))
                .unwrap();
        };
        aged(&a, 1_000);
        aged(&b, 2_000);
        keep(&c, b"cccc", r).unwrap();
        assert!(!a.exists() && b.exists() && c.exists());
        // Too big for the byte limit: not kept at all.
        let big = dir.path().join("0000000000000004.log.torn-20");
        assert!(keep(&big, &vec![0; 2 << 20], r).is_none());
        assert!(!big.exists());
    }
}
