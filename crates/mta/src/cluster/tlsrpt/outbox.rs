//! The node's durable buffer of TLS-RPT counts not yet added to the
//! cluster database: each flush of the session counter becomes one batch
//! file in `<data-dir>/cluster/tlsrpt-outbox/`, written atomically, so the
//! counts survive a database that is away and a restart. A batch carries a
//! unique id — node name, a random generation drawn when the outbox is
//! opened, a sequence number — that the database records when it adds the
//! batch, so a batch pushed twice (a commit whose acknowledgement was lost)
//! is added once. The generation keeps ids unique when a data directory is
//! wiped or two report services of one process (a reload) share the
//! directory: a sequence alone would start again at 1 and be skipped as
//! already applied.

use std::collections::hash_map::RandomState;
use std::fs;
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::tlsrpt::counts::{DomainDay, Pending};
use crate::tlsrpt::day::UtcDay;
use crate::tlsrpt::store::{DayFile, StoreError, StoredDay, set_aside};

const FORMAT: u32 = 1;

/// The outbox directory under a node's data directory.
pub fn outbox_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("cluster").join("tlsrpt-outbox")
}

/// One flush's counts, as pushed to the database in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Unique over the cluster and over time.
    pub id: String,
    pub days: Vec<(UtcDay, String, DomainDay)>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct BatchFile {
    format: u32,
    id: String,
    days: Vec<DayFile>,
}

/// Batch files of one node.
#[derive(Debug)]
pub struct Outbox {
    dir: PathBuf,
    node: String,
    generation: u64,
    sequence: AtomicU64,
}

impl Outbox {
    /// The outbox of `node` in `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>, node: &str) -> Outbox {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        Outbox {
            dir: dir.into(),
            node: node.to_owned(),
            generation: RandomState::new().hash_one(nanos),
            sequence: AtomicU64::new(0),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `pending` as one batch, durably; its id.
    pub fn put(&self, pending: &Pending) -> Result<String, StoreError> {
        self.put_as(None, pending)
    }

    /// As [`put`](Self::put) under a given id (one derived from what the
    /// batch holds, so that writing it twice cannot add it twice).
    pub fn put_as(&self, id: Option<String>, pending: &Pending) -> Result<String, StoreError> {
        let seq = self.sequence.fetch_add(1, Ordering::Relaxed) + 1;
        let id = id.unwrap_or_else(|| format!("{}.{:016x}.{seq}", self.node, self.generation));
        let mut keys: Vec<_> = pending.keys().collect();
        keys.sort();
        let file = BatchFile {
            format: FORMAT,
            id: id.clone(),
            days: keys
                .into_iter()
                .map(|key| {
                    let stored = StoredDay {
                        counts: pending[key].clone(),
                        sent_to: Vec::new(),
                    };
                    DayFile::from_day(key.0, &key.1, &stored)
                })
                .collect(),
        };
        let path = self
            .dir
            .join(format!("{:016x}-{seq:012}.json", self.generation));
        let io = |source| StoreError::Io {
            path: path.clone(),
            source,
        };
        fs::create_dir_all(&self.dir).map_err(|source| StoreError::Io {
            path: self.dir.clone(),
            source,
        })?;
        let json = serde_json::to_vec(&file).map_err(|e| io(std::io::Error::other(e)))?;
        crate::durable::write_atomically(&path, &json, 0o600).map_err(io)?;
        Ok(id)
    }

    /// The batch files waiting, oldest generation and sequence first.
    pub fn waiting(&self) -> Result<Vec<PathBuf>, StoreError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(StoreError::Io {
                    path: self.dir.clone(),
                    source,
                });
            }
        };
        let mut out: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        out.sort();
        Ok(out)
    }

    /// Reads one batch file; a damaged one is moved aside and named.
    pub fn read(&self, path: &Path) -> Result<Batch, StoreError> {
        let bytes = fs::read(path).map_err(|source| StoreError::Io {
            path: path.to_owned(),
            source,
        })?;
        let parsed = serde_json::from_slice::<BatchFile>(&bytes)
            .map_err(|e| e.to_string())
            .and_then(parse);
        parsed.map_err(|reason| set_aside(path, reason))
    }

    /// Deletes a batch the database has (already gone: fine).
    pub fn remove(&self, path: &Path) -> Result<(), StoreError> {
        match fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StoreError::Io {
                path: path.to_owned(),
                source,
            }),
        }
    }
}

fn parse(file: BatchFile) -> Result<Batch, String> {
    if file.format != FORMAT {
        return Err(format!(
            "format {} (this version reads {FORMAT})",
            file.format
        ));
    }
    let mut days = Vec::with_capacity(file.days.len());
    for d in file.days {
        let day = UtcDay::parse(&d.day).map_err(|e| e.to_string())?;
        let domain = d.policy_domain.clone();
        let stored = d.into_day(day, &domain)?;
        days.push((day, domain, stored.counts));
    }
    Ok(Batch { id: file.id, days })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlsrpt::counts::{FailureKey, PolicyKey, Session};

    pub(crate) fn sample(successes: usize) -> DomainDay {
        let mut d = DomainDay::default();
        let policy = PolicyKey {
            policy_type: "sts".into(),
            policy_string: vec!["version: STSv1".into(), "mode: enforce".into()],
            mx_host: vec!["mx.dest.example".into()],
        };
        for _ in 0..successes {
            d.count(Session {
                policy: policy.clone(),
                failure: None,
            });
        }
        d.count(Session {
            policy,
            failure: Some(FailureKey {
                result_type: "certificate-expired".into(),
                sending_mta_ip: Some("192.0.2.1".parse().unwrap()),
                receiving_mx_hostname: Some("mx.dest.example".into()),
                receiving_mx_helo: None,
                receiving_ip: None,
            }),
        });
        d
    }

    #[test]
    fn batches_round_trip_with_unique_ids_and_damage_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let day = UtcDay::parse("2026-12-01").unwrap();
        let mut pending = Pending::new();
        pending.insert((day, "dest.example".into()), sample(2));
        pending.insert((day.next(), "other.example".into()), sample(1));
        let a = Outbox::new(dir.path(), "n1");
        let b = Outbox::new(dir.path(), "n1");
        let ids = [
            a.put(&pending).unwrap(),
            a.put(&pending).unwrap(),
            b.put(&pending).unwrap(),
        ];
        assert!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2]);
        assert!(ids.iter().all(|i| i.starts_with("n1.")));
        let waiting = a.waiting().unwrap();
        assert_eq!(waiting.len(), 3);
        let batch = a.read(&waiting[0]).unwrap();
        assert!(ids.contains(&batch.id));
        assert_eq!(batch.days.len(), 2);
        assert_eq!(batch.days[0], (day, "dest.example".into(), sample(2)));
        a.remove(&waiting[0]).unwrap();
        a.remove(&waiting[0]).unwrap();
        assert_eq!(a.waiting().unwrap().len(), 2);
        fs::write(&waiting[1], b"{\"format\":1,").unwrap();
        let e = a.read(&waiting[1]).unwrap_err();
        assert!(matches!(e, StoreError::Damaged { .. }), "{e}");
        assert_eq!(a.waiting().unwrap().len(), 1);
    }
}
