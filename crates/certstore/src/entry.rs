//! One named entry of the store: its key, its chain (leaf first), the
//! pending CSR state between "send the CSR to a CA" and "install what the CA
//! returned", and the next key of a DANE rollover (staged, not served, until
//! its TLSA record has been seen in DNS long enough). Also the read-only view
//! `show`/`list` print, with warnings.

use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::info::{CertInfo, KeyDescription, Timestamp, describe_spki};
use crate::key::PrivateKey;

/// Entry name of the generated demonstration certificate.
pub const DEMO_ENTRY: &str = "demo";

/// A CSR that was handed out and not yet answered.
#[derive(Debug, Clone)]
pub struct Pending {
    /// When the CSR was made.
    pub created: Timestamp,
    /// The CSR (PEM), so it can be downloaded again.
    pub csr_pem: String,
    /// A new key made for a renewal; `None` when the CSR is for the current key.
    pub new_key: Option<PrivateKey>,
}

/// A loaded entry.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its name in the store.
    pub name: String,
    /// The built-in demonstration certificate (for testing only).
    pub demo: bool,
    /// Creation time.
    pub created: Timestamp,
    /// Last change.
    pub updated: Timestamp,
    /// The private key of the leaf certificate.
    pub key: PrivateKey,
    /// Leaf first, then intermediates.
    pub chain: Vec<CertificateDer<'static>>,
    /// Outstanding CSR.
    pub pending: Option<Pending>,
    /// The next key of a DANE key rollover, staged beside the served one.
    pub next: Option<NextKey>,
}

/// The next key of a two-step DANE rollover (`portcullis dane rollover`):
/// it and its certificate are kept beside the served key and chain, and
/// take their place only once the next key's TLSA record has been seen,
/// DNSSEC-validated, for at least twice its TTL.
#[derive(Debug, Clone)]
pub struct NextKey {
    /// When the rollover started.
    pub created: Timestamp,
    /// The next key.
    pub key: PrivateKey,
    /// Its certificate chain, leaf first; empty until it is installed.
    pub chain: Vec<CertificateDer<'static>>,
    /// Since when the next key's TLSA record has been seen without a break
    /// (`None`: not seen yet, or a lookup since did not show it).
    pub tlsa_seen_since: Option<Timestamp>,
}

/// Severity-free warning shown with an entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// Machine-readable kind: `expired`, `expiring`, `not-yet-valid`,
    /// `self-signed`, `demo`, `chain`, `pending-csr`, `untrusted`.
    pub kind: &'static str,
    /// What to tell the operator.
    pub message: String,
}

/// What `show`/`list` print about an entry.
#[derive(Debug, Clone, Serialize)]
pub struct EntryView {
    /// Entry name.
    pub name: String,
    /// The demonstration certificate.
    pub demo: bool,
    /// Creation time.
    pub created: Timestamp,
    /// Last change.
    pub updated: Timestamp,
    /// Key of the entry.
    pub key: KeyDescription,
    /// SHA-256 of the key's SubjectPublicKeyInfo.
    pub key_spki_sha256: String,
    /// The chain, leaf first.
    pub chain: Vec<CertInfo>,
    /// Outstanding CSR, if any.
    pub pending: Option<PendingView>,
    /// A DANE rollover under way, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<NextKeyView>,
    /// Warnings (empty when all is well).
    pub warnings: Vec<Warning>,
}

/// The outstanding CSR in a view.
#[derive(Debug, Clone, Serialize)]
pub struct PendingView {
    /// When it was made.
    pub created: Timestamp,
    /// Whether it is for a new key (renewal with key rollover).
    pub new_key: bool,
    /// The CSR in PEM.
    pub csr_pem: String,
}

/// The staged next key in a view.
#[derive(Debug, Clone, Serialize)]
pub struct NextKeyView {
    /// When the rollover started.
    pub created: Timestamp,
    /// SHA-256 of the next key's SubjectPublicKeyInfo (the `3 1 1` data).
    pub key_spki_sha256: String,
    /// Its certificate, once installed.
    pub leaf: Option<CertInfo>,
    /// Since when its TLSA record has been seen in DNS.
    pub tlsa_seen_since: Option<Timestamp>,
}

impl EntryView {
    /// The leaf certificate's facts.
    pub fn leaf(&self) -> Option<&CertInfo> {
        self.chain.first()
    }
}

impl Entry {
    /// Build the view, with warnings for `now` and an expiry horizon of `warn_days`.
    pub fn view(&self, now: Timestamp, warn_days: u32) -> Result<EntryView> {
        let chain = self
            .chain
            .iter()
            .enumerate()
            .map(|(i, c)| {
                CertInfo::from_der(
                    c,
                    &format!("certificate {} of entry {:?}", i + 1, self.name),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let mut warnings = Vec::new();
        if self.demo {
            warnings.push(Warning {
                kind: "demo",
                message: "this is the built-in demonstration certificate: for testing only, peers cannot verify it".into(),
            });
        }
        for (i, info) in chain.iter().enumerate() {
            let what = if i == 0 {
                "certificate".to_owned()
            } else {
                format!("intermediate {}", info.label())
            };
            let days_left = now.days_until(info.not_after);
            if now > info.not_after {
                warnings.push(Warning {
                    kind: "expired",
                    message: format!("{what} expired on {}", info.not_after),
                });
            } else if now < info.not_before {
                warnings.push(Warning {
                    kind: "not-yet-valid",
                    message: format!("{what} is not valid before {}", info.not_before),
                });
            } else if days_left < i64::from(warn_days) {
                warnings.push(Warning {
                    kind: "expiring",
                    message: format!("{what} expires in {days_left} days, on {}", info.not_after),
                });
            }
        }
        if let Some(leaf) = chain.first()
            && leaf.self_signed
            && !self.demo
        {
            warnings.push(Warning {
                kind: "self-signed",
                message: "the certificate is self-signed: peers that verify certificates will reject it; send the CSR to a CA".into(),
            });
        }
        if let Some(p) = &self.pending {
            warnings.push(Warning {
                kind: "pending-csr",
                message: format!(
                    "a CSR made on {} is waiting for the signed certificate (`portcullis cert install-signed`)",
                    p.created
                ),
            });
        }
        let next = match &self.next {
            None => None,
            Some(n) => Some(NextKeyView {
                created: n.created,
                key_spki_sha256: n.key.spki_sha256(),
                leaf: n
                    .chain
                    .first()
                    .map(|c| CertInfo::from_der(c, &format!("next certificate of {:?}", self.name)))
                    .transpose()?,
                tlsa_seen_since: n.tlsa_seen_since,
            }),
        };
        if let Some(n) = &next {
            warnings.push(Warning {
                kind: "rollover",
                message: match (&n.leaf, n.tlsa_seen_since) {
                    (None, _) => "a DANE key rollover is waiting for the next key's certificate".into(),
                    (Some(_), None) => "a DANE key rollover is waiting for the next key's TLSA record to appear in DNS".into(),
                    (Some(_), Some(t)) => format!("a DANE key rollover: the next key's TLSA record has been seen since {t}"),
                },
            });
        }
        Ok(EntryView {
            name: self.name.clone(),
            demo: self.demo,
            created: self.created,
            updated: self.updated,
            key: describe_spki(self.key.spki_der()),
            key_spki_sha256: self.key.spki_sha256(),
            chain,
            pending: self.pending.as_ref().map(|p| PendingView {
                created: p.created,
                new_key: p.new_key.is_some(),
                csr_pem: p.csr_pem.clone(),
            }),
            next,
            warnings,
        })
    }
}

// ---- on-disk form -----------------------------------------------------------

/// Format version of entry files.
const ENTRY_FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
pub(crate) struct EntryFile {
    format: u32,
    name: String,
    demo: bool,
    created: i64,
    updated: i64,
    key_pem: String,
    chain_pem: String,
    pending: Option<PendingFile>,
    /// Absent in files written before rollovers existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    next: Option<NextFile>,
}

#[derive(Serialize, Deserialize)]
struct NextFile {
    created: i64,
    key_pem: String,
    chain_pem: String,
    tlsa_seen_since: Option<i64>,
}

#[derive(Serialize, Deserialize)]
struct PendingFile {
    created: i64,
    csr_pem: String,
    new_key_pem: Option<String>,
}

impl EntryFile {
    pub(crate) fn from_entry(e: &Entry) -> Self {
        EntryFile {
            format: ENTRY_FORMAT,
            name: e.name.clone(),
            demo: e.demo,
            created: e.created.unix,
            updated: e.updated.unix,
            key_pem: e.key.to_pem(),
            chain_pem: crate::pem::encode_certs(e.chain.iter()),
            pending: e.pending.as_ref().map(|p| PendingFile {
                created: p.created.unix,
                csr_pem: p.csr_pem.clone(),
                new_key_pem: p.new_key.as_ref().map(|k| k.to_pem()),
            }),
            next: e.next.as_ref().map(|n| NextFile {
                created: n.created.unix,
                key_pem: n.key.to_pem(),
                chain_pem: crate::pem::encode_certs(n.chain.iter()),
                tlsa_seen_since: n.tlsa_seen_since.map(|t| t.unix),
            }),
        }
    }

    pub(crate) fn into_entry(self, what: &str) -> Result<Entry> {
        if self.format != ENTRY_FORMAT {
            return Err(Error::bad_input(
                what,
                format!("unknown entry format {}", self.format),
            ));
        }
        let key = load_key(&self.key_pem, what)?;
        let chain = crate::pem::parse_certs(self.chain_pem.as_bytes(), what)?;
        let pending = match self.pending {
            None => None,
            Some(p) => Some(Pending {
                created: Timestamp { unix: p.created },
                csr_pem: p.csr_pem,
                new_key: p.new_key_pem.map(|k| load_key(&k, what)).transpose()?,
            }),
        };
        let next = match self.next {
            None => None,
            Some(n) => Some(NextKey {
                created: Timestamp { unix: n.created },
                key: load_key(&n.key_pem, what)?,
                chain: if n.chain_pem.trim().is_empty() {
                    Vec::new()
                } else {
                    crate::pem::parse_certs(n.chain_pem.as_bytes(), what)?
                },
                tlsa_seen_since: n.tlsa_seen_since.map(|unix| Timestamp { unix }),
            }),
        };
        Ok(Entry {
            name: self.name,
            demo: self.demo,
            created: Timestamp { unix: self.created },
            updated: Timestamp { unix: self.updated },
            key,
            chain,
            pending,
            next,
        })
    }
}

fn load_key(pem: &str, what: &str) -> Result<PrivateKey> {
    let parsed = crate::pem::parse(pem.as_bytes(), what)?;
    let key = parsed
        .keys
        .first()
        .ok_or_else(|| Error::bad_input(what, "no private key"))?;
    PrivateKey::from_der(key, what)
}
