//! The report store under `<data-dir>/tls-reports/`:
//!
//! - `received/ID.json`: one accepted report with when and how it came,
//!   the report kept as the sender wrote it (unknown fields included). The
//!   id is derived from the organisation and its `report-id`, so a report
//!   mailed twice (a retried delivery) is stored once.
//! - `refused/ID.json`: why a report was refused, with `refused/ID.data`
//!   beside it holding the bytes as received (when they were within the
//!   cap, and while fewer than 1000 refused reports are kept), for the
//!   operator to look at or hand back to the sender.
//!
//! Every file is written to a temporary name, fsynced, renamed into place
//! and its directory fsynced: a crash leaves the whole file or none.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use portcullis_policy::TlsReport;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ReportSource;

/// The store's directory in the data directory.
pub const STORE_DIR: &str = "tls-reports";

/// Most refused reports whose bytes are kept: past this only the reason
/// is recorded, so a sender posting garbage cannot fill the disk.
const MAX_REFUSED_DATA_FILES: usize = 1000;

/// Reports are posted without a token (RFC 8460 senders have none), so the
/// store is bounded: past this many stored reports, or refusal records, a
/// new one is not written (the sender hears a temporary failure, the
/// operator a log line naming the directory to clean).
const MAX_STORED_REPORTS: usize = 100_000;
const MAX_REFUSED_RECORDS: usize = 10_000;

/// An accepted report as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct StoredReport {
    /// The store id.
    pub id: String,
    /// When it arrived (Unix seconds).
    pub received_at: u64,
    /// How it arrived.
    pub source: ReportSource,
    /// The report as the sender wrote it.
    pub report: serde_json::Value,
}

/// A refused report's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RefusedReport {
    /// The refused-report id.
    pub id: String,
    /// When it arrived (Unix seconds).
    pub received_at: u64,
    /// How it arrived.
    pub source: ReportSource,
    /// `bad-gzip`, `truncated-json`, `too-large`, `not-a-report`, …
    pub kind: String,
    /// Why it was refused, for the operator.
    pub reason: String,
    /// Bytes received (kept in `ID.data`), 0 when none were kept.
    pub kept_bytes: u64,
}

/// The store.
#[derive(Debug, Clone)]
pub struct ReportStore {
    dir: PathBuf,
}

impl ReportStore {
    /// The store of `data_dir`, its directories created (owner only).
    pub fn create(data_dir: &Path) -> std::io::Result<ReportStore> {
        let store = ReportStore::at(data_dir);
        for sub in ["received", "refused"] {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(store.dir.join(sub))?;
        }
        Ok(store)
    }

    /// The store of `data_dir` for reading (nothing is created; a missing
    /// store reads as empty).
    pub fn at(data_dir: &Path) -> ReportStore {
        ReportStore {
            dir: data_dir.join(STORE_DIR),
        }
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stores a parsed report; its id, and whether it replaced a copy.
    pub(super) fn store(
        &self,
        json: &[u8],
        report: &TlsReport,
        source: &ReportSource,
    ) -> std::io::Result<(String, bool)> {
        let value: serde_json::Value = serde_json::from_slice(json)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        let id = report_id(report);
        let path = self.dir.join("received").join(format!("{id}.json"));
        let replaced = path.exists();
        if !replaced {
            room_for(&self.dir.join("received"), "json", MAX_STORED_REPORTS)?;
        }
        let stored = StoredReport {
            id: id.clone(),
            received_at: unix_now(),
            source: source.clone(),
            report: value,
        };
        let text = serde_json::to_vec_pretty(&stored)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        write_durably(&path, &text)?;
        Ok((id, replaced))
    }

    /// Keeps a refused report: the bytes first, then the record naming
    /// them (a crash between the two leaves an unnamed `.data` file, never
    /// a record without its bytes).
    pub(super) fn keep_refused(
        &self,
        bytes: Option<&[u8]>,
        kind: &str,
        reason: &str,
        source: &ReportSource,
    ) -> std::io::Result<String> {
        static SEQUENCE: AtomicU64 = AtomicU64::new(0);
        let now = unix_now();
        let id = format!(
            "{now}-{}-{}",
            std::process::id(),
            SEQUENCE.fetch_add(1, Ordering::Relaxed)
        );
        let dir = self.dir.join("refused");
        room_for(&dir, "json", MAX_REFUSED_RECORDS)?;
        let room = files_ending(&dir, "data") < MAX_REFUSED_DATA_FILES;
        let kept = bytes.filter(|_| room).unwrap_or_default();
        let reason = if bytes.is_some() && !room {
            format!(
                "{reason} (bytes not kept: {MAX_REFUSED_DATA_FILES} refused reports are already kept in {})",
                dir.display()
            )
        } else {
            reason.to_owned()
        };
        if !kept.is_empty() {
            write_durably(&dir.join(format!("{id}.data")), kept)?;
        }
        let record = RefusedReport {
            id: id.clone(),
            received_at: now,
            source: source.clone(),
            kind: kind.to_owned(),
            reason,
            kept_bytes: kept.len() as u64,
        };
        let text = serde_json::to_vec_pretty(&record)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        write_durably(&dir.join(format!("{id}.json")), &text)?;
        Ok(id)
    }

    /// Every stored report that reads back, oldest first, with the files
    /// that do not (each with why).
    pub fn reports(&self) -> (Vec<(StoredReport, TlsReport)>, Vec<String>) {
        let mut reports = Vec::new();
        let mut damaged = Vec::new();
        for path in json_files(&self.dir.join("received")) {
            match read_report(&path) {
                Ok(r) => reports.push(r),
                Err(e) => damaged.push(format!("{}: {e}", path.display())),
            }
        }
        reports.sort_by(|a, b| (a.0.received_at, &a.0.id).cmp(&(b.0.received_at, &b.0.id)));
        (reports, damaged)
    }

    /// The ids of the stored reports (file names only: cheap to poll).
    pub fn received_ids(&self) -> Vec<String> {
        json_files(&self.dir.join("received"))
            .iter()
            .filter_map(|p| p.file_stem()?.to_str().map(str::to_owned))
            .collect()
    }

    /// One stored report by id.
    pub fn report(&self, id: &str) -> Result<(StoredReport, TlsReport), String> {
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(format!(
                "{id:?} is not a report id (see `portcullis tls-report list`)"
            ));
        }
        let path = self.dir.join("received").join(format!("{id}.json"));
        if !path.exists() {
            return Err(format!(
                "no stored TLS report {id} in {} (see `portcullis tls-report list`)",
                self.dir.display()
            ));
        }
        read_report(&path).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The refused reports, oldest first.
    pub fn refused(&self) -> Vec<RefusedReport> {
        let mut out: Vec<RefusedReport> = json_files(&self.dir.join("refused"))
            .into_iter()
            .filter_map(|p| serde_json::from_slice(&std::fs::read(p).ok()?).ok())
            .collect();
        out.sort_by(|a, b| (a.received_at, &a.id).cmp(&(b.received_at, &b.id)));
        out
    }

    /// Where a refused report's bytes are kept.
    pub fn refused_data_path(&self, id: &str) -> PathBuf {
        self.dir.join("refused").join(format!("{id}.data"))
    }
}

/// The id of a report: the first 16 hex digits of SHA-256 over the
/// organisation and its report-id.
fn report_id(report: &TlsReport) -> String {
    let digest =
        Sha256::digest(format!("{}\0{}", report.organization_name, report.report_id).as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

fn read_report(path: &Path) -> Result<(StoredReport, TlsReport), String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let stored: StoredReport =
        serde_json::from_slice(&bytes).map_err(|e| format!("not a stored report: {e}"))?;
    with_report(stored)
}

/// A stored report with its report read (a cluster's copy comes as JSON).
pub fn with_report(stored: StoredReport) -> Result<(StoredReport, TlsReport), String> {
    let report: TlsReport = serde_json::from_value(stored.report.clone())
        .map_err(|e| format!("the stored report no longer parses: {e}"))?;
    Ok((stored, report))
}

fn files_ending(dir: &Path, extension: &str) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == extension))
            .count()
    })
}

/// `Err` when `dir` already holds `cap` files ending in `extension`.
fn room_for(dir: &Path, extension: &str, cap: usize) -> std::io::Result<()> {
    if files_ending(dir, extension) < cap {
        return Ok(());
    }
    Err(std::io::Error::other(format!(
        "the TLS report store is full: {} holds {cap} files; remove old ones to take more",
        dir.display()
    )))
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "json")
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect()
}

pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    crate::durable::write_atomically(path, bytes, 0o600)
}

#[cfg(test)]
mod cap_tests {
    use super::*;

    #[test]
    fn a_full_directory_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        room_for(dir.path(), "json", 2).unwrap();
        for name in ["a.json", "b.json", "c.data"] {
            std::fs::write(dir.path().join(name), b"{}").unwrap();
        }
        room_for(dir.path(), "data", 2).unwrap();
        let e = room_for(dir.path(), "json", 2).unwrap_err().to_string();
        assert!(
            e.contains("store is full") && e.contains(&dir.path().display().to_string()),
            "{e}"
        );
    }
}
