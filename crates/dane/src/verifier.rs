//! The one server certificate verifier: a rustls [`ServerCertVerifier`]
//! that authenticates an SMTP server as the caller's policy demands — any
//! certificate, PKIX with the caller's reference identities (not the SNI
//! name), or DANE with a TLSA set (RFC 7672) — and checks the handshake
//! signatures with the caller's crypto provider.
//!
//! One verifier serves one connection. It records what it found, so a log
//! can say which name or TLSA record authenticated the peer, or which check
//! failed. A verified peer is a [`PeerVerified`] token that only this
//! verifier makes, and only once the server proved, by its handshake
//! signature, that it holds the certificate's key (a certificate is public;
//! a replayed one authenticates nobody). By default a failed check fails
//! the handshake; [`danger::report_only`](crate::danger::report_only) makes
//! it only recorded, for opportunistic TLS. This module holds the one
//! `dangerous()` call of the workspace ([`PeerVerifier::client_config`]).

use std::fmt;
use std::sync::{Arc, Mutex};

use rustls::client::WantsClientCert;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{
    CertificateError, ClientConfig, ConfigBuilder, DigitallySignedStruct, Error, OtherError,
    SignatureScheme, SupportedProtocolVersion,
};

use crate::matching::{DaneMatch, MatchFailure, MatchOptions, Verdict, match_chain};
use crate::names::{ReferenceId, ReferenceNames};
use crate::pkix::PkixRoots;
use crate::set::TlsaSet;

/// Proof that a server certificate was authenticated and that the server
/// holds its key. Only [`PeerVerifier`] creates one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerVerified {
    method: Method,
    leaf: CertificateDer<'static>,
}

/// How a [`PeerVerified`] peer was authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Method {
    /// PKIX: the chain ends at an enabled CA and the certificate carries
    /// this reference identity.
    Pkix {
        /// The reference identity that matched (`mx.example.com`, `.example.com`).
        reference: String,
        /// Set when the match went through the subject CN because the
        /// certificate has no subjectAltName dNSName.
        subject_cn: Option<String>,
    },
    /// DANE: this TLSA record matched at this depth.
    Dane(DaneMatch),
}

impl PeerVerified {
    /// How the peer was authenticated.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The server's end-entity certificate that was authenticated.
    pub fn end_entity(&self) -> &CertificateDer<'static> {
        &self.leaf
    }
}

impl fmt::Display for PeerVerified {
    /// `pkix name=mx.example.com`, `dane record 3 1 1 … at depth 0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.method {
            Method::Pkix {
                reference,
                subject_cn: None,
            } => write!(f, "pkix name={reference}"),
            Method::Pkix {
                reference,
                subject_cn: Some(cn),
            } => write!(
                f,
                "pkix name={reference} (subject CN {cn}, no subjectAltName)"
            ),
            Method::Dane(m) => write!(f, "dane record {} at depth {}", m.record(), m.depth()),
        }
    }
}

/// Why authentication failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthFailure {
    /// The PKIX check failed (chain, dates, names, no CA list), in words.
    Pkix(String),
    /// The TLSA set did not authenticate the chain.
    Dane(Verdict),
    /// A check passed, but the server's handshake signature does not verify
    /// with the certificate's key.
    Signature,
}

impl fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthFailure::Pkix(why) => f.write_str(why),
            AuthFailure::Dane(verdict) => write!(f, "DANE: {verdict}"),
            AuthFailure::Signature => f.write_str(
                "the server's handshake signature does not verify with its certificate's key",
            ),
        }
    }
}

impl std::error::Error for AuthFailure {}

/// What the verifier found on the last handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerAuthentication {
    /// No check was asked for ([`PeerVerifier::any_certificate`]), or no
    /// certificate was seen yet.
    NotChecked,
    /// The peer passed.
    Verified(PeerVerified),
    /// The peer failed (the handshake failed too, unless report-only).
    Failed(AuthFailure),
}

/// The check a verifier makes, for log lines (`auth=pkix`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CheckKind {
    /// Any certificate.
    None,
    /// PKIX with reference identities.
    Pkix,
    /// DANE with a TLSA set.
    Dane,
}

impl CheckKind {
    /// `none`, `pkix` or `dane`.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckKind::None => "none",
            CheckKind::Pkix => "pkix",
            CheckKind::Dane => "dane",
        }
    }
}

enum Check {
    Any,
    Pkix(PkixRoots, Vec<ReferenceId>),
    Dane(TlsaSet, ReferenceNames, MatchOptions),
}

/// Authenticates one TLS server connection.
pub struct PeerVerifier {
    check: Check,
    provider: Arc<CryptoProvider>,
    enforce: bool,
    outcome: Mutex<PeerAuthentication>,
}

impl fmt::Debug for PeerVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerVerifier")
            .field("kind", &self.kind())
            .field("enforce", &self.enforce)
            .finish_non_exhaustive()
    }
}

/// The verdict behind a rejected handshake, carried inside rustls' error.
#[derive(Debug, Clone)]
pub struct Rejected(pub AuthFailure);

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Rejected {}

impl PeerVerifier {
    fn with(check: Check, provider: Arc<CryptoProvider>) -> Self {
        PeerVerifier {
            check,
            provider,
            enforce: true,
            outcome: Mutex::new(PeerAuthentication::NotChecked),
        }
    }

    /// Accepts any certificate (TLS for privacy only); handshake
    /// signatures are still checked.
    pub fn any_certificate(provider: Arc<CryptoProvider>) -> Self {
        Self::with(Check::Any, provider)
    }

    /// PKIX against `roots`, accepting a certificate that carries one of
    /// `names`. The SNI name is not what is checked.
    pub fn pkix(roots: PkixRoots, names: Vec<ReferenceId>) -> Self {
        let provider = roots.provider().clone();
        Self::with(Check::Pkix(roots, names), provider)
    }

    /// DANE with RFC 7672 (SMTP) rules. `names` are the MX host name and,
    /// after secure CNAME expansion, the TLSA base domain (DANE-TA name
    /// checks; DANE-EE ignores names).
    pub fn dane(set: TlsaSet, names: ReferenceNames, provider: Arc<CryptoProvider>) -> Self {
        Self::dane_with_options(set, names, MatchOptions::default(), provider)
    }

    /// DANE with explicit matching options (e.g. PKIX usages).
    pub fn dane_with_options(
        set: TlsaSet,
        names: ReferenceNames,
        options: MatchOptions,
        provider: Arc<CryptoProvider>,
    ) -> Self {
        Self::with(Check::Dane(set, names, options), provider)
    }

    pub(crate) fn into_report_only(mut self) -> Self {
        self.enforce = false;
        self
    }

    /// Which check this verifier makes.
    pub fn kind(&self) -> CheckKind {
        match self.check {
            Check::Any => CheckKind::None,
            Check::Pkix(..) => CheckKind::Pkix,
            Check::Dane(..) => CheckKind::Dane,
        }
    }

    /// Whether a failed check fails the handshake (false only for
    /// [`danger::report_only`](crate::danger::report_only)).
    pub fn enforces(&self) -> bool {
        self.enforce
    }

    /// What the last handshake found. Callers must still check that the
    /// handshake itself succeeded.
    pub fn outcome(&self) -> PeerAuthentication {
        self.outcome
            .lock()
            .map(|g| g.clone())
            .unwrap_or(PeerAuthentication::NotChecked)
    }

    /// A rustls client configuration that authenticates servers with this
    /// verifier only, offering `versions`, and presenting
    /// `client_certificate` when a server asks for one.
    pub fn client_config(
        self: &Arc<Self>,
        versions: &[&'static SupportedProtocolVersion],
        client_certificate: Option<Arc<CertifiedKey>>,
    ) -> Result<ClientConfig, Error> {
        let builder: ConfigBuilder<ClientConfig, WantsClientCert> =
            ClientConfig::builder_with_provider(self.provider.clone())
                .with_protocol_versions(versions)?
                .dangerous()
                .with_custom_certificate_verifier(self.clone());
        Ok(match client_certificate {
            Some(key) => builder.with_client_cert_resolver(Arc::new(SingleCertAndKey::from(key))),
            None => builder.with_no_client_auth(),
        })
    }

    fn record(&self, outcome: PeerAuthentication) {
        if let Ok(mut g) = self.outcome.lock() {
            *g = outcome;
        }
    }

    /// Withdraws a passed check when the handshake signature made with
    /// `cert`'s key does not verify: the peer replayed a certificate it has
    /// no key for.
    fn signature_checked<T>(
        &self,
        cert: &CertificateDer<'_>,
        result: Result<T, Error>,
    ) -> Result<T, Error> {
        if result.is_err()
            && let Ok(mut g) = self.outcome.lock()
            && matches!(&*g, PeerAuthentication::Verified(v) if v.leaf.as_ref() == cert.as_ref())
        {
            *g = PeerAuthentication::Failed(AuthFailure::Signature);
        }
        result
    }

    fn authenticate(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<Option<Method>, AuthFailure> {
        match &self.check {
            Check::Any => Ok(None),
            Check::Pkix(roots, names) => roots
                .check(names, end_entity, intermediates, now)
                .map(|(reference, subject_cn)| {
                    Some(Method::Pkix {
                        reference,
                        subject_cn,
                    })
                })
                .map_err(AuthFailure::Pkix),
            Check::Dane(set, names, options) => {
                // The SNI name is not what DANE checks: reference names come
                // from DNS (RFC 7672 §3.2.2), and were given at construction.
                let mut chain = Vec::with_capacity(1 + intermediates.len());
                chain.push(end_entity.clone());
                chain.extend(intermediates.iter().cloned());
                match match_chain(set, &chain, names, now, options) {
                    Verdict::Matched(m) => Ok(Some(Method::Dane(m))),
                    other => Err(AuthFailure::Dane(other)),
                }
            }
        }
    }
}

impl ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        match self.authenticate(end_entity, intermediates, now) {
            Ok(None) => {
                self.record(PeerAuthentication::NotChecked);
                Ok(ServerCertVerified::assertion())
            }
            Ok(Some(method)) => {
                self.record(PeerAuthentication::Verified(PeerVerified {
                    method,
                    leaf: end_entity.clone().into_owned(),
                }));
                Ok(ServerCertVerified::assertion())
            }
            Err(failure) => {
                self.record(PeerAuthentication::Failed(failure.clone()));
                if !self.enforce {
                    return Ok(ServerCertVerified::assertion());
                }
                Err(Error::InvalidCertificate(match failure {
                    AuthFailure::Dane(Verdict::Failed(MatchFailure::NameMismatch { .. })) => {
                        CertificateError::NotValidForName
                    }
                    other => CertificateError::Other(OtherError(Arc::new(Rejected(other)))),
                }))
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        let result = verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        );
        self.signature_checked(cert, result)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        let result = verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        );
        self.signature_checked(cert, result)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
