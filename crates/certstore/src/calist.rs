//! The two CA lists that decide whom the gateway trusts when it verifies a
//! peer: the *system list* (Mozilla's root set shipped in the binary through
//! `webpki-root-certs`, which can be disabled and re-enabled, or replaced by a
//! newer PEM bundle, but not deleted) and the *custom list* (the operator's own
//! CAs: imported from PEM, deleted one by one). Both live in `ca.json`, written
//! atomically like every other store file.

use std::collections::HashSet;
use std::fs;

use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};

use crate::atomic::write_atomic;
use crate::error::{Error, Result};
use crate::fingerprint::normalise;
use crate::info::{CertInfo, Timestamp};
use crate::store::{FILE_MODE, Store};

const CA_FILE: &str = "ca.json";

/// Which list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CaListKind {
    /// The shipped Mozilla root set (or its update).
    System,
    /// The operator's own CAs.
    Custom,
}

impl std::fmt::Display for CaListKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CaListKind::System => "system",
            CaListKind::Custom => "custom",
        })
    }
}

/// One CA in a list.
#[derive(Debug, Clone, Serialize)]
pub struct CaEntry {
    /// 1-based position, as shown by `ca list custom` and accepted by `ca delete`.
    pub index: usize,
    /// The certificate's facts.
    pub info: CertInfo,
    /// The certificate.
    #[serde(skip)]
    pub der: CertificateDer<'static>,
}

/// A CA list with its state.
#[derive(Debug, Clone, Serialize)]
pub struct CaList {
    /// Which list.
    pub kind: CaListKind,
    /// Whether peers are verified against it.
    pub enabled: bool,
    /// Where the certificates come from.
    pub source: String,
    /// The certificates.
    pub certs: Vec<CaEntry>,
}

/// What `ca import` did.
#[derive(Debug, Clone, Serialize)]
pub struct CaImportReport {
    /// Certificates added.
    pub added: Vec<CertInfo>,
    /// Certificates skipped because they were already in the list.
    pub already_present: usize,
    /// Things the operator should know (not a CA, expired...).
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CaFile {
    format: u32,
    system_enabled: bool,
    custom_enabled: bool,
    system_update: Option<SystemUpdate>,
    custom_pem: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SystemUpdate {
    updated: i64,
    source: String,
    certs_pem: String,
}

impl Default for CaFile {
    fn default() -> Self {
        CaFile {
            format: 1,
            system_enabled: true,
            custom_enabled: true,
            system_update: None,
            custom_pem: Vec::new(),
        }
    }
}

fn to_entries(certs: Vec<CertificateDer<'static>>, what: &str) -> Result<Vec<CaEntry>> {
    certs
        .into_iter()
        .enumerate()
        .map(|(i, der)| {
            Ok(CaEntry {
                index: i + 1,
                info: CertInfo::from_der(&der, &format!("{what}, certificate {}", i + 1))?,
                der,
            })
        })
        .collect()
}

impl Store {
    fn ca_file(&self) -> Result<CaFile> {
        let path = self.path().join(CA_FILE);
        match fs::read_to_string(&path) {
            Ok(t) => serde_json::from_str(&t).map_err(|e| Error::Corrupt {
                path,
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(CaFile::default()),
            Err(e) => Err(Error::io("cannot read", &path, e)),
        }
    }

    fn save_ca_file(&self, f: &CaFile) -> Result<()> {
        self.check_writable()?;
        let json = serde_json::to_vec_pretty(f)
            .map_err(|e| Error::Crypto(format!("cannot serialise CA lists: {e}")))?;
        write_atomic(&self.path().join(CA_FILE), &json, FILE_MODE)
    }

    /// One CA list with its state and certificates.
    pub fn ca_list(&self, kind: CaListKind) -> Result<CaList> {
        let f = self.ca_file()?;
        let path = self.path().join(CA_FILE).display().to_string();
        match kind {
            CaListKind::System => {
                let (certs, source) = match &f.system_update {
                    None => (
                        webpki_root_certs::TLS_SERVER_ROOT_CERTS.to_vec(),
                        "Mozilla root set shipped with portcullis (webpki-root-certs)".to_owned(),
                    ),
                    Some(u) => (
                        crate::pem::parse_certs(u.certs_pem.as_bytes(), &path)?,
                        format!(
                            "updated from {} on {}",
                            u.source,
                            Timestamp { unix: u.updated }
                        ),
                    ),
                };
                Ok(CaList {
                    kind,
                    enabled: f.system_enabled,
                    source,
                    certs: to_entries(certs, &path)?,
                })
            }
            CaListKind::Custom => {
                let mut certs = Vec::new();
                for pem in &f.custom_pem {
                    certs.extend(crate::pem::parse_certs(pem.as_bytes(), &path)?);
                }
                Ok(CaList {
                    kind,
                    enabled: f.custom_enabled,
                    source: "imported by the operator".into(),
                    certs: to_entries(certs, &path)?,
                })
            }
        }
    }

    /// Enable or disable a list.
    pub fn ca_set_enabled(&self, kind: CaListKind, enabled: bool) -> Result<()> {
        let mut f = self.ca_file()?;
        match kind {
            CaListKind::System => f.system_enabled = enabled,
            CaListKind::Custom => f.custom_enabled = enabled,
        }
        self.save_ca_file(&f)
    }

    /// Add the CA certificates of a PEM (or DER) file to the custom list.
    pub fn ca_import_custom(&self, input: &[u8], what: &str) -> Result<CaImportReport> {
        let certs = crate::pem::parse_certs(input, what)?;
        let mut f = self.ca_file()?;
        let mut present: HashSet<String> = self
            .ca_list(CaListKind::Custom)?
            .certs
            .into_iter()
            .map(|c| c.info.sha256)
            .collect();
        let now = Timestamp::now();
        let mut report = CaImportReport {
            added: Vec::new(),
            already_present: 0,
            warnings: Vec::new(),
        };
        for (i, der) in certs.into_iter().enumerate() {
            let info = CertInfo::from_der(&der, &format!("{what}, certificate {}", i + 1))?;
            if !present.insert(info.sha256.clone()) {
                report.already_present += 1;
                continue;
            }
            if !info.is_ca {
                report.warnings.push(format!(
                    "{} is not a CA certificate (no basicConstraints CA flag); peers' chains cannot be verified against it",
                    info.label()
                ));
            }
            if now > info.not_after {
                report
                    .warnings
                    .push(format!("{} expired on {}", info.label(), info.not_after));
            }
            f.custom_pem.push(crate::pem::encode("CERTIFICATE", &der));
            report.added.push(info);
        }
        self.save_ca_file(&f)?;
        Ok(report)
    }

    /// Delete one certificate of the custom list, chosen by its index in
    /// `ca list custom` or by (a unique prefix of at least 8 hex digits of)
    /// its SHA-256 fingerprint.
    pub fn ca_delete_custom(&self, selector: &str) -> Result<CertInfo> {
        let list = self.ca_list(CaListKind::Custom)?;
        let wanted = normalise(selector);
        let matches: Vec<&CaEntry> = if let Ok(index) = selector.trim().parse::<usize>() {
            list.certs.iter().filter(|c| c.index == index).collect()
        } else if wanted.len() >= 8 && wanted.chars().all(|c| c.is_ascii_hexdigit()) {
            list.certs
                .iter()
                .filter(|c| normalise(&c.info.sha256).starts_with(&wanted))
                .collect()
        } else {
            return Err(Error::InvalidRequest(format!(
                "{selector:?} is neither an index from `ca list custom` nor a SHA-256 fingerprint (at least 8 hex digits)"
            )));
        };
        let victim = match matches.as_slice() {
            [one] => (*one).clone(),
            [] => return Err(Error::NoSuchCa(selector.to_owned())),
            _ => {
                return Err(Error::InvalidRequest(format!(
                    "{selector:?} matches {} certificates; give more digits of the fingerprint",
                    matches.len()
                )));
            }
        };
        let mut f = self.ca_file()?;
        f.custom_pem = list
            .certs
            .iter()
            .filter(|c| c.index != victim.index)
            .map(|c| crate::pem::encode("CERTIFICATE", &c.der))
            .collect();
        self.save_ca_file(&f)?;
        Ok(victim.info)
    }

    /// Replace the system list with the certificates of a PEM bundle (for
    /// example a newer Mozilla bundle). Returns how many it holds.
    pub fn ca_update_system(&self, input: &[u8], what: &str) -> Result<usize> {
        let certs = crate::pem::parse_certs(input, what)?;
        let count = to_entries(certs.clone(), what)?.len();
        let mut f = self.ca_file()?;
        f.system_update = Some(SystemUpdate {
            updated: Timestamp::now().unix,
            source: what.to_owned(),
            certs_pem: crate::pem::encode_certs(certs.iter()),
        });
        self.save_ca_file(&f)?;
        Ok(count)
    }

    /// Go back to the system list shipped with the binary.
    pub fn ca_reset_system(&self) -> Result<()> {
        let mut f = self.ca_file()?;
        f.system_update = None;
        self.save_ca_file(&f)
    }

    /// A list as a PEM text file, each certificate preceded by its subject.
    pub fn ca_export(&self, kind: CaListKind) -> Result<String> {
        let list = self.ca_list(kind)?;
        let mut out = String::new();
        for c in &list.certs {
            out.push_str(&format!(
                "# {}\n# SHA-256 {}\n",
                c.info.subject, c.info.sha256
            ));
            out.push_str(&crate::pem::encode("CERTIFICATE", &c.der));
        }
        Ok(out)
    }

    /// The certificates of the enabled lists: what peers are verified against.
    pub fn trusted_cas(&self) -> Result<Vec<CertificateDer<'static>>> {
        let mut out = Vec::new();
        for kind in [CaListKind::System, CaListKind::Custom] {
            let list = self.ca_list(kind)?;
            if list.enabled {
                out.extend(list.certs.into_iter().map(|c| c.der));
            }
        }
        Ok(out)
    }

    /// DER subject names of every CA in either list (enabled or not): a chain
    /// that ends below one of them is complete.
    pub(crate) fn known_ca_subjects(&self) -> Result<HashSet<Vec<u8>>> {
        let mut out = HashSet::new();
        for kind in [CaListKind::System, CaListKind::Custom] {
            for c in self.ca_list(kind)?.certs {
                out.insert(c.info.subject_der);
            }
        }
        Ok(out)
    }
}
