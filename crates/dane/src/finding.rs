//! What DNS answers mean for a delivery, in the terms a delivery policy
//! needs, without any resolver: the DNSSEC status of an answer
//! ([`DnssecStatus`]) and what a hop's TLSA lookup means under RFC 7672 §2.2
//! ([`TlsaFinding`]). It has no I/O and no feature gate, so an embedder that
//! does its own DNS (a stub trusting a local validator's AD bit, say)
//! classifies its answers exactly as this crate's resolver does, and maps
//! the result one-to-one onto its policy's own type.

use std::fmt;

use crate::set::TlsaSet;
use crate::tlsa::{TlsaRecord, Unusable};

/// The DNSSEC status of one answer (RFC 4035 §4.3), flattened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DnssecStatus {
    /// Validated from a trust anchor.
    Secure,
    /// Provably unsigned (no DS on the path).
    Insecure,
    /// Outside every configured trust anchor's tree: nothing says whether it
    /// should be signed (RFC 4035 §4.3). Treat as insecure.
    Indeterminate,
    /// Validation failed: forged data or a broken zone.
    Bogus,
    /// No answer could be obtained (timeout, SERVFAIL, refused).
    LookupFailed,
}

impl DnssecStatus {
    /// Secure, nothing else.
    pub fn is_secure(self) -> bool {
        self == Self::Secure
    }
}

impl fmt::Display for DnssecStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Secure => "secure",
            Self::Insecure => "insecure",
            Self::Indeterminate => "outside the trust anchors (insecure)",
            Self::Bogus => "bogus",
            Self::LookupFailed => "lookup failed",
        })
    }
}

/// What the TLSA lookup of one SMTP server means for the hop (RFC 7672
/// §2.2), ready for a policy: one variant per outcome a policy must treat
/// differently.
///
/// ```
/// use portcullis_dane::{DnssecStatus, TlsaFinding, TlsaRecord, TlsaSet};
///
/// let set: TlsaSet = ["3 1 1 00".parse::<TlsaRecord>().unwrap()].into_iter().collect();
/// // A secure RRset whose only record has a bad digest length: TLS is still
/// // mandatory, without authentication.
/// let finding = TlsaFinding::classify(DnssecStatus::Secure, set.clone(), "");
/// assert!(matches!(finding, TlsaFinding::SecureAllUnusable { records: 1, .. }));
/// assert_eq!(
///     finding.to_string(),
///     "secure, 1 record(s), none usable: 3 1 1 00 (digest is 1 bytes, the matching type needs 32)"
/// );
/// // The same records in an unsigned zone do not count.
/// let finding = TlsaFinding::classify(DnssecStatus::Insecure, set, "");
/// assert!(matches!(finding, TlsaFinding::Insecure { records: true, .. }));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsaFinding {
    /// A secure RRset with at least one usable record; only the usable
    /// records are kept. Authenticate the peer with them.
    SecureUsable(TlsaSet),
    /// A secure RRset in which no record is usable (RFC 7672 §2.1.1): TLS is
    /// mandatory, without authentication.
    SecureAllUnusable {
        /// How many records the RRset had.
        records: usize,
        /// Each record with why it cannot be used.
        unusable: Vec<(TlsaRecord, Unusable)>,
    },
    /// DANE does not apply: the records are proven absent, or they exist
    /// but are not secure.
    Insecure {
        /// The status of the answer (secure for a validated denial).
        status: DnssecStatus,
        /// Whether records were present (and ignored).
        records: bool,
    },
    /// DNSSEC validation failed: never deliver on the strength of it, and
    /// never treat it as "no TLSA".
    Bogus {
        /// What failed, for the log.
        detail: String,
    },
    /// No answer (timeout, SERVFAIL): retry later, not "no TLSA".
    Failed {
        /// What failed, for the log.
        detail: String,
    },
}

impl TlsaFinding {
    /// Classifies a TLSA answer: its DNSSEC `status`, the RRset (empty when
    /// no records exist) and, for bogus or failed answers, what went wrong.
    /// PKIX usages (0, 1) count as unusable, as RFC 7672 §3.1.3 says for SMTP.
    pub fn classify(status: DnssecStatus, set: TlsaSet, detail: &str) -> Self {
        match status {
            DnssecStatus::Secure if set.is_empty() => Self::Insecure {
                status,
                records: false,
            },
            DnssecStatus::Secure => {
                let usable: Vec<_> = set.usable(false).into_iter().cloned().collect();
                if usable.is_empty() {
                    Self::SecureAllUnusable {
                        records: set.records().len(),
                        unusable: set
                            .classify(false)
                            .into_iter()
                            .filter_map(|(r, why)| why.map(|w| (r.clone(), w)))
                            .collect(),
                    }
                } else {
                    Self::SecureUsable(TlsaSet::new(usable))
                }
            }
            DnssecStatus::Insecure | DnssecStatus::Indeterminate => Self::Insecure {
                status,
                records: !set.is_empty(),
            },
            DnssecStatus::Bogus => Self::Bogus {
                detail: detail.to_owned(),
            },
            DnssecStatus::LookupFailed => Self::Failed {
                detail: detail.to_owned(),
            },
        }
    }
}

impl fmt::Display for TlsaFinding {
    /// One phrase for the mail log: `secure usable: 3 1 1 …`, `secure, 2
    /// record(s), none usable`, `no records (secure denial)`, …
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SecureUsable(set) => {
                f.write_str("secure usable: ")?;
                for (i, r) in set.records().iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "{r}")?;
                }
                Ok(())
            }
            Self::SecureAllUnusable { records, unusable } => {
                write!(f, "secure, {records} record(s), none usable")?;
                for (i, (r, why)) in unusable.iter().enumerate() {
                    let text = r.to_string();
                    let short = if text.len() > 60 {
                        format!("{}…", text.get(..50).unwrap_or(&text))
                    } else {
                        text
                    };
                    let sep = if i == 0 { ": " } else { "; " };
                    write!(f, "{sep}{short} ({why})")?;
                }
                Ok(())
            }
            Self::Insecure {
                status: DnssecStatus::Secure,
                ..
            } => f.write_str("no records (secure denial)"),
            Self::Insecure {
                status,
                records: true,
            } => write!(f, "records {status} (ignored)"),
            Self::Insecure {
                status,
                records: false,
            } => write!(f, "no records ({status})"),
            Self::Bogus { detail } => write!(f, "bogus: {detail}"),
            Self::Failed { detail } => write!(f, "lookup failed: {detail}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TlsaRecord;

    fn set(records: &[&str]) -> TlsaSet {
        records
            .iter()
            .map(|r| r.parse::<TlsaRecord>().unwrap())
            .collect()
    }

    #[test]
    fn every_status_has_one_meaning() {
        let good = format!("3 1 1 {}", "ab".repeat(32));
        let pkix = format!("1 1 1 {}", "cd".repeat(32));
        let both = set(&[&good, &pkix]);
        match TlsaFinding::classify(DnssecStatus::Secure, both.clone(), "") {
            TlsaFinding::SecureUsable(s) => {
                assert_eq!(s.records().len(), 1, "PKIX usages are not usable in SMTP");
                assert_eq!(s.records()[0].to_string(), good);
            }
            other => panic!("{other:?}"),
        }
        let finding = TlsaFinding::classify(DnssecStatus::Secure, set(&[&pkix, "3 1 1 00"]), "");
        assert!(
            matches!(&finding, TlsaFinding::SecureAllUnusable { records: 2, unusable } if unusable.len() == 2),
            "{finding:?}"
        );
        let text = finding.to_string();
        assert!(
            text.starts_with("secure, 2 record(s), none usable: 1 1 1 cdcd")
                && text.contains(
                    "(PKIX-TA/PKIX-EE usages are not used for SMTP (RFC 7672 section 3.1.3))"
                )
                && text.ends_with("; 3 1 1 00 (digest is 1 bytes, the matching type needs 32)"),
            "{text}"
        );
        assert_eq!(
            TlsaFinding::classify(DnssecStatus::Secure, TlsaSet::default(), "").to_string(),
            "no records (secure denial)"
        );
        for status in [DnssecStatus::Insecure, DnssecStatus::Indeterminate] {
            let f = TlsaFinding::classify(status, both.clone(), "");
            assert_eq!(
                f,
                TlsaFinding::Insecure {
                    status,
                    records: true
                }
            );
            assert!(f.to_string().ends_with("(ignored)"), "{f}");
        }
        assert_eq!(
            TlsaFinding::classify(DnssecStatus::Bogus, both.clone(), "bad sig").to_string(),
            "bogus: bad sig"
        );
        assert_eq!(
            TlsaFinding::classify(DnssecStatus::LookupFailed, both, "timeout").to_string(),
            "lookup failed: timeout"
        );
    }
}
