//! The never-downgrade memory (opt-in per destination): which domains were
//! delivered to with authenticated TLS (DANE, MTA-STS, verified PKIX), how,
//! since when and until when. While an entry lasts, delivery refuses to
//! send to that domain unauthenticated or in cleartext and defers instead
//! (`outbound/downgrade_guard.rs`). The entries live in memory, so the
//! delivery path reads a map; they are written through a [`MemoryStore`]
//! (a file in the data directory, [`FileStore`]) only when an entry is new,
//! changes how it was authenticated, or is refreshed after
//! [`REFRESH_EVERY`]. Time comes from a [`SharedClock`] so tests move it.

mod store;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::clock::SharedClock;
pub use store::{FileStore, MemoryStore, OnlyInMemory, StoreError};

/// An entry is written again (its `until` pushed forward) at most this often.
pub const REFRESH_EVERY: Duration = Duration::from_secs(3600);

/// How the remembered delivery authenticated the next hop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMethod {
    /// TLSA records matched (DNSSEC-secure).
    Dane,
    /// The MTA-STS policy in enforce mode, certificate verified.
    MtaSts,
    /// A certificate verified against the CA lists at a verify level.
    Pkix,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Dane => "dane",
            AuthMethod::MtaSts => "mta-sts",
            AuthMethod::Pkix => "pkix",
        }
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is remembered about one domain (times in seconds since the epoch).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Remembered {
    /// How the last authenticated delivery was authenticated.
    pub method: AuthMethod,
    /// First authenticated delivery of this unbroken memory.
    pub since: u64,
    /// Last time the entry was written (deliveries in between are not).
    pub last: u64,
    /// The memory ends here unless a later delivery refreshes it.
    pub until: u64,
}

impl Remembered {
    fn active_at(&self, now: u64) -> bool {
        now < self.until
    }

    /// Two nodes' facts about one domain as one: the earliest `since`, the
    /// latest `last` and `until`, the method of the latest delivery.
    pub fn merged(self, other: Remembered) -> Remembered {
        Remembered {
            method: if other.last > self.last {
                other.method
            } else {
                self.method
            },
            since: self.since.min(other.since),
            last: self.last.max(other.last),
            until: self.until.max(other.until),
        }
    }
}

/// One row of `ctl never-downgrade list`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryRow {
    pub domain: String,
    #[serde(flatten)]
    pub entry: Remembered,
}

/// The memory, shared by every delivery and across reloads.
pub struct NeverDowngrade {
    clock: SharedClock,
    store: Box<dyn MemoryStore>,
    entries: Mutex<BTreeMap<String, Remembered>>,
    /// Held while writing, so deliveries reading `entries` never wait for
    /// an fsync, and writes happen in the order of the states they save.
    writing: Mutex<()>,
}

impl fmt::Debug for NeverDowngrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NeverDowngrade")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl Default for NeverDowngrade {
    /// Not kept anywhere: for contexts built without a data directory.
    fn default() -> Self {
        NeverDowngrade {
            clock: crate::clock::system(),
            store: Box::new(OnlyInMemory),
            entries: Mutex::default(),
            writing: Mutex::default(),
        }
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl NeverDowngrade {
    /// Loads the stored entries (expired ones are dropped). A store that
    /// cannot be read is an error for the caller to report; a damaged file
    /// is set aside by the store and reported the same way.
    pub fn open(store: Box<dyn MemoryStore>, clock: SharedClock) -> (Self, Option<StoreError>) {
        let (entries, problem) = match store.load() {
            Ok(e) => (e, None),
            Err(e) => (BTreeMap::new(), Some(e)),
        };
        let now = unix(clock.now());
        let entries = entries
            .into_iter()
            .filter(|(_, r)| r.active_at(now))
            .collect();
        (
            NeverDowngrade {
                clock,
                store,
                entries: Mutex::new(entries),
                writing: Mutex::default(),
            },
            problem,
        )
    }

    fn now(&self) -> u64 {
        unix(self.clock.now())
    }

    /// What is remembered about `domain`, if the memory still lasts.
    pub fn active(&self, domain: &str) -> Option<Remembered> {
        let now = self.now();
        let key = domain.to_ascii_lowercase();
        let g = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        g.get(&key).filter(|r| r.active_at(now)).copied()
    }

    /// An authenticated delivery to `domain`: remember it for `keep`.
    /// Writes the store only for a new entry, a changed method, or a
    /// refresh after [`REFRESH_EVERY`]; returns whether it wrote.
    pub fn remember(
        &self,
        domain: &str,
        method: AuthMethod,
        keep: Duration,
    ) -> Result<bool, StoreError> {
        let now = self.now();
        let key = domain.to_ascii_lowercase();
        let mut g = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let until = now.saturating_add(keep.as_secs());
        let entry = match g.get(&key).filter(|r| r.active_at(now)) {
            Some(r)
                if r.method == method
                    && now.saturating_sub(r.last) < REFRESH_EVERY.as_secs()
                    && r.until >= until.saturating_sub(REFRESH_EVERY.as_secs()) =>
            {
                return Ok(false);
            }
            Some(r) => Remembered {
                method,
                since: r.since,
                last: now,
                until,
            },
            None => Remembered {
                method,
                since: now,
                last: now,
                until,
            },
        };
        g.insert(key, entry);
        g.retain(|_, r| r.active_at(now));
        drop(g);
        self.save()?;
        Ok(true)
    }

    /// Writes the current entries (taken after the write lock, so a later
    /// write never saves an older state).
    fn save(&self) -> Result<(), StoreError> {
        let _writing = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let snapshot = self
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        self.store.save(&snapshot)
    }

    /// The entries still in force, by domain.
    pub fn list(&self) -> Vec<MemoryRow> {
        let now = self.now();
        let g = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        g.iter()
            .filter(|(_, r)| r.active_at(now))
            .map(|(d, r)| MemoryRow {
                domain: d.clone(),
                entry: *r,
            })
            .collect()
    }

    /// Forgets `domain` (or every entry); returns how many were forgotten.
    pub fn forget(&self, domain: Option<&str>) -> Result<usize, StoreError> {
        let mut g = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let before = g.len();
        match domain {
            Some(d) => {
                let key = d.trim_end_matches('.').to_ascii_lowercase();
                g.remove(&key);
            }
            None => g.clear(),
        }
        let gone = before - g.len();
        drop(g);
        if gone > 0 {
            self.save()?;
        }
        Ok(gone)
    }
}

/// What the cluster sync ([`crate::cluster::learned`]) needs: the entries
/// as they are, and replacing them with the cluster's.
impl NeverDowngrade {
    /// Every entry still in force, by domain, and the time (seconds since
    /// the epoch, by the memory's clock) it was taken at: an entry missing
    /// from it whose `until` is past that time ended rather than was
    /// forgotten.
    pub fn snapshot(&self) -> (u64, BTreeMap<String, Remembered>) {
        let now = self.now();
        let g = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let entries = g
            .iter()
            .filter(|(_, r)| r.active_at(now))
            .map(|(d, r)| (d.clone(), *r))
            .collect();
        (now, entries)
    }

    /// Replaces the entries with the cluster's `rows`, except what changed
    /// here since `snapshot` was taken (a delivery learned or refreshed an
    /// entry: merged with the row; the operator forgot one: the row is not
    /// taken back). Saves the local copy when something changed; returns
    /// whether it did.
    pub fn adopt(
        &self,
        rows: &BTreeMap<String, Remembered>,
        snapshot: &BTreeMap<String, Remembered>,
    ) -> Result<bool, StoreError> {
        let now = self.now();
        let mut g = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let mut next: BTreeMap<String, Remembered> = rows
            .iter()
            // Not forgotten here since the snapshot.
            .filter(|(d, _)| !snapshot.contains_key(*d) || g.contains_key(*d))
            .map(|(d, r)| (d.clone(), *r))
            .collect();
        for (d, r) in g.iter() {
            if snapshot.get(d) != Some(r) {
                let mine = match next.get(d) {
                    Some(row) => r.merged(*row),
                    None => *r,
                };
                next.insert(d.clone(), mine);
            }
        }
        next.retain(|_, r| r.active_at(now));
        if *g == next {
            return Ok(false);
        }
        *g = next;
        drop(g);
        self.save()?;
        Ok(true)
    }
}

/// The engine's memory, kept in `data_dir`. A damaged file is set aside and
/// reported in the mail log; the gateway starts with an empty memory.
pub fn open_in(
    data_dir: &std::path::Path,
    alerts: &crate::alerts::AlertSink,
    log: &crate::maillog::MailLog,
) -> std::sync::Arc<NeverDowngrade> {
    let clock = alerts.clock().unwrap_or_else(crate::clock::system);
    let (memory, problem) = NeverDowngrade::open(Box::new(FileStore::in_dir(data_dir)), clock);
    if let Some(e) = problem {
        log.warn(format_args!("{e}"));
    }
    std::sync::Arc::new(memory)
}

/// `2026-11-23 19:05:00` (UTC), for log lines.
pub use crate::control::utc;

#[cfg(test)]
mod tests;
