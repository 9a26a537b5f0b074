//! Certificates, keys, CSRs, PKCS#12/PEM and CA lists for an SMTP gateway, and
//! the rustls configurations built from them.
//!
//! A mail operator manages every certificate the gateway presents and every CA
//! it trusts through this crate; an MTA author embeds it to get correct rustls
//! configurations without writing PKI code. It does no network I/O and starts
//! no async runtime.
//!
//! ```text
//!  create (self-signed, new key) ──► csr ──► CA ──► install-signed (+ intermediates)
//!        │                                               │ key must match, chain ordered,
//!        ▼                                               ▼ missing/duplicate/unrelated reported
//!  Store (directory, atomic files) ──► server_config(name) / root_store() / client_certificate(name)
//!        ▲
//!  import PEM / PKCS#12          export PEM / PKCS#12
//! ```
//!
//! The on-disk layout and its crash safety are described in [`Store`]'s module
//! (`store.rs`): each entry is one file, replaced atomically, mode 0600.
//!
//! ACME support is the store's half only: account credentials and order CSRs
//! ([`OrderKey`]); the protocol itself runs in the gateway (`portcullis-mta`),
//! which brings the async runtime. Key rollovers for DANE stage a next key
//! beside the served one ([`Store::begin_rollover`]); [`LiveCertificate`]
//! presents whatever the store holds now, without a restart.
//!
//! Non-features: no private keys encrypted at rest (the store directory is
//! owner-only), no OCSP or CRL checking.
//!
//! # Example
//!
//! A key and CSR, the CA's answer installed with the CA trusted, and the
//! rustls configurations built from the store (`examples/certstore-config.rs`
//! runs the same and proves them with a handshake):
//!
//! ```
//! use portcullis_certstore::{KeySpec, SelfSignedRequest, Store, TlsSettings};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let store = Store::open_or_create(dir.path().join("certs"))?;
//!
//! let mut req = SelfSignedRequest::new("mx1.example.com");
//! req.key = KeySpec::EcdsaP256;
//! req.country = Some("DE".into());
//! let view = store.create_self_signed("mx1", &req)?;
//! assert_eq!(view.leaf().and_then(|l| l.common_name.as_deref()), Some("mx1.example.com"));
//!
//! // The CSR goes to a CA (here one made with rcgen); its answer is installed.
//! let csr = store.make_csr("mx1", None)?;
//! let mut ca = rcgen::CertificateParams::new(Vec::new())?;
//! ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
//! let ca = rcgen::CertifiedIssuer::self_signed(ca, rcgen::KeyPair::generate()?)?;
//! let signed = rcgen::CertificateSigningRequestParams::from_pem(&csr)?.signed_by(&ca)?;
//! store.ca_import_custom(ca.pem().as_bytes(), "ca.pem")?;
//! let report = store.install_signed("mx1", signed.pem().as_bytes(), "mx1.crt")?;
//! assert!(report.problems.is_empty(), "{:?}", report.problems);
//!
//! // The server configuration presenting the entry, and the enabled CA
//! // lists (system and custom) as a root store for whatever verifies peers
//! // (the `dane` crate's `PeerVerifier`, or rustls' own).
//! let _server = store.server_config("mx1", &TlsSettings::default())?;
//! let roots = store.root_store()?;
//! assert!(!roots.is_empty());
//! # Ok(()) }
//! ```
//!
//! [`Error`] and the enums that may grow ([`KeySpec`], [`TlsVersion`],
//! [`ChainProblem`]) are `#[non_exhaustive]`.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

/// The README's examples, compiled and run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
#[derive(Debug)]
pub struct ReadmeDoctests;

mod acme;
mod atomic;
mod calist;
mod chain;
mod country;
mod create;
mod entry;
mod error;
mod fingerprint;
mod info;
mod key;
mod live;
mod names;
pub mod pem;
pub mod pkcs12;
mod rollover;
mod store;
mod tls;
mod verify;

pub use acme::OrderKey;
pub use calist::{CaEntry, CaImportReport, CaList, CaListKind};
pub use chain::{ChainProblem, OrderedChain};
pub use country::country_name;
pub use create::{MAX_DAYS, SelfSignedRequest};
pub use entry::{
    DEMO_ENTRY, Entry, EntryView, NextKey, NextKeyView, Pending, PendingView, Warning,
};
pub use error::{Error, Result};
pub use fingerprint::sha256_hex;
pub use info::{CertInfo, KeyDescription, Timestamp, describe_spki};
pub use key::{KeySpec, PrivateKey};
pub use live::LiveCertificate;
pub use names::{check_entry_name, check_fqdn};
pub use store::{ExpiryNotice, ExpirySeverity, InstallReport, Store};
pub use tls::{TlsSettings, TlsVersion};

/// Put `others` behind `leaf` in issuer order, reporting duplicate, unrelated
/// and missing intermediates (none counts as trusted: the store passes its CA
/// lists when it installs a chain).
pub fn order_chain(
    leaf: CertificateDer<'static>,
    others: Vec<CertificateDer<'static>>,
) -> Result<OrderedChain> {
    chain::order(leaf, others, &|_| false)
}

/// Re-exported so users can name the certificate type of the API.
pub use rustls_pki_types::CertificateDer;
