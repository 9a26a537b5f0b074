//! The one error type of the test kit: every fixture says what it was doing
//! when something failed, so a broken test names the missing package, the
//! port that did not open or the file that could not be written.

use std::time::Duration;

/// Why a fixture could not be set up or an expectation was not met in time.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// I/O while doing the named thing.
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    /// rcgen refused to build a certificate.
    #[error("generating a test certificate: {0}")]
    Cert(#[from] rcgen::Error),
    /// rustls refused a configuration.
    #[error("building a rustls configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// A TLSA record could not be computed.
    #[error("computing a TLSA record: {0}")]
    Tlsa(#[from] portcullis_dane::CertError),
    /// An external program (knotd, unbound, ldns-signzone, ...) failed.
    #[error(
        "{program} failed: {detail} (is the Debian package installed? see scripts/install-test-deps.sh)"
    )]
    Program {
        /// The program.
        program: String,
        /// Its exit status and stderr, or the spawn error.
        detail: String,
    },
    /// Something did not happen within the deadline.
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(Duration, String),
    /// Anything else, described.
    #[error("{0}")]
    Other(String),
}

impl Error {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |e| Error::Io(what, e)
    }
}
