//! The TLS facts that cross the STARTTLS boundary: the server's TLS mode,
//! what the driver reports once a handshake is done ([`TlsInfo`]), and the
//! client's typed [`TlsOutcome`] that delivery code acts on. No TLS library
//! is needed here: the driver fills these from whatever stack it uses.

use std::fmt;

use rustls_pki_types::CertificateDer;

/// How a server session treats STARTTLS (SPEC §1, the HAT's TLS setting).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TlsMode {
    /// STARTTLS is not offered.
    #[default]
    Off,
    /// STARTTLS is offered; plaintext sessions still work.
    Preferred,
    /// STARTTLS is offered and every command but EHLO, HELO, NOOP, STARTTLS
    /// and QUIT is refused with `530 5.7.0` until it succeeds (RFC 3207 §4).
    Required,
}

/// What a finished handshake established, reported by the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// Protocol version as Postfix and OpenSSL write it, e.g. `TLSv1.3`.
    pub protocol: String,
    /// Negotiated cipher suite by its IANA name, e.g. `TLS_AES_256_GCM_SHA384`.
    pub cipher: String,
    /// The peer's certificate chain, end entity first (empty when the peer
    /// sent none, as SMTP clients usually do).
    pub peer_certificates: Vec<CertificateDer<'static>>,
}

impl fmt::Display for TlsInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} with {} ({} peer certificate(s))",
            self.protocol,
            self.cipher,
            self.peer_certificates.len()
        )
    }
}

/// How STARTTLS went on a client connection. Every variant but
/// `Established` means the session is (still) in cleartext, or dead after a
/// failed handshake; what to do about it is the caller's policy.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsOutcome {
    /// TLS was not attempted: the caller chose not to (or has not yet).
    NotAttempted,
    /// The server refused EHLO; it does not speak ESMTP, so no STARTTLS.
    NoEsmtp,
    /// The EHLO reply did not list STARTTLS.
    StartTlsNotOffered,
    /// The server answered STARTTLS with this non-220 reply.
    StartTlsRefused(crate::Reply),
    /// The server said 220 but the handshake failed (the connection is
    /// unusable; retrying in cleartext needs a new connection).
    HandshakeFailed(String),
    /// TLS is up.
    Established(TlsInfo),
}

impl TlsOutcome {
    /// True only for `Established`.
    pub fn is_established(&self) -> bool {
        matches!(self, Self::Established(_))
    }
}

impl fmt::Display for TlsOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAttempted => f.write_str("TLS was not attempted"),
            Self::NoEsmtp => f.write_str(
                "the server does not speak ESMTP (EHLO refused), so STARTTLS is impossible",
            ),
            Self::StartTlsNotOffered => f.write_str("the server does not advertise STARTTLS"),
            Self::StartTlsRefused(r) => write!(
                f,
                "the server answered STARTTLS with {}",
                r.to_string().trim_end()
            ),
            Self::HandshakeFailed(e) => write!(f, "the TLS handshake failed: {e}"),
            Self::Established(info) => write!(f, "TLS established: {info}"),
        }
    }
}

impl std::str::FromStr for TlsMode {
    type Err = String;

    /// `off`, `preferred` or `required`, as in the listener configuration.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "off" => Ok(Self::Off),
            "preferred" => Ok(Self::Preferred),
            "required" => Ok(Self::Required),
            other => Err(format!(
                "unknown TLS mode {other:?}: expected off, preferred or required"
            )),
        }
    }
}
