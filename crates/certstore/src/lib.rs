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
//! Non-features: no ACME (a later issue), no private keys encrypted at rest
//! (the store directory is owner-only), no OCSP or CRL checking.
//!
//! # Example
//!
//! ```
//! use portcullis_certstore::{KeySpec, SelfSignedRequest, Store, TlsSettings};
//!
//! # fn main() -> Result<(), portcullis_certstore::Error> {
//! let dir = tempfile::tempdir().map_err(|e| portcullis_certstore::Error::InvalidRequest(e.to_string()))?;
//! let store = Store::open_or_create(dir.path().join("certs"))?;
//!
//! let mut req = SelfSignedRequest::new("mx1.example.com");
//! req.key = KeySpec::EcdsaP256;
//! req.country = Some("DE".into());
//! let view = store.create_self_signed("mx1", &req)?;
//! assert_eq!(view.leaf().and_then(|l| l.common_name.as_deref()), Some("mx1.example.com"));
//!
//! // The CSR to send to a CA; `install_signed` later takes what it returns.
//! let csr = store.make_csr("mx1", None)?;
//! assert!(csr.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
//!
//! // A rustls server configuration presenting the entry.
//! let _server = store.server_config("mx1", &TlsSettings::default())?;
//! # Ok(()) }
//! ```
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

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
mod names;
pub mod pem;
pub mod pkcs12;
mod store;
mod tls;
mod verify;

pub use calist::{CaEntry, CaImportReport, CaList, CaListKind};
pub use chain::{ChainProblem, OrderedChain};
pub use country::country_name;
pub use create::{MAX_DAYS, SelfSignedRequest};
pub use entry::{DEMO_ENTRY, Entry, EntryView, Pending, PendingView, Warning};
pub use error::{Error, Result};
pub use fingerprint::sha256_hex;
pub use info::{CertInfo, KeyDescription, Timestamp, describe_spki};
pub use key::{KeySpec, PrivateKey};
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
