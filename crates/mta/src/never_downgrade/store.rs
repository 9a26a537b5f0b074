//! Where the never-downgrade memory is kept: the [`MemoryStore`] interface
//! (a shared PostgreSQL store can implement it later) and its file backend,
//! one JSON file in the data directory written whole (temporary file,
//! fsync, rename, fsync of the directory) so a crash leaves the old or the
//! new file, never half of one. A file that does not parse is refused: it
//! is renamed aside (`.bad-<unix time>`) so nothing is lost, and the error
//! names both paths.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::Remembered;

/// A store that cannot be read or written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

/// Keeps the entries across restarts.
pub trait MemoryStore: Send + Sync + fmt::Debug {
    /// Every stored entry by domain; nothing stored yet is an empty map.
    fn load(&self) -> Result<BTreeMap<String, Remembered>, StoreError>;
    /// Replaces what is stored with `entries`.
    fn save(&self, entries: &BTreeMap<String, Remembered>) -> Result<(), StoreError>;
}

/// Keeps nothing: the memory lasts until the process ends.
#[derive(Debug, Clone, Copy, Default)]
pub struct OnlyInMemory;

impl MemoryStore for OnlyInMemory {
    fn load(&self) -> Result<BTreeMap<String, Remembered>, StoreError> {
        Ok(BTreeMap::new())
    }
    fn save(&self, _: &BTreeMap<String, Remembered>) -> Result<(), StoreError> {
        Ok(())
    }
}

/// `<data-dir>/never-downgrade.json`.
#[derive(Debug, Clone)]
pub struct FileStore {
    path: PathBuf,
}

impl FileStore {
    pub const FILE_NAME: &'static str = "never-downgrade.json";

    pub fn in_dir(data_dir: &Path) -> Self {
        FileStore {
            path: data_dir.join(Self::FILE_NAME),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn set_aside(&self, why: String) -> StoreError {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let aside = self.path.with_extension(format!("json.bad-{stamp}"));
        match std::fs::rename(&self.path, &aside) {
            Ok(()) => StoreError(format!(
                "never-downgrade memory {} refused: {why}; moved aside to {} and starting with an empty memory",
                self.path.display(),
                aside.display()
            )),
            Err(e) => StoreError(format!(
                "never-downgrade memory {} refused: {why}; could not move it aside to {}: {e}; starting with an empty memory",
                self.path.display(),
                aside.display()
            )),
        }
    }
}

impl MemoryStore for FileStore {
    fn load(&self) -> Result<BTreeMap<String, Remembered>, StoreError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => {
                return Err(StoreError(format!(
                    "cannot read the never-downgrade memory {}: {e}",
                    self.path.display()
                )));
            }
        };
        let map: BTreeMap<String, Remembered> = serde_json::from_slice(&bytes)
            .map_err(|e| self.set_aside(format!("not a valid memory file: {e}")))?;
        if let Some(bad) = map
            .keys()
            .find(|d| portcullis_policy::DomainName::parse(d).is_err())
        {
            return Err(self.set_aside(format!("{bad:?} is not a domain name")));
        }
        Ok(map)
    }

    fn save(&self, entries: &BTreeMap<String, Remembered>) -> Result<(), StoreError> {
        let fail = |what: &str, e: std::io::Error| {
            StoreError(format!(
                "never-downgrade memory {} not saved ({what}): {e}",
                self.path.display()
            ))
        };
        let bytes = serde_json::to_vec_pretty(entries)
            .map_err(|e| fail("encoding", std::io::Error::other(e)))?;
        crate::durable::write_atomically(&self.path, &bytes, 0o600).map_err(|e| fail("write", e))
    }
}
