//! Durable TLS-RPT aggregates behind a small interface ([`AggregateStore`])
//! so that a shared store (PostgreSQL, for a cluster) can replace the local
//! files later. [`FileStore`] keeps one JSON file per UTC day and policy
//! domain (`<dir>/<YYYY-MM-DD>/<domain>.json`) with the counts and the
//! report addresses already served; each change is written to a temporary
//! file, fsynced, renamed over the old one, and the directory fsynced (the
//! spool's care), so a crash leaves the old or the new file, never half of
//! one. A file that does not parse is moved aside (`….bad-<unix time>`)
//! and reported, never trusted and never a panic.

use std::collections::BTreeMap;
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::counts::{DomainDay, FailureKey, PolicyCounts, PolicyKey};
use super::day::UtcDay;

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("TLS report store {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "TLS report store: damaged file {path} ({reason}); moved aside to {kept_as}, its counts are not reported"
    )]
    Damaged {
        path: PathBuf,
        reason: String,
        kept_as: PathBuf,
    },
    #[error("TLS report store: {0:?} is not a policy domain name that can be stored")]
    BadDomain(String),
}

/// One policy domain's day as stored: counts and where the report went.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredDay {
    pub counts: DomainDay,
    /// Report addresses (`rua` URIs) that took the report.
    pub sent_to: Vec<String>,
}

/// Where aggregates live.
pub trait AggregateStore: Send + Sync + std::fmt::Debug {
    /// Adds counts to the day's aggregate of `domain`, durably.
    fn add(&self, day: UtcDay, domain: &str, counts: &DomainDay) -> Result<(), StoreError>;
    /// The day's aggregate of `domain`, if any session was counted.
    fn load(&self, day: UtcDay, domain: &str) -> Result<Option<StoredDay>, StoreError>;
    /// The policy domains with an aggregate for `day`.
    fn domains(&self, day: UtcDay) -> Result<Vec<String>, StoreError>;
    /// The days with aggregates, oldest first.
    fn days(&self) -> Result<Vec<UtcDay>, StoreError>;
    /// Records that `rua` took the report of `domain` for `day`.
    fn mark_sent(&self, day: UtcDay, domain: &str, rua: &str) -> Result<(), StoreError>;
}

const FORMAT: u32 = 1;

/// One day file's JSON; also an entry of a cluster outbox batch.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(crate) struct DayFile {
    format: u32,
    pub(crate) day: String,
    pub(crate) policy_domain: String,
    policies: Vec<PolicyFile>,
    #[serde(default)]
    sent_to: Vec<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct PolicyFile {
    policy: PolicyKey,
    successful: u64,
    failed: u64,
    #[serde(default)]
    failures: Vec<FailureFile>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct FailureFile {
    result_type: String,
    #[serde(default)]
    sending_mta_ip: Option<IpAddr>,
    #[serde(default)]
    receiving_mx_hostname: Option<String>,
    #[serde(default)]
    receiving_mx_helo: Option<String>,
    #[serde(default)]
    receiving_ip: Option<IpAddr>,
    count: u64,
}

impl DayFile {
    pub(crate) fn from_day(day: UtcDay, domain: &str, stored: &StoredDay) -> Self {
        DayFile {
            format: FORMAT,
            day: day.to_string(),
            policy_domain: domain.to_owned(),
            policies: stored
                .counts
                .policies
                .iter()
                .map(|(policy, c)| PolicyFile {
                    policy: policy.clone(),
                    successful: c.successful,
                    failed: c.failed,
                    failures: c
                        .failures
                        .iter()
                        .map(|(f, n)| FailureFile {
                            result_type: f.result_type.clone(),
                            sending_mta_ip: f.sending_mta_ip,
                            receiving_mx_hostname: f.receiving_mx_hostname.clone(),
                            receiving_mx_helo: f.receiving_mx_helo.clone(),
                            receiving_ip: f.receiving_ip,
                            count: *n,
                        })
                        .collect(),
                })
                .collect(),
            sent_to: stored.sent_to.clone(),
        }
    }

    pub(crate) fn into_day(self, day: UtcDay, domain: &str) -> Result<StoredDay, String> {
        if self.format != FORMAT {
            return Err(format!(
                "format {} (this version reads {FORMAT})",
                self.format
            ));
        }
        if self.day != day.to_string() || self.policy_domain != domain {
            return Err(format!(
                "it holds {} of {}, not {day} of {domain}",
                self.day, self.policy_domain
            ));
        }
        let mut counts = DomainDay::default();
        for p in self.policies {
            let mut c = PolicyCounts {
                successful: p.successful,
                failed: p.failed,
                failures: BTreeMap::new(),
            };
            for f in p.failures {
                let key = FailureKey {
                    result_type: f.result_type,
                    sending_mta_ip: f.sending_mta_ip,
                    receiving_mx_hostname: f.receiving_mx_hostname,
                    receiving_mx_helo: f.receiving_mx_helo,
                    receiving_ip: f.receiving_ip,
                };
                *c.failures.entry(key).or_default() += f.count;
            }
            let mut one = DomainDay::default();
            one.policies.insert(p.policy, c);
            counts.add(&one);
        }
        Ok(StoredDay {
            counts,
            sent_to: self.sent_to,
        })
    }
}

/// Aggregates in local files under one directory.
#[derive(Debug)]
pub struct FileStore {
    dir: PathBuf,
    /// One writer at a time (read-modify-write of a day file).
    write: Mutex<()>,
}

impl FileStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileStore {
            dir: dir.into(),
            write: Mutex::new(()),
        }
    }

    fn file(&self, day: UtcDay, domain: &str) -> Result<PathBuf, StoreError> {
        let safe = !domain.is_empty()
            && !domain.starts_with('.')
            && domain
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_');
        if !safe {
            return Err(StoreError::BadDomain(domain.to_owned()));
        }
        Ok(self
            .dir
            .join(day.to_string())
            .join(format!("{domain}.json")))
    }

    fn read(&self, day: UtcDay, domain: &str) -> Result<Option<StoredDay>, StoreError> {
        let path = self.file(day, domain)?;
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        let parsed = serde_json::from_slice::<DayFile>(&bytes)
            .map_err(|e| e.to_string())
            .and_then(|f| f.into_day(day, domain));
        match parsed {
            Ok(d) => Ok(Some(d)),
            Err(reason) => Err(set_aside(&path, reason)),
        }
    }

    fn write_file(&self, day: UtcDay, domain: &str, stored: &StoredDay) -> Result<(), StoreError> {
        let path = self.file(day, domain)?;
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| StoreError::Io { path, source }
        };
        let parent = path.parent().unwrap_or(&self.dir).to_owned();
        fs::create_dir_all(&parent).map_err(io(&parent))?;
        let json = serde_json::to_vec_pretty(&DayFile::from_day(day, domain, stored))
            .map_err(|e| io(&path)(std::io::Error::other(e)))?;
        crate::durable::write_atomically(&path, &json, 0o600).map_err(io(&path))
    }
}

pub(crate) fn set_aside(path: &Path, reason: String) -> StoreError {
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut kept_as = path.as_os_str().to_owned();
    kept_as.push(format!(".bad-{stamp}"));
    let kept_as = PathBuf::from(kept_as);
    if let Err(e) = fs::rename(path, &kept_as) {
        return StoreError::Io {
            path: path.to_owned(),
            source: std::io::Error::other(format!(
                "damaged ({reason}) and could not be moved aside: {e}"
            )),
        };
    }
    StoreError::Damaged {
        path: path.to_owned(),
        reason,
        kept_as,
    }
}

impl AggregateStore for FileStore {
    fn add(&self, day: UtcDay, domain: &str, counts: &DomainDay) -> Result<(), StoreError> {
        let _one = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let mut stored = self.read(day, domain)?.unwrap_or_default();
        stored.counts.add(counts);
        self.write_file(day, domain, &stored)
    }

    fn load(&self, day: UtcDay, domain: &str) -> Result<Option<StoredDay>, StoreError> {
        let _one = self.write.lock().unwrap_or_else(|p| p.into_inner());
        self.read(day, domain)
    }

    fn domains(&self, day: UtcDay) -> Result<Vec<String>, StoreError> {
        let dir = self.dir.join(day.to_string());
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(StoreError::Io { path: dir, source }),
        };
        let mut out: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_suffix(".json"))
                    .map(str::to_owned)
            })
            .collect();
        out.sort();
        Ok(out)
    }

    fn days(&self) -> Result<Vec<UtcDay>, StoreError> {
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
        let mut out: Vec<UtcDay> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str().and_then(|n| UtcDay::parse(n).ok()))
            .collect();
        out.sort();
        Ok(out)
    }

    fn mark_sent(&self, day: UtcDay, domain: &str, rua: &str) -> Result<(), StoreError> {
        let _one = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let mut stored = self.read(day, domain)?.unwrap_or_default();
        if !stored.sent_to.iter().any(|s| s == rua) {
            stored.sent_to.push(rua.to_owned());
        }
        self.write_file(day, domain, &stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlsrpt::counts::Session;

    fn sample() -> DomainDay {
        let mut d = DomainDay::default();
        let policy = PolicyKey {
            policy_type: "tlsa".into(),
            policy_string: vec!["3 1 1 ABCD".into()],
            mx_host: vec!["mx.dane.example".into()],
        };
        d.count(Session {
            policy: policy.clone(),
            failure: None,
        });
        d.count(Session {
            policy,
            failure: Some(FailureKey {
                result_type: "validation-failure".into(),
                sending_mta_ip: Some("127.0.0.1".parse().unwrap()),
                receiving_mx_hostname: Some("mx.dane.example".into()),
                receiving_mx_helo: None,
                receiving_ip: Some("127.0.0.9".parse().unwrap()),
            }),
        });
        d
    }

    #[test]
    fn counts_add_up_and_survive_a_new_store_on_the_same_directory() {
        let dir = tempfile::tempdir().unwrap();
        let day = UtcDay::parse("2026-12-01").unwrap();
        let store = FileStore::new(dir.path());
        store.add(day, "dane.example", &sample()).unwrap();
        store.add(day, "dane.example", &sample()).unwrap();
        store
            .mark_sent(day, "dane.example", "mailto:r@dane.example")
            .unwrap();
        store
            .mark_sent(day, "dane.example", "mailto:r@dane.example")
            .unwrap();
        drop(store);
        let store = FileStore::new(dir.path());
        let got = store.load(day, "dane.example").unwrap().unwrap();
        assert_eq!(got.counts.totals(), (2, 2));
        assert_eq!(got.sent_to, ["mailto:r@dane.example"]);
        assert_eq!(store.days().unwrap(), [day]);
        assert_eq!(store.domains(day).unwrap(), ["dane.example"]);
        assert!(store.load(day.next(), "dane.example").unwrap().is_none());
        assert!(matches!(
            store.add(day, "../etc", &sample()),
            Err(StoreError::BadDomain(_))
        ));
    }

    #[test]
    fn a_damaged_file_is_refused_named_and_kept_aside() {
        let dir = tempfile::tempdir().unwrap();
        let day = UtcDay::parse("2026-12-01").unwrap();
        let store = FileStore::new(dir.path());
        store.add(day, "x.example", &sample()).unwrap();
        let path = dir.path().join("2026-12-01/x.example.json");
        for damage in [&b"{\"format\": 1, \"day\""[..], b"\xff\xfe", b"{\"format\":9,\"day\":\"2026-12-01\",\"policy-domain\":\"x.example\",\"policies\":[]}"] {
            fs::write(&path, damage).unwrap();
            let e = store.load(day, "x.example").unwrap_err();
            let StoreError::Damaged { kept_as, .. } = &e else {
                panic!("{e}")
            };
            assert!(e.to_string().contains("x.example.json"), "{e}");
            assert_eq!(fs::read(kept_as).unwrap(), damage);
            assert!(!path.exists());
            // A fresh aggregate starts after it.
            store.add(day, "x.example", &sample()).unwrap();
            assert_eq!(store.load(day, "x.example").unwrap().unwrap().counts.totals(), (1, 1));
            fs::remove_file(kept_as).unwrap();
        }
    }
}
