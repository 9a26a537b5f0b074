//! The last alerts sent (default 50), kept across restarts in
//! `<data-dir>/alerts/recent.json`: rewritten whole on each notice (a small
//! file) with write, fsync and rename, so a crash leaves the old list or the
//! new one. A damaged file is moved aside (`recent.json.damaged`) and the
//! list starts empty, logged: it is a record for the operator, not mail.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use super::Notice;

/// The file's name in the alerts directory.
pub const RECENT_FILE: &str = "recent.json";

/// The recent list and where it is kept.
#[derive(Debug)]
pub struct RecentAlerts {
    path: PathBuf,
    keep: usize,
    list: VecDeque<Notice>,
}

impl RecentAlerts {
    /// Loads `<dir>/recent.json` (missing: empty). The warning, if any,
    /// says what was wrong with the file.
    pub fn open(dir: &Path, keep: usize) -> (RecentAlerts, Option<String>) {
        let path = dir.join(RECENT_FILE);
        let (list, warning) = match read(&path) {
            Ok(list) => (list, None),
            Err(why) => {
                let aside = path.with_extension("json.damaged");
                let moved = std::fs::rename(&path, &aside)
                    .map(|()| format!("moved to {}", aside.display()))
                    .unwrap_or_else(|e| format!("could not be moved aside: {e}"));
                (
                    Vec::new(),
                    Some(format!(
                        "alerts: the recent-alerts list {} is unreadable ({why}); it was {moved} and the list starts empty",
                        path.display()
                    )),
                )
            }
        };
        let mut recent = RecentAlerts {
            path,
            keep: keep.max(1),
            list: list.into(),
        };
        recent.trim();
        (recent, warning)
    }

    /// Adds a notice (newest last) and rewrites the file.
    pub fn push(&mut self, notice: Notice) -> std::io::Result<()> {
        self.list.push_back(notice);
        self.trim();
        self.save()
    }

    /// Newest last.
    pub fn list(&self) -> Vec<Notice> {
        self.list.iter().cloned().collect()
    }

    fn trim(&mut self) {
        while self.list.len() > self.keep {
            self.list.pop_front();
        }
    }

    fn save(&self) -> std::io::Result<()> {
        let text = serde_json::to_vec_pretty(&self.list).map_err(std::io::Error::other)?;
        write_durably(&self.path, &text)
    }
}

/// Reads a recent list without opening it for writing (`ctl alerts`
/// offline). Missing file: empty.
pub fn read(path: &Path) -> Result<Vec<Notice>, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| e.to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e.to_string()),
    }
}

/// Replaces `path` with `bytes` (owner-only), a crash leaving the old
/// content or the new.
pub(crate) fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    crate::durable::write_atomically(path, bytes, 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::{Alert, AlertClass, Severity};

    fn notice(i: u32) -> Notice {
        Notice {
            id: format!("{i:016x}"),
            at: 1_800_000_000 + u64::from(i),
            alert: Alert::new(AlertClass::System, Severity::Info, format!("k{i}"), "text"),
            repeats: i,
        }
    }

    #[test]
    fn keeps_the_last_n_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (mut r, w) = RecentAlerts::open(dir.path(), 3);
        assert!(w.is_none());
        for i in 0..5 {
            r.push(notice(i)).unwrap();
        }
        let (again, _) = RecentAlerts::open(dir.path(), 3);
        let ids: Vec<u32> = again.list().iter().map(|n| n.repeats).collect();
        assert_eq!(ids, vec![2, 3, 4]);
        // A smaller count trims on open.
        let (fewer, _) = RecentAlerts::open(dir.path(), 2);
        assert_eq!(fewer.list().len(), 2);
    }

    #[test]
    fn a_damaged_file_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(RECENT_FILE), b"{not json").unwrap();
        let (r, w) = RecentAlerts::open(dir.path(), 50);
        assert!(r.list().is_empty());
        assert!(w.unwrap().contains("unreadable"));
        assert!(dir.path().join("recent.json.damaged").exists());
    }
}
