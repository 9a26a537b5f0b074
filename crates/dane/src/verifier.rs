//! A rustls [`ServerCertVerifier`] that authenticates the server by a TLSA
//! set (RFC 7672) instead of the Web PKI, and checks the handshake
//! signatures with the aws-lc-rs provider like rustls' own verifier does.
//!
//! One verifier serves one destination (its TLSA set and reference names);
//! build a rustls `ClientConfig` per connection with it. After a successful
//! handshake [`DaneVerifier::take_verified`] hands out the [`DaneVerified`]
//! token, which nothing else can construct.

use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, OtherError, SignatureScheme};

use crate::matching::{DaneMatch, MatchFailure, MatchOptions, Verdict, match_chain};
use crate::names::ReferenceNames;
use crate::set::TlsaSet;

/// Proof that a handshake's server certificate was authenticated by DANE.
/// Only [`DaneVerifier`] creates one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaneVerified {
    matched: DaneMatch,
    leaf: CertificateDer<'static>,
}

impl DaneVerified {
    /// The record and depth that authenticated the peer.
    pub fn matched(&self) -> &DaneMatch {
        &self.matched
    }
    /// The server's end-entity certificate that was authenticated.
    pub fn end_entity(&self) -> &CertificateDer<'static> {
        &self.leaf
    }
}

/// Authenticates a TLS server by its TLSA records.
#[derive(Debug)]
pub struct DaneVerifier {
    set: TlsaSet,
    names: ReferenceNames,
    options: MatchOptions,
    provider: Arc<CryptoProvider>,
    outcome: Mutex<Option<Result<DaneVerified, Verdict>>>,
}

/// The verdict behind a rejected handshake, carried inside rustls' error.
#[derive(Debug, Clone)]
pub struct DaneRejected(pub Verdict);

impl std::fmt::Display for DaneRejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}
impl std::error::Error for DaneRejected {}

impl DaneVerifier {
    /// A verifier for one destination with RFC 7672 (SMTP) rules.
    /// `names` are the MX host name and, after secure CNAME expansion, the
    /// TLSA base domain.
    pub fn new(set: TlsaSet, names: ReferenceNames) -> Self {
        Self::with_options(set, names, MatchOptions::default())
    }

    /// A verifier with explicit matching options (e.g. PKIX usages).
    pub fn with_options(set: TlsaSet, names: ReferenceNames, options: MatchOptions) -> Self {
        Self {
            set,
            names,
            options,
            provider: Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
            outcome: Mutex::new(None),
        }
    }

    /// The token from the last successful verification, or the verdict that
    /// rejected it. `None` if no certificate was verified yet, or if the
    /// server then failed to prove it holds the matched certificate's key
    /// (its handshake signature did not verify): a certificate is public, so
    /// a match alone authenticates nobody. Callers must still check that the
    /// handshake itself succeeded.
    pub fn take_verified(&self) -> Option<Result<DaneVerified, Verdict>> {
        self.outcome.lock().ok().and_then(|mut g| g.take())
    }

    /// A rustls client configuration (aws-lc-rs provider, TLS 1.2 and 1.3)
    /// that authenticates servers with this verifier only. Setting a custom
    /// verifier is rustls' "dangerous" API; this is the one place it is used.
    pub fn client_config(self: &Arc<Self>) -> Result<rustls::ClientConfig, Error> {
        let config = rustls::ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(self.clone())
            .with_no_client_auth();
        Ok(config)
    }

    fn record(&self, outcome: Result<DaneVerified, Verdict>) {
        if let Ok(mut g) = self.outcome.lock() {
            *g = Some(outcome);
        }
    }

    /// Withdraws the token when the handshake signature made with `cert`'s
    /// key does not verify: the peer replayed a certificate it has no key for.
    fn signature_checked<T>(
        &self,
        cert: &CertificateDer<'_>,
        result: Result<T, Error>,
    ) -> Result<T, Error> {
        if result.is_err()
            && let Ok(mut g) = self.outcome.lock()
            && matches!(&*g, Some(Ok(v)) if v.leaf.as_ref() == cert.as_ref())
        {
            *g = None;
        }
        result
    }
}

impl ServerCertVerifier for DaneVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        // The SNI name is not what DANE checks: reference names come from
        // DNS (RFC 7672 §3.2.2), and were given at construction.
        let mut chain = Vec::with_capacity(1 + intermediates.len());
        chain.push(end_entity.clone());
        chain.extend(intermediates.iter().cloned());
        let verdict = match_chain(&self.set, &chain, &self.names, now, &self.options);
        match verdict {
            Verdict::Matched(m) => {
                self.record(Ok(DaneVerified {
                    matched: m,
                    leaf: end_entity.clone().into_owned(),
                }));
                Ok(ServerCertVerified::assertion())
            }
            other => {
                let err = match &other {
                    Verdict::Failed(MatchFailure::NameMismatch { .. }) => {
                        CertificateError::NotValidForName
                    }
                    _ => CertificateError::Other(OtherError(Arc::new(DaneRejected(other.clone())))),
                };
                self.record(Err(other));
                Err(Error::InvalidCertificate(err))
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
