//! The TLS-ALPN-01 challenge (RFC 8737) as a rustls certificate resolver to
//! put on an HTTPS listener: a ClientHello that offers only the `acme-tls/1`
//! protocol for a name with a challenge in progress gets a self-signed
//! certificate for that name carrying the critical `acmeIdentifier`
//! extension (the SHA-256 of the key authorization); every other handshake
//! goes to the listener's own resolver (its certificate from the store). A
//! validation handshake with no challenge for its name gets no certificate,
//! so the handshake fails instead of showing the real one.
//!
//! To mount it on a listener: build its `rustls::ServerConfig` with
//! [`TlsAlpnResponder::server_config`] (or put the responder in
//! `with_cert_resolver` and add [`ACME_TLS_ALPN`] to `alpn_protocols`), and
//! give the same responder to the ACME order ([`super::Challenges`]). The
//! listener must close an `acme-tls/1` connection after the handshake
//! without serving anything on it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The ALPN protocol id of TLS-ALPN-01 validation handshakes.
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// Answers TLS-ALPN-01 validation handshakes, and hands every other
/// handshake to `fallback`.
pub struct TlsAlpnResponder {
    challenges: Mutex<HashMap<String, Arc<CertifiedKey>>>,
    fallback: Arc<dyn ResolvesServerCert>,
    provider: Arc<CryptoProvider>,
}

impl std::fmt::Debug for TlsAlpnResponder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self
            .challenges
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        f.debug_struct("TlsAlpnResponder")
            .field("challenges", &names)
            .finish_non_exhaustive()
    }
}

impl TlsAlpnResponder {
    /// A responder in front of the listener's own certificate resolver.
    pub fn new(fallback: Arc<dyn ResolvesServerCert>, provider: Arc<CryptoProvider>) -> Self {
        TlsAlpnResponder {
            challenges: Mutex::default(),
            fallback,
            provider,
        }
    }

    /// Starts answering validation handshakes for `domain` with a challenge
    /// certificate for `key_authorization_sha256`.
    pub fn insert(&self, domain: &str, key_authorization_sha256: &[u8]) -> Result<(), String> {
        let cert = challenge_certificate(domain, key_authorization_sha256, &self.provider)?;
        self.challenges
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(domain.to_ascii_lowercase(), cert);
        Ok(())
    }

    /// Stops answering for `domain`.
    pub fn remove(&self, domain: &str) {
        self.challenges
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&domain.to_ascii_lowercase());
    }

    /// A server configuration with this responder as its resolver and
    /// `acme-tls/1` added to `alpn` (the listener's own protocols, in its
    /// order of preference).
    pub fn server_config(
        self: Arc<Self>,
        versions: &[&'static rustls::SupportedProtocolVersion],
        mut alpn: Vec<Vec<u8>>,
    ) -> Result<rustls::ServerConfig, rustls::Error> {
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(versions)?
            .with_no_client_auth()
            .with_cert_resolver(self);
        alpn.push(ACME_TLS_ALPN.to_vec());
        config.alpn_protocols = alpn;
        Ok(config)
    }
}

impl ResolvesServerCert for TlsAlpnResponder {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let validation = hello
            .alpn()
            .map(|mut offered| offered.any(|p| p == ACME_TLS_ALPN))
            .unwrap_or(false);
        if !validation {
            return self.fallback.resolve(hello);
        }
        let name = hello.server_name()?.to_ascii_lowercase();
        self.challenges
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&name)
            .cloned()
    }
}

/// RFC 8737 §3: self-signed, the domain as its only name, the digest in a
/// critical id-pe-acmeIdentifier extension.
fn challenge_certificate(
    domain: &str,
    digest: &[u8],
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, String> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| format!("cannot make a TLS-ALPN-01 key: {e}"))?;
    let mut params = rcgen::CertificateParams::new(vec![domain.to_owned()])
        .map_err(|e| format!("{domain}: {e}"))?;
    params
        .custom_extensions
        .push(rcgen::CustomExtension::new_acme_identifier(digest));
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("cannot make the TLS-ALPN-01 certificate for {domain}: {e}"))?;
    let der = rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let signing = provider
        .key_provider
        .load_private_key(der)
        .map_err(|e| format!("TLS-ALPN-01 key: {e}"))?;
    Ok(Arc::new(CertifiedKey::new(
        vec![cert.der().clone()],
        signing,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_certstore::{KeySpec, SelfSignedRequest, Store, TlsSettings};
    use rustls::DigitallySignedStruct;
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
    use tokio::io::AsyncWriteExt;

    /// What an ACME validator does: take any certificate and look at it
    /// afterwards.
    #[derive(Debug)]
    struct LookLater(Arc<CryptoProvider>);

    impl ServerCertVerifier for LookLater {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }
        // webpki refuses to parse a certificate with a critical extension
        // it does not know, even just to check a signature; this test looks
        // at the certificate, not at who holds its key.
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }

    /// The id-pe-acmeIdentifier OID (1.3.6.1.5.5.7.1.31), DER-encoded.
    const OID: &[u8] = &[0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x1f];

    async fn handshake(
        addr: std::net::SocketAddr,
        name: &str,
        alpn: Option<&[u8]>,
    ) -> Result<(Vec<u8>, Option<Vec<u8>>), String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(LookLater(provider)))
            .with_no_client_auth();
        if let Some(p) = alpn {
            config.alpn_protocols = vec![p.to_vec()];
        }
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(
                ServerName::try_from(name.to_owned()).map_err(|e| e.to_string())?,
                tcp,
            )
            .await
            .map_err(|e| e.to_string())?;
        let conn = tls.get_ref().1;
        let cert = conn
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.to_vec())
            .ok_or("no certificate")?;
        Ok((cert, conn.alpn_protocol().map(<[u8]>::to_vec)))
    }

    #[tokio::test]
    async fn answers_validation_handshakes_and_passes_the_rest_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_or_create(dir.path().join("s")).unwrap();
        let mut req = SelfSignedRequest::new("mx1.example.test");
        req.key = KeySpec::EcdsaP256;
        store.create_self_signed("web", &req).unwrap();
        let (_, live) = store
            .live_server_config("web", &TlsSettings::default())
            .unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let responder = Arc::new(TlsAlpnResponder::new(live, provider));
        let digest = [7u8; 32];
        responder.insert("mx1.example.test", &digest).unwrap();
        let config = responder
            .clone()
            .server_config(
                &[&rustls::version::TLS13, &rustls::version::TLS12],
                vec![b"http/1.1".to_vec()],
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(mut tls) = acceptor.accept(tcp).await {
                        let _ = tls.shutdown().await;
                    }
                });
            }
        });
        let real = store.entry("web").unwrap().chain[0].to_vec();

        let (cert, alpn) = handshake(addr, "mx1.example.test", Some(ACME_TLS_ALPN))
            .await
            .unwrap();
        assert_eq!(alpn.as_deref(), Some(ACME_TLS_ALPN));
        assert_ne!(cert, real);
        let at = cert
            .windows(OID.len())
            .position(|w| w == OID)
            .expect("acmeIdentifier");
        // critical BOOLEAN TRUE, then OCTET STRING { OCTET STRING digest }
        assert_eq!(
            &cert[at + OID.len()..at + OID.len() + 3],
            &[0x01, 0x01, 0xff]
        );
        assert!(cert.windows(32).any(|w| w == digest));

        let (cert, alpn) = handshake(addr, "mx1.example.test", Some(b"http/1.1"))
            .await
            .unwrap();
        assert_eq!(
            cert, real,
            "ordinary handshakes get the listener's certificate"
        );
        assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
        let (cert, _) = handshake(addr, "mx1.example.test", None).await.unwrap();
        assert_eq!(cert, real);

        assert!(
            handshake(addr, "other.example.test", Some(ACME_TLS_ALPN))
                .await
                .is_err(),
            "no challenge for that name: no certificate at all"
        );
        responder.remove("mx1.example.test");
        assert!(
            handshake(addr, "mx1.example.test", Some(ACME_TLS_ALPN))
                .await
                .is_err()
        );
    }
}
