//! The one error type of the crate. Variants group by who is at fault: the
//! operator's request, the input file, the store on disk, or the crypto/TLS
//! layer. Every message names what was wrong and where, for a mail operator.

use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the certificate store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // --- the operator's request -------------------------------------------
    /// An entry name that cannot be used as a store name.
    #[error(
        "invalid certificate name {name:?}: {reason} (use letters, digits, '.', '_' and '-', at most 64 characters)"
    )]
    InvalidName {
        /// The name given.
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A name that must be a fully qualified domain name is not one.
    #[error("{field} {value:?} is not a fully qualified domain name: {reason}")]
    NotFqdn {
        /// Which field (common name, subject alternative name, ...).
        field: &'static str,
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The country is not an ISO 3166-1 alpha-2 code.
    #[error("country {0:?} is not a two-letter ISO 3166 country code (for example DE, JP, US, GB)")]
    InvalidCountry(String),
    /// Any other invalid parameter of a request.
    #[error("{0}")]
    InvalidRequest(String),
    /// No entry of that name.
    #[error("no certificate named {0:?} in the store (see `portcullis cert list`)")]
    NoSuchEntry(String),
    /// An entry of that name exists and the operation would overwrite it.
    #[error("a certificate named {0:?} already exists; delete it first or choose another name")]
    EntryExists(String),
    /// No CA certificate matched a selector.
    #[error("no CA certificate in the custom list matches {0:?} (see `portcullis ca list custom`)")]
    NoSuchCa(String),

    // --- the input file -----------------------------------------------------
    /// Input that could not be parsed (PEM, DER, PKCS#12, key).
    #[error("{what}: {reason}")]
    BadInput {
        /// What was being read (usually a file name and its role).
        what: String,
        /// What was wrong with it.
        reason: String,
    },
    /// The PKCS#12 passphrase was wrong (or the file's integrity check failed).
    #[error("{what}: wrong passphrase (or the file is damaged: its integrity check failed)")]
    WrongPassphrase {
        /// What was being read.
        what: String,
    },
    /// A certificate was issued for a different key than the entry's.
    #[error(
        "the certificate for {subject} does not match the private key of {entry:?}: it was issued for another key (certificate key SPKI SHA-256 {cert_spki}, entry key SPKI SHA-256 {entry_spki}); was it signed from a CSR made by another server or an older CSR?"
    )]
    KeyMismatch {
        /// The entry.
        entry: String,
        /// Subject of the offered certificate.
        subject: String,
        /// SPKI fingerprint of the offered certificate.
        cert_spki: String,
        /// SPKI fingerprint(s) of the entry's key(s).
        entry_spki: String,
    },
    /// A certificate of the chain is expired or not yet valid.
    #[error("certificate {subject} is not valid now: {reason}")]
    NotValidNow {
        /// Subject of the certificate.
        subject: String,
        /// `expired on ...` or `not valid before ...`.
        reason: String,
    },

    // --- the store on disk ---------------------------------------------------
    /// The store directory does not exist.
    #[error(
        "certificate store {path} does not exist (create it with `portcullis cert create`, or pass --store)"
    )]
    StoreMissing {
        /// The directory.
        path: PathBuf,
    },
    /// The store is marked read-only by its permission bits.
    #[error(
        "certificate store {path} is read-only (directory mode {mode:o} has no owner write bit); nothing was changed"
    )]
    StoreReadOnly {
        /// The directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The path exists but is not a certificate store.
    #[error("{path} is not a Portcullis certificate store: {reason}")]
    NotAStore {
        /// The path.
        path: PathBuf,
        /// What is missing.
        reason: String,
    },
    /// A file of the store is unreadable or damaged.
    #[error("store file {path} is damaged: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An operating-system error on a path.
    #[error("{action} {path}: {source}")]
    Io {
        /// What we were doing (`cannot read`, `cannot write`...).
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    // --- crypto and TLS -------------------------------------------------------
    /// Key generation or signing failed.
    #[error("cryptographic operation failed: {0}")]
    Crypto(String),
    /// A rustls configuration could not be built.
    #[error("TLS configuration: {0}")]
    Tls(String),
}

impl Error {
    pub(crate) fn bad_input(what: &str, reason: impl Into<String>) -> Self {
        Error::BadInput {
            what: what.to_owned(),
            reason: reason.into(),
        }
    }

    pub(crate) fn io(action: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.to_owned(),
            source,
        }
    }
}

impl From<rcgen::Error> for Error {
    fn from(e: rcgen::Error) -> Self {
        Error::Crypto(e.to_string())
    }
}
