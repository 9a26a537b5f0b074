//! DANE for SMTP: TLSA records, RFC 7671/7672 matching, the rustls server
//! certificate verifier ([`PeerVerifier`]: any certificate, PKIX with
//! reference identities, or DANE), TLSA generation, what a TLSA answer means
//! for a hop ([`TlsaFinding`]), and (feature `dns`, off by default; it brings
//! tokio and hickory) a DNSSEC-aware resolver for MX/address/TLSA lookups.
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
//! - a verified peer is a [`PeerVerified`] token only [`PeerVerifier`] makes,
//!   and a check that only reports is spelled [`danger::report_only`].
//!
//! Verifying a server's chain against its TLSA records, as a sending MTA does
//! after the handshake (and as `examples/dane-verify.rs` does):
//!
//! ```
//! use portcullis_dane::generate::tlsa_for_chain;
//! use portcullis_dane::pki_types::{CertificateDer, UnixTime};
//! use portcullis_dane::{match_chain, MatchOptions, ReferenceNames, TlsaRecord, TlsaSet, Verdict};
//! use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The MX presents [leaf, CA]; its operator publishes the CA key as "2 1 1".
//! let mut ca = CertificateParams::new(Vec::new())?;
//! ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
//! let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate()?)?;
//! let leaf = CertificateParams::new(vec!["mx.example.net".into()])?
//!     .signed_by(&KeyPair::generate()?, &ca)?;
//! let chain = vec![leaf.der().clone(), ca.der().clone()];
//! let record = tlsa_for_chain(&chain, 1, 2, 1, 1)?;
//! assert!(record.to_string().starts_with("2 1 1 "));
//!
//! // The set comes from a DNSSEC-validated lookup of _25._tcp.mx.example.net.
//! let set: TlsaSet = [record].into_iter().collect();
//! let check = |name: &str| {
//!     let names = ReferenceNames::new([name]);
//!     match_chain(&set, &chain, &names, UnixTime::now(), &MatchOptions::default())
//! };
//! let deliver = |verdict: &Verdict| match verdict {
//!     Verdict::Matched(_) => true,
//!     Verdict::NoRecords | Verdict::NoUsableRecords { .. } | Verdict::Failed(_) => false,
//!     // A verdict a later version may add: never send on a guess.
//!     _ => false,
//! };
//! assert_eq!(check("mx.example.net").matched().map(|m| m.depth()), Some(1));
//! assert!(deliver(&check("mx.example.net")));
//! // DANE-TA checks the name: the chain is not valid for another host.
//! assert!(matches!(check("mx.other.example"), Verdict::Failed(_)));
//!
//! // A set of records nobody can use still means "TLS mandatory".
//! let odd: TlsaSet = ["3 1 9 00".parse::<TlsaRecord>()?].into_iter().collect();
//! let names = ReferenceNames::new(["mx.example.net"]);
//! let verdict = match_chain(&odd, &chain, &names, UnixTime::now(), &MatchOptions::default());
//! assert!(matches!(verdict, Verdict::NoUsableRecords { .. }));
//! # Ok(()) }
//! ```
//!
//! Public enums that report outcomes (and the error types) are
//! `#[non_exhaustive]`; the TLSA field enums ([`Usage`], [`Selector`],
//! [`MatchingType`]) are not, since every octet already has a variant
//! (`Unassigned(n)` for values not yet assigned).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

/// The README's examples, compiled and run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
#[derive(Debug)]
pub struct ReadmeDoctests;

mod cert;
mod error;
mod finding;
mod hex;
mod matching;
mod names;
mod pkix;
mod set;
mod tlsa;
mod verifier;
mod words;

pub mod danger;
pub mod generate;

#[cfg(feature = "dns")]
pub mod dns;

pub use cert::certs_from_pem_or_der;
pub use error::{CertError, ParseError};
pub use finding::{DnssecStatus, TlsaFinding};
pub use matching::{DaneMatch, MatchFailure, MatchOptions, Verdict, match_chain};
pub use names::{ReferenceId, ReferenceNames};
pub use pkix::PkixRoots;
/// Re-exported so callers name certificates and time with the same types.
pub use rustls_pki_types as pki_types;
pub use set::TlsaSet;
pub use tlsa::{MatchingType, Selector, TlsaRecord, Unusable, Usage};
pub use verifier::{
    AuthFailure, CheckKind, Method, PeerAuthentication, PeerVerified, PeerVerifier, Rejected,
};
