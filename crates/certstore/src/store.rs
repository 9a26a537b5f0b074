//! The store directory and the operations on named entries.
//!
//! # On-disk layout
//!
//! ```text
//! <store>/                      mode 0700
//!   portcullis-store.json       marker and format version
//!   entries/<name>.json         one file per entry, mode 0600: private key (PKCS#8 PEM),
//!                               chain (PEM, leaf first), pending CSR
//!                               (and the new key of a renewal), demo flag, timestamps
//!   ca.json                     CA lists: enable flags, custom CAs, system-list update
//!   .tmp-*                      temporary files of an interrupted write (ignored, cleaned)
//! ```
//!
//! Everything an operation changes lives in a single file, replaced with
//! [`crate::atomic`]'s write-fsync-rename-fsync, so a crash leaves the old or
//! the new state, never a mix (a key without its certificate, a CSR without its
//! key). The owner-write bit of the store directory is the store's write
//! switch: clear it (`chmod u-w`) and every change is refused before anything
//! is touched, even for root, who ignores permission bits.
//!
//! There is no lock file: two processes changing the same file at the same
//! moment each write a complete file, and the later rename wins.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustls_pki_types::CertificateDer;
use serde::Serialize;

use crate::atomic::{TMP_PREFIX, clean_stale_tmp, remove_durable, write_atomic};
use crate::chain::{self, ChainProblem};
use crate::create::{self, SelfSignedRequest};
use crate::entry::{DEMO_ENTRY, Entry, EntryFile, EntryView, Pending};
use crate::error::{Error, Result};
use crate::info::{CertInfo, Timestamp};
use crate::key::{KeySpec, PrivateKey};
use crate::names::check_entry_name;

const MARKER: &str = "portcullis-store.json";
const ENTRIES: &str = "entries";
/// Mode of every file the store writes.
pub(crate) const FILE_MODE: u32 = 0o600;
const DIR_MODE: u32 = 0o700;

/// A certificate store directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// Result of installing or importing a chain.
#[derive(Debug, Clone, Serialize)]
pub struct InstallReport {
    /// The entry as it is now.
    pub entry: EntryView,
    /// Problems found in the supplied bundle. Duplicates and unrelated
    /// certificates were dropped and are reported only here; a missing
    /// intermediate also shows in `entry.warnings` until it is fixed.
    pub problems: Vec<ChainProblem>,
    /// The certificate was for a renewal key made by `csr --new-key`, which is now the entry's key.
    pub switched_to_new_key: bool,
    /// The certificate was for the next key of a DANE rollover: it is staged
    /// beside the served one until the next key's TLSA record is published.
    pub staged_for_rollover: bool,
}

/// Severity of an expiry notice (SPEC §5: warning when close, critical under 5 days or expired).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExpirySeverity {
    /// Expires within the asked horizon.
    Warning,
    /// Expires within 5 days.
    Critical,
    /// Already expired.
    Expired,
}

/// An entry whose certificate expires soon.
#[derive(Debug, Clone, Serialize)]
pub struct ExpiryNotice {
    /// Entry name.
    pub name: String,
    /// Subject of the leaf.
    pub subject: String,
    /// End of validity.
    pub not_after: Timestamp,
    /// Whole days left (negative once expired).
    pub days_left: i64,
    /// How bad it is.
    pub severity: ExpirySeverity,
}

impl Store {
    /// Open an existing store.
    pub fn open(dir: impl AsRef<Path>) -> Result<Store> {
        let root = dir.as_ref().to_owned();
        match fs::metadata(&root) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::StoreMissing { path: root });
            }
            Err(e) => return Err(Error::io("cannot access", &root, e)),
            Ok(m) if !m.is_dir() => {
                return Err(Error::NotAStore {
                    path: root,
                    reason: "it is not a directory".into(),
                });
            }
            Ok(_) => {}
        }
        let marker = root.join(MARKER);
        let text = fs::read_to_string(&marker).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NotAStore {
                path: root.clone(),
                reason: format!("{MARKER} is missing"),
            },
            _ => Error::io("cannot read", &marker, e),
        })?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Corrupt {
            path: marker.clone(),
            reason: e.to_string(),
        })?;
        if v.get("format").and_then(|f| f.as_u64()) != Some(1) {
            return Err(Error::Corrupt {
                path: marker,
                reason: "unknown store format".into(),
            });
        }
        Ok(Store { root })
    }

    /// Create a store (and missing parent directories), or open it if it exists.
    pub fn open_or_create(dir: impl AsRef<Path>) -> Result<Store> {
        let root = dir.as_ref().to_owned();
        if root.join(MARKER).exists() {
            return Self::open(root);
        }
        if root.exists() {
            // A crash while creating a store leaves an empty `entries/` (and
            // maybe a temporary marker): finish the job instead of refusing.
            let foreign = fs::read_dir(&root)
                .map_err(|e| Error::io("cannot read", &root, e))?
                .flatten()
                .any(|e| {
                    let name = e.file_name();
                    let name = name.to_string_lossy();
                    let empty_entries = name == ENTRIES
                        && fs::read_dir(e.path())
                            .map(|mut d| d.next().is_none())
                            .unwrap_or(false);
                    !(empty_entries || name.starts_with(TMP_PREFIX))
                });
            if foreign {
                return Err(Error::NotAStore {
                    path: root,
                    reason: format!(
                        "the directory is not empty and has no {MARKER}; refusing to use it"
                    ),
                });
            }
        }
        fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(root.join(ENTRIES))
            .map_err(|e| Error::io("cannot create", &root, e))?;
        let store = Store { root };
        store.check_writable()?;
        write_atomic(&store.root.join(MARKER), b"{\"format\": 1}\n", FILE_MODE)?;
        Ok(store)
    }

    /// The store directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Refuse to write when the store directory's owner-write bit is clear.
    pub(crate) fn check_writable(&self) -> Result<()> {
        let meta =
            fs::metadata(&self.root).map_err(|e| Error::io("cannot access", &self.root, e))?;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o200 == 0 {
            return Err(Error::StoreReadOnly {
                path: self.root.clone(),
                mode,
            });
        }
        let entries = self.root.join(ENTRIES);
        if !entries.exists() {
            fs::DirBuilder::new()
                .mode(DIR_MODE)
                .create(&entries)
                .map_err(|e| Error::io("cannot create", &entries, e))?;
        }
        clean_stale_tmp(&entries);
        clean_stale_tmp(&self.root);
        Ok(())
    }

    pub(crate) fn entry_path(&self, name: &str) -> PathBuf {
        self.root.join(ENTRIES).join(format!("{name}.json"))
    }

    /// Names of all entries, sorted.
    pub fn names(&self) -> Result<Vec<String>> {
        let dir = self.root.join(ENTRIES);
        let read = match fs::read_dir(&dir) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("cannot read", &dir, e)),
        };
        let mut names: Vec<String> = read
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !n.starts_with(TMP_PREFIX))
            .filter_map(|n| n.strip_suffix(".json").map(str::to_owned))
            .filter(|n| check_entry_name(n).is_ok())
            .collect();
        names.sort();
        Ok(names)
    }

    /// Load an entry.
    pub fn entry(&self, name: &str) -> Result<Entry> {
        check_entry_name(name)?;
        let path = self.entry_path(name);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NoSuchEntry(name.to_owned()));
            }
            Err(e) => return Err(Error::io("cannot read", &path, e)),
        };
        let file: EntryFile = serde_json::from_str(&text).map_err(|e| Error::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        file.into_entry(&path.display().to_string())
    }

    /// Whether an entry exists.
    pub fn contains(&self, name: &str) -> bool {
        check_entry_name(name).is_ok() && self.entry_path(name).exists()
    }

    pub(crate) fn save(&self, entry: &Entry) -> Result<()> {
        self.check_writable()?;
        let json = serde_json::to_vec_pretty(&EntryFile::from_entry(entry))
            .map_err(|e| Error::Crypto(format!("cannot serialise entry: {e}")))?;
        write_atomic(&self.entry_path(&entry.name), &json, FILE_MODE)
    }

    /// The view of one entry, with warnings for certificates expiring within `warn_days`.
    pub fn show(&self, name: &str, warn_days: u32) -> Result<EntryView> {
        let trusted = self.trusted_cas()?;
        self.view_with_trust(&self.entry(name)?, Timestamp::now(), warn_days, &trusted)
    }

    /// The entry's view plus a warning when a verifying peer would reject the chain.
    pub(crate) fn view_with_trust(
        &self,
        entry: &Entry,
        now: Timestamp,
        warn_days: u32,
        trusted: &[CertificateDer<'static>],
    ) -> Result<EntryView> {
        let mut view = entry.view(now, warn_days)?;
        // Chain problems are judged against the CA lists as they are now: a
        // chain that was incomplete at install time is complete once its root
        // is imported.
        if let Some((leaf, rest)) = entry.chain.split_first() {
            let known = self.known_ca_subjects()?;
            let ordered = chain::order(leaf.clone(), rest.to_vec(), &|top: &CertInfo| {
                known.contains(&top.issuer_der)
            })?;
            for p in ordered.problems {
                view.warnings.push(crate::entry::Warning {
                    kind: "chain",
                    message: p.to_string(),
                });
            }
        }
        // Self-signed certificates already carry their own warning.
        let self_signed = view.leaf().is_some_and(|l| l.self_signed);
        if !self_signed
            && let Some(problem) = crate::verify::chain_problem(&entry.chain, trusted, now)
        {
            view.warnings.push(crate::entry::Warning {
                kind: "untrusted",
                message: problem,
            });
        }
        Ok(view)
    }

    /// Views of all entries.
    pub fn list(&self, warn_days: u32) -> Result<Vec<EntryView>> {
        let now = Timestamp::now();
        let trusted = self.trusted_cas()?;
        self.names()?
            .iter()
            .map(|n| self.view_with_trust(&self.entry(n)?, now, warn_days, &trusted))
            .collect()
    }

    /// Create an entry with a new key and a self-signed certificate.
    pub fn create_self_signed(&self, name: &str, req: &SelfSignedRequest) -> Result<EntryView> {
        self.create_entry(name, req, false)
    }

    fn create_entry(&self, name: &str, req: &SelfSignedRequest, demo: bool) -> Result<EntryView> {
        check_entry_name(name)?;
        req.validate()?;
        self.check_writable()?;
        if self.contains(name) {
            return Err(Error::EntryExists(name.to_owned()));
        }
        let (key, cert) = create::self_signed(req)?;
        let now = Timestamp::now();
        let entry = Entry {
            name: name.to_owned(),
            demo,
            created: now,
            updated: now,
            key,
            chain: vec![cert],
            pending: None,
            next: None,
        };
        self.save(&entry)?;
        entry.view(now, 30)
    }

    /// The demonstration certificate, created (self-signed for `hostname`,
    /// flagged as demo) the first time it is asked for. A listener that uses
    /// it works, and `show` and the gateway's start-up log warn about it.
    pub fn demo_certificate(&self, hostname: &str) -> Result<Entry> {
        if self.contains(DEMO_ENTRY) {
            return self.entry(DEMO_ENTRY);
        }
        let mut req = SelfSignedRequest::new(hostname);
        req.organization = Some("Portcullis demonstration certificate".into());
        req.key = KeySpec::EcdsaP256;
        req.check_fqdn = false;
        self.create_entry(DEMO_ENTRY, &req, true)?;
        self.entry(DEMO_ENTRY)
    }

    /// Make a CSR (PEM) for the entry, carrying its current subject and names.
    /// With `new_key`, a fresh key is generated for the CSR (renewal with key
    /// rollover); the entry keeps serving its current certificate until the
    /// signed one is installed. The CSR is remembered as pending.
    pub fn make_csr(&self, name: &str, new_key: Option<KeySpec>) -> Result<String> {
        let mut entry = self.entry(name)?;
        self.check_writable()?;
        let leaf = entry.chain.first().ok_or_else(|| Error::Corrupt {
            path: self.entry_path(name),
            reason: "empty chain".into(),
        })?;
        let fresh = new_key.map(PrivateKey::generate).transpose()?;
        let csr = create::csr_from_cert(leaf, fresh.as_ref().unwrap_or(&entry.key))?;
        entry.pending = Some(Pending {
            created: Timestamp::now(),
            csr_pem: csr.clone(),
            new_key: fresh,
        });
        entry.updated = Timestamp::now();
        self.save(&entry)?;
        Ok(csr)
    }

    /// Install the certificate a CA signed for this entry's key (or for the
    /// pending renewal key), with the intermediates in any order. Refuses a
    /// certificate for another key and an expired or not yet valid chain;
    /// orders the chain and reports missing, duplicate or unrelated certificates.
    pub fn install_signed(&self, name: &str, input: &[u8], what: &str) -> Result<InstallReport> {
        let mut entry = self.entry(name)?;
        self.check_writable()?;
        let certs = crate::pem::parse_certs(input, what)?;
        if let Some(next) = &entry.next {
            for c in &certs {
                if CertInfo::from_der(c, what)?.spki_der == next.key.spki_der() {
                    return self.install_next_chain(entry, certs, what);
                }
            }
        }
        let pending_key = entry.pending.as_ref().and_then(|p| p.new_key.clone());
        let mut keys = vec![(entry.key.clone(), false)];
        if let Some(k) = pending_key {
            keys.insert(0, (k, true));
        }
        let mut found = None;
        'outer: for (key, is_new) in &keys {
            for (i, c) in certs.iter().enumerate() {
                let info = CertInfo::from_der(c, what)?;
                if info.spki_der == key.spki_der() {
                    found = Some((i, key.clone(), *is_new));
                    break 'outer;
                }
            }
        }
        let Some((leaf_index, key, is_new)) = found else {
            // Name the certificate the operator most likely meant: the first non-CA one.
            let infos = certs
                .iter()
                .map(|c| CertInfo::from_der(c, what))
                .collect::<Result<Vec<_>>>()?;
            let Some(leaf) = infos.iter().find(|i| !i.is_ca).or(infos.first()).cloned() else {
                return Err(Error::bad_input(what, "contains no certificate"));
            };
            return Err(Error::KeyMismatch {
                entry: name.to_owned(),
                subject: leaf.label(),
                cert_spki: leaf.spki_sha256,
                entry_spki: keys
                    .iter()
                    .map(|(k, _)| k.spki_sha256())
                    .collect::<Vec<_>>()
                    .join(" or "),
            });
        };
        let mut others = certs;
        let leaf = others.remove(leaf_index);
        let ordered = self.order_and_check(leaf, others)?;
        entry.key = key;
        entry.chain = ordered.certs;
        entry.pending = None;
        entry.demo = false;
        entry.updated = Timestamp::now();
        self.save(&entry)?;
        Ok(InstallReport {
            entry: self.view_with_trust(&entry, Timestamp::now(), 30, &self.trusted_cas()?)?,
            problems: ordered.problems,
            switched_to_new_key: is_new,
            staged_for_rollover: false,
        })
    }

    pub(crate) fn order_and_check(
        &self,
        leaf: CertificateDer<'static>,
        others: Vec<CertificateDer<'static>>,
    ) -> Result<chain::OrderedChain> {
        let known = self.known_ca_subjects()?;
        let ordered = chain::order(leaf, others, &|top: &CertInfo| {
            known.contains(&top.issuer_der)
        })?;
        let now = Timestamp::now();
        for info in &ordered.infos {
            info.check_valid_at(now)?;
        }
        Ok(ordered)
    }

    /// Import a key and its chain from PEM/DER input (`certs` may also hold the
    /// key; otherwise pass `key`). With `replace`, an existing entry is replaced.
    pub fn import_pem(
        &self,
        name: &str,
        certs: &[u8],
        key: Option<&[u8]>,
        what: &str,
        replace: bool,
    ) -> Result<InstallReport> {
        check_entry_name(name)?;
        let parsed = crate::pem::parse(certs, what)?;
        let mut keys = parsed.keys;
        if let Some(k) = key {
            keys.extend(crate::pem::parse(k, &format!("{what} (key)"))?.keys);
        }
        let key = match keys.as_slice() {
            [one] => PrivateKey::from_der(one, what)?,
            [] => {
                return Err(Error::bad_input(
                    what,
                    "no private key found; give the key file too (--key)",
                ));
            }
            _ => {
                return Err(Error::bad_input(
                    what,
                    "more than one private key found; give exactly one",
                ));
            }
        };
        self.import_parts(name, key, parsed.certs, what, replace)
    }

    /// Import a PKCS#12 file protected by `passphrase`.
    pub fn import_pkcs12(
        &self,
        name: &str,
        data: &[u8],
        passphrase: &str,
        what: &str,
        replace: bool,
    ) -> Result<InstallReport> {
        check_entry_name(name)?;
        let contents = crate::pkcs12::read(data, passphrase, what)?;
        let mut certs = vec![contents.leaf];
        certs.extend(contents.others);
        self.import_parts(name, contents.key, certs, what, replace)
    }

    fn import_parts(
        &self,
        name: &str,
        key: PrivateKey,
        certs: Vec<CertificateDer<'static>>,
        what: &str,
        replace: bool,
    ) -> Result<InstallReport> {
        self.check_writable()?;
        if !replace && self.contains(name) {
            return Err(Error::EntryExists(name.to_owned()));
        }
        let mut others = Vec::new();
        let mut leaf = None;
        for c in certs {
            let info = CertInfo::from_der(&c, what)?;
            if leaf.is_none() && info.spki_der == key.spki_der() {
                leaf = Some(c);
            } else {
                others.push(c);
            }
        }
        let Some(leaf) = leaf else {
            return Err(Error::bad_input(
                what,
                "no certificate matches the private key",
            ));
        };
        let ordered = self.order_and_check(leaf, others)?;
        let now = Timestamp::now();
        let entry = Entry {
            name: name.to_owned(),
            demo: false,
            created: now,
            updated: now,
            key,
            chain: ordered.certs,
            pending: None,
            next: None,
        };
        self.save(&entry)?;
        Ok(InstallReport {
            entry: self.view_with_trust(&entry, now, 30, &self.trusted_cas()?)?,
            problems: ordered.problems,
            switched_to_new_key: false,
            staged_for_rollover: false,
        })
    }

    /// The chain as PEM, leaf first, followed by the private key when `with_key`.
    pub fn export_pem(&self, name: &str, with_key: bool) -> Result<String> {
        let entry = self.entry(name)?;
        let mut out = crate::pem::encode_certs(entry.chain.iter());
        if with_key {
            out.push_str(&entry.key.to_pem());
        }
        Ok(out)
    }

    /// The entry as PKCS#12 protected by `passphrase` (`legacy`: 3DES/SHA-1 for old software).
    pub fn export_pkcs12(&self, name: &str, passphrase: &str, legacy: bool) -> Result<Vec<u8>> {
        let entry = self.entry(name)?;
        crate::pkcs12::write(&entry.key, &entry.chain, passphrase, name, legacy)
    }

    /// Delete an entry.
    pub fn delete(&self, name: &str) -> Result<()> {
        check_entry_name(name)?;
        self.check_writable()?;
        if !self.contains(name) {
            return Err(Error::NoSuchEntry(name.to_owned()));
        }
        remove_durable(&self.entry_path(name))
    }

    /// Entries whose leaf certificate expires within `days` of `now` (or has
    /// expired), soonest first. Under 5 days is critical.
    pub fn expiring_within(&self, days: u32, now: Timestamp) -> Result<Vec<ExpiryNotice>> {
        let mut out = Vec::new();
        for name in self.names()? {
            let entry = self.entry(&name)?;
            let Some(leaf) = entry.chain.first() else {
                continue;
            };
            let info = CertInfo::from_der(leaf, &name)?;
            let days_left = now.days_until(info.not_after);
            let severity = if now > info.not_after {
                ExpirySeverity::Expired
            } else if days_left < 5 {
                ExpirySeverity::Critical
            } else if days_left < i64::from(days) {
                ExpirySeverity::Warning
            } else {
                continue;
            };
            out.push(ExpiryNotice {
                name,
                subject: info.label(),
                not_after: info.not_after,
                days_left,
                severity,
            });
        }
        out.sort_by_key(|n| n.not_after);
        Ok(out)
    }
}
