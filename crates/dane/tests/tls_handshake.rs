//! Real TLS handshakes over loopback (tokio-rustls server with rcgen
//! certificates) authenticated by the DANE [`PeerVerifier`], for `3 1 1`, `3 0 1`,
//! `2 1 1` (through an intermediate) and `2 0 0` (anchor not sent by the
//! server), each passing and failing, over TLS 1.2 and 1.3.

use std::sync::Arc;

use portcullis_dane::generate::tlsa_for_chain;
use portcullis_dane::{
    AuthFailure, MatchFailure, Method, PeerAuthentication, PeerVerified, PeerVerifier,
    ReferenceNames, TlsaRecord, TlsaSet, Verdict,
};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

struct Pki {
    root: CertificateDer<'static>,
    intermediate: CertificateDer<'static>,
    leaf: CertificateDer<'static>,
    leaf_key: KeyPair,
    /// Same key as `leaf`, different certificate (a re-issue).
    reissued_leaf: CertificateDer<'static>,
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p
}

fn pki() -> Pki {
    let root =
        CertifiedIssuer::self_signed(ca_params("Test Root"), KeyPair::generate().unwrap()).unwrap();
    let inter = CertifiedIssuer::signed_by(
        ca_params("Test Intermediate"),
        KeyPair::generate().unwrap(),
        &root,
    )
    .unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let mut lp = CertificateParams::new(vec!["mx.example.com".to_string()]).unwrap();
    lp.distinguished_name
        .push(DnType::CommonName, "mx.example.com");
    let leaf = lp.signed_by(&leaf_key, &inter).unwrap();
    let mut lp2 = CertificateParams::new(vec!["mx.example.com".to_string()]).unwrap();
    lp2.distinguished_name
        .push(DnType::CommonName, "mx.example.com (reissued)");
    let reissued = lp2.signed_by(&leaf_key, &inter).unwrap();
    Pki {
        root: root.der().clone(),
        intermediate: inter.der().clone(),
        leaf: leaf.der().clone(),
        leaf_key,
        reissued_leaf: reissued.der().clone(),
    }
}

/// Serves one TLS handshake on 127.0.0.1 with `chain`; returns the port.
async fn serve(chain: Vec<CertificateDer<'static>>, key: &KeyPair) -> u16 {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let config = ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        // The client may reject us; that is the point of half the tests.
        if let Ok(mut tls) = acceptor.accept(tcp).await {
            let _ = tls.write_all(b"220 ok\r\n").await;
            let _ = tls.shutdown().await;
        }
    });
    port
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The DANE match a verified peer carries.
fn matched(v: &PeerVerified) -> &portcullis_dane::DaneMatch {
    match v.method() {
        Method::Dane(m) => m,
        other => panic!("not a DANE match: {other:?}"),
    }
}

/// Connects with a DANE verifier; returns the verifier's outcome.
async fn connect(
    port: u16,
    records: Vec<TlsaRecord>,
    names: &[&str],
    version: &'static rustls::SupportedProtocolVersion,
) -> Result<PeerVerified, Verdict> {
    let verifier = Arc::new(PeerVerifier::dane(
        TlsaSet::new(records),
        ReferenceNames::new(names),
        provider(),
    ));
    // TLS 1.3 goes through the crate's own `client_config` (both versions
    // offered; the server picks 1.3); TLS 1.2 is forced explicitly.
    let config = if version == &rustls::version::TLS13 {
        verifier
            .client_config(rustls::DEFAULT_VERSIONS, None)
            .unwrap()
    } else {
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_protocol_versions(&[version])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth()
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    // SNI deliberately differs from the reference names: DANE ignores it.
    let sni = ServerName::try_from("sni.invalid").unwrap();
    let result = connector.connect(sni, tcp).await;
    let outcome = match verifier.outcome() {
        PeerAuthentication::Verified(v) => Ok(v),
        PeerAuthentication::Failed(AuthFailure::Dane(verdict)) => Err(verdict),
        other => panic!("verifier did not run or failed otherwise: {other:?}"),
    };
    match result {
        Ok(mut tls) => {
            let mut buf = Vec::new();
            tls.read_to_end(&mut buf).await.unwrap();
            assert_eq!(buf, b"220 ok\r\n");
            assert!(
                outcome.is_ok(),
                "handshake succeeded but verifier says {outcome:?}"
            );
        }
        Err(e) => {
            assert!(
                outcome.is_err(),
                "handshake failed ({e}) although the verifier matched"
            );
        }
    }
    outcome
}

const VERSIONS: [&rustls::SupportedProtocolVersion; 2] =
    [&rustls::version::TLS12, &rustls::version::TLS13];

#[tokio::test]
async fn dane_ee_3_1_1() {
    let p = pki();
    let chain = vec![p.leaf.clone(), p.intermediate.clone()];
    let good = tlsa_for_chain(&chain, 0, 3, 1, 1).unwrap();
    let other = tlsa_for_chain(std::slice::from_ref(&p.intermediate), 0, 3, 1, 1).unwrap();
    for v in VERSIONS {
        let port = serve(chain.clone(), &p.leaf_key).await;
        // DANE-EE ignores names: a reference name the cert lacks is fine.
        let ok = connect(port, vec![good.clone()], &["other.example.net"], v)
            .await
            .unwrap();
        assert_eq!(matched(&ok).depth(), 0);
        assert_eq!(matched(&ok).record(), &good);
        assert_eq!(ok.end_entity(), &p.leaf);

        let port = serve(chain.clone(), &p.leaf_key).await;
        let err = connect(port, vec![other.clone()], &["mx.example.com"], v)
            .await
            .unwrap_err();
        assert!(
            matches!(err, Verdict::Failed(MatchFailure::NoMatch { usable: 1 })),
            "{err}"
        );
    }
}

#[tokio::test]
async fn dane_ee_3_0_1() {
    let p = pki();
    let chain = vec![p.leaf.clone(), p.intermediate.clone()];
    let good = tlsa_for_chain(&chain, 0, 3, 0, 1).unwrap();
    for v in VERSIONS {
        let port = serve(chain.clone(), &p.leaf_key).await;
        let ok = connect(port, vec![good.clone()], &["mx.example.com"], v)
            .await
            .unwrap();
        assert_eq!(matched(&ok).depth(), 0);
        // Same key, re-issued certificate: `3 0 1` pins the certificate, so it fails.
        let port = serve(
            vec![p.reissued_leaf.clone(), p.intermediate.clone()],
            &p.leaf_key,
        )
        .await;
        let err = connect(port, vec![good.clone()], &["mx.example.com"], v)
            .await
            .unwrap_err();
        assert!(
            matches!(err, Verdict::Failed(MatchFailure::NoMatch { .. })),
            "{err}"
        );
    }
}

#[tokio::test]
async fn dane_ta_2_1_1_through_intermediate() {
    let p = pki();
    let chain = vec![p.leaf.clone(), p.intermediate.clone()];
    let ta = tlsa_for_chain(&chain, 1, 2, 1, 1).unwrap();
    for v in VERSIONS {
        let port = serve(chain.clone(), &p.leaf_key).await;
        let ok = connect(port, vec![ta.clone()], &["mx.example.com"], v)
            .await
            .unwrap();
        assert_eq!(matched(&ok).depth(), 1);
        assert!(matched(&ok).name_checked());

        // DANE-TA checks names: the MX host name must be in the certificate.
        let port = serve(chain.clone(), &p.leaf_key).await;
        let err = connect(port, vec![ta.clone()], &["mx.other.example"], v)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Verdict::Failed(MatchFailure::NameMismatch { depth: 1, .. })
            ),
            "{err}"
        );

        // An anchor the chain does not lead to.
        let unrelated = pki();
        let wrong =
            tlsa_for_chain(std::slice::from_ref(&unrelated.intermediate), 0, 2, 1, 1).unwrap();
        let port = serve(chain.clone(), &p.leaf_key).await;
        let err = connect(port, vec![wrong], &["mx.example.com"], v)
            .await
            .unwrap_err();
        assert!(
            matches!(err, Verdict::Failed(MatchFailure::NoMatch { .. })),
            "{err}"
        );
    }
}

#[tokio::test]
async fn dane_ta_2_0_0_anchor_not_sent() {
    let p = pki();
    // The server sends leaf + intermediate; the root only exists in DNS.
    let chain = vec![p.leaf.clone(), p.intermediate.clone()];
    let ta = tlsa_for_chain(std::slice::from_ref(&p.root), 0, 2, 0, 0).unwrap();
    for v in VERSIONS {
        let port = serve(chain.clone(), &p.leaf_key).await;
        let ok = connect(port, vec![ta.clone()], &["mx.example.com"], v)
            .await
            .unwrap();
        assert_eq!(matched(&ok).depth(), 2);

        // Without the intermediate there is no path from the leaf to the root.
        let port = serve(vec![p.leaf.clone()], &p.leaf_key).await;
        let err = connect(port, vec![ta.clone()], &["mx.example.com"], v)
            .await
            .unwrap_err();
        assert!(
            matches!(err, Verdict::Failed(MatchFailure::NoMatch { .. })),
            "{err}"
        );

        // A different root published in DNS.
        let other = pki();
        let wrong = tlsa_for_chain(std::slice::from_ref(&other.root), 0, 2, 0, 0).unwrap();
        let port = serve(chain.clone(), &p.leaf_key).await;
        let err = connect(port, vec![wrong], &["mx.example.com"], v)
            .await
            .unwrap_err();
        assert!(
            matches!(err, Verdict::Failed(MatchFailure::NoMatch { .. })),
            "{err}"
        );
    }
}

#[tokio::test]
async fn all_unusable_set_rejects_authentication() {
    let p = pki();
    let chain = vec![p.leaf.clone(), p.intermediate.clone()];
    let pkix = tlsa_for_chain(&chain, 0, 1, 1, 1).unwrap();
    let port = serve(chain, &p.leaf_key).await;
    let err = connect(
        port,
        vec![pkix],
        &["mx.example.com"],
        &rustls::version::TLS13,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Verdict::NoUsableRecords { .. }), "{err}");
}

/// A server that replays the genuine certificate chain (public data) but
/// signs the handshake with a key of its own: the chain matches the TLSA
/// record, the handshake signature does not verify. The handshake must
/// fail and the verifier must not hand out a `PeerVerified` token for it.
#[tokio::test]
async fn replayed_certificate_without_its_key_yields_no_token() {
    let p = pki();
    let chain = vec![p.leaf.clone(), p.intermediate.clone()];
    let good = tlsa_for_chain(&chain, 0, 3, 1, 1).unwrap();
    let impostor_key = KeyPair::generate().unwrap();
    for v in VERSIONS {
        let signer = rustls::crypto::aws_lc_rs::sign::any_supported_type(&PrivateKeyDer::Pkcs8(
            PrivatePkcs8KeyDer::from(impostor_key.serialize_der()),
        ))
        .unwrap();
        // `CertifiedKey::new` does not check that key and certificate belong
        // together (`with_single_cert` would refuse), which is the attack.
        let certified = rustls::sign::CertifiedKey::new(chain.clone(), signer);
        let config = ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_protocol_versions(&[v])
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified)));
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let _ = acceptor.accept(tcp).await;
        });

        let verifier = Arc::new(PeerVerifier::dane(
            TlsaSet::new(vec![good.clone()]),
            ReferenceNames::new(["mx.example.com"]),
            provider(),
        ));
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_protocol_versions(&[v])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let sni = ServerName::try_from("mx.example.com").unwrap();
        let err = connector
            .connect(sni, tcp)
            .await
            .expect_err("a server without the certificate's key must fail the handshake");
        assert!(
            err.to_string().to_lowercase().contains("signature"),
            "{v:?}: {err}"
        );
        let outcome = verifier.outcome();
        assert!(
            matches!(outcome, PeerAuthentication::Failed(AuthFailure::Signature)),
            "{v:?}: token handed out for a peer that never proved its key: {outcome:?}"
        );
        server.await.unwrap();
    }
}
