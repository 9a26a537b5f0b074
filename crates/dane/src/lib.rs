//! DANE for SMTP: TLSA records, RFC 7671/7672 matching, a rustls server
//! certificate verifier that authenticates by TLSA records, TLSA generation,
//! what a TLSA answer means for a hop ([`TlsaFinding`]), and (feature `dns`,
//! off by default; it brings tokio and hickory) a DNSSEC-aware resolver for
//! MX/address/TLSA lookups.
//!
//! The matching core ([`match_chain`]) is a pure function with no I/O and no
//! clock: the caller passes the time. Everything that reads untrusted input
//! (TLSA text, RDATA, certificates) returns errors or "unusable" verdicts,
//! never panics.
//!
//! Distinctions this crate keeps on purpose, because real deployments break
//! on them:
//! - an empty TLSA set ([`Verdict::NoRecords`]) is not an all-unusable set
//!   ([`Verdict::NoUsableRecords`]: TLS mandatory, no authentication);
//! - a bogus or failed DNS answer is never "no TLSA" ([`TlsaFinding`]);
//! - a verified peer is a [`DaneVerified`] token only [`DaneVerifier`] makes.
//!
//! ```
//! use portcullis_dane::{match_chain, MatchOptions, ReferenceNames, TlsaSet, TlsaRecord, Verdict};
//! use portcullis_dane::generate::tlsa_for_chain;
//! use rustls_pki_types::{CertificateDer, UnixTime};
//!
//! // A self-signed server certificate, as an operator would publish `3 1 1` for.
//! let key = rcgen::KeyPair::generate().unwrap();
//! let cert = rcgen::CertificateParams::new(vec!["mx.example.com".into()])
//!     .unwrap()
//!     .self_signed(&key)
//!     .unwrap();
//! let chain = vec![CertificateDer::from(cert.der().to_vec())];
//!
//! let record = tlsa_for_chain(&chain, 0, 3, 1, 1).unwrap();
//! assert!(record.to_string().starts_with("3 1 1 "));
//!
//! let set: TlsaSet = [record].into_iter().collect();
//! let names = ReferenceNames::new(["mx.example.com"]);
//! let verdict = match_chain(&set, &chain, &names, UnixTime::now(), &MatchOptions::default());
//! assert_eq!(verdict.matched().map(|m| m.depth()), Some(0));
//!
//! // A set of records nobody can use still means "TLS mandatory".
//! let odd: TlsaSet = ["3 1 9 00".parse::<TlsaRecord>().unwrap()].into_iter().collect();
//! let verdict = match_chain(&odd, &chain, &names, UnixTime::now(), &MatchOptions::default());
//! assert!(matches!(verdict, Verdict::NoUsableRecords { .. }));
//! ```
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod cert;
mod error;
mod finding;
mod hex;
mod matching;
mod names;
mod set;
mod tlsa;
mod verifier;

pub mod generate;

#[cfg(feature = "dns")]
pub mod dns;

pub use cert::certs_from_pem_or_der;
pub use error::{CertError, ParseError};
pub use finding::{DnssecStatus, TlsaFinding};
pub use matching::{DaneMatch, MatchFailure, MatchOptions, Verdict, match_chain};
pub use names::ReferenceNames;
/// Re-exported so callers name certificates and time with the same types.
pub use rustls_pki_types as pki_types;
pub use set::TlsaSet;
pub use tlsa::{MatchingType, Selector, TlsaRecord, Unusable, Usage};
pub use verifier::{DaneVerified, DaneVerifier};
