//! The one verifier's PKIX and DANE checks on certificates made in the test:
//! PKIX uses the caller's reference identities (not the SNI name), the
//! subject CN counts only without subjectAltName, report-only records and
//! goes on, and a check that passed is withdrawn when the server cannot
//! sign with the certificate's key (in-memory handshakes, TLS 1.2 and 1.3).

use std::sync::Arc;

use portcullis_dane::generate::tlsa_for_chain;
use portcullis_dane::{
    AuthFailure, CheckKind, PeerAuthentication, PeerVerifier, PkixRoots, ReferenceId,
    ReferenceNames, TlsaSet, danger,
};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

struct Pki {
    chain: Vec<CertificateDer<'static>>,
    roots: Arc<rustls::RootCertStore>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn ca() -> CertifiedIssuer<'static, KeyPair> {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap()
}

fn pki_with(leaf: CertificateParams) -> Pki {
    let ca = ca();
    let leaf = leaf.signed_by(&KeyPair::generate().unwrap(), &ca).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    Pki {
        chain: vec![leaf.der().clone(), ca.der().clone()],
        roots: Arc::new(roots),
    }
}

fn pki(names: &[&str]) -> Pki {
    pki_with(
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap(),
    )
}

fn pkix(p: &Pki, names: &[&str]) -> PeerVerifier {
    let roots = PkixRoots::new(p.roots.clone(), provider()).unwrap();
    PeerVerifier::pkix(roots, names.iter().map(|n| ReferenceId::parse(n)).collect())
}

fn run(v: &PeerVerifier, p: &Pki) -> Result<ServerCertVerified, rustls::Error> {
    let sni = ServerName::try_from("sni.unrelated.test").unwrap();
    v.verify_server_cert(&p.chain[0], &p.chain[1..], &sni, &[], UnixTime::now())
}

fn passed(v: &PeerVerifier) -> String {
    match v.outcome() {
        PeerAuthentication::Verified(how) => how.to_string(),
        other => panic!("expected a pass, got {other:?}"),
    }
}

fn failed(v: &PeerVerifier) -> String {
    match v.outcome() {
        PeerAuthentication::Failed(why) => why.to_string(),
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn pkix_uses_the_reference_identities_not_the_sni() {
    let p = pki(&["mx1.example.net"]);
    let v = pkix(&p, &["mx1.example.net"]);
    assert_eq!(v.kind(), CheckKind::Pkix);
    assert!(run(&v, &p).is_ok());
    assert_eq!(passed(&v), "pkix name=mx1.example.net");
    let v = pkix(&p, &["example.net", ".example.net"]);
    assert!(run(&v, &p).is_ok());
    assert_eq!(passed(&v), "pkix name=.example.net");
    let v = pkix(&p, &["example.org"]);
    assert!(run(&v, &p).is_err());
    assert!(failed(&v).contains("presented names [mx1.example.net]"));
    // Report only: the handshake goes on, the failure is recorded.
    let v = danger::report_only(pkix(&p, &["example.org"]));
    assert!(!v.enforces());
    assert!(run(&v, &p).is_ok());
    assert!(matches!(
        v.outcome(),
        PeerAuthentication::Failed(AuthFailure::Pkix(_))
    ));
}

#[test]
fn pkix_without_any_ca_fails_with_the_fix() {
    let p = pki(&["mx1.example.net"]);
    let roots = PkixRoots::new(Arc::new(rustls::RootCertStore::empty()), provider()).unwrap();
    assert!(roots.is_empty());
    let v = PeerVerifier::pkix(roots, vec![ReferenceId::parse("mx1.example.net")]);
    assert!(run(&v, &p).is_err());
    assert!(failed(&v).contains("enable the system or custom CA list"));
}

#[test]
fn subject_cn_counts_only_without_subject_alt_names() {
    let mut lp = CertificateParams::new(Vec::<String>::new()).unwrap();
    lp.distinguished_name
        .push(rcgen::DnType::CommonName, "*.example.net");
    let p = pki_with(lp);
    let v = pkix(&p, &["mx.example.net"]);
    assert!(run(&v, &p).is_ok(), "{:?}", v.outcome());
    assert!(passed(&v).contains("subject CN *.example.net"));
    let v = pkix(&p, &["a.b.example.net"]);
    assert!(run(&v, &p).is_err(), "a wildcard covers one label only");
    let v = pkix(&p, &[".example.net"]);
    assert!(run(&v, &p).is_ok());
    // The chain is still checked: another CA's roots fail whatever the CN.
    let other = pki(&["unrelated.test"]);
    let q = Pki {
        chain: p.chain.clone(),
        roots: other.roots.clone(),
    };
    let v = pkix(&q, &["mx.example.net"]);
    assert!(run(&v, &q).is_err());
    assert!(!failed(&v).contains("name mismatch"));
}

#[test]
fn dane_matches_the_tlsa_set_and_names_the_record() {
    let p = pki(&["mx.example.net"]);
    let good = tlsa_for_chain(&p.chain, 0, 3, 1, 1).unwrap();
    let dane = |set: &TlsaSet| {
        PeerVerifier::dane(
            set.clone(),
            ReferenceNames::new(["mx.example.net"]),
            provider(),
        )
    };
    let set = TlsaSet::new(vec![good]);
    let v = dane(&set);
    assert_eq!(v.kind(), CheckKind::Dane);
    assert!(run(&v, &p).is_ok());
    assert!(passed(&v).starts_with("dane record 3 1 1 "));
    // A record for another certificate does not match.
    let q = pki(&["mx.example.net"]);
    let v = dane(&set);
    assert!(run(&v, &q).is_err());
    assert!(failed(&v).starts_with("DANE: "));
}

#[test]
fn any_certificate_checks_nothing() {
    let p = pki(&["mx.example.net"]);
    let v = PeerVerifier::any_certificate(provider());
    assert_eq!(v.kind(), CheckKind::None);
    assert!(run(&v, &p).is_ok());
    assert_eq!(v.outcome(), PeerAuthentication::NotChecked);
}

/// Runs a handshake in memory between a client using `v` and a server
/// that presents `chain` but signs with a key of its own.
fn handshake_with_impostor(
    v: Arc<PeerVerifier>,
    chain: Vec<CertificateDer<'static>>,
    version: &'static rustls::SupportedProtocolVersion,
) -> Result<(), rustls::Error> {
    let key = KeyPair::generate().unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let signer = provider().key_provider.load_private_key(key).unwrap();
    let certified = rustls::sign::CertifiedKey::new(chain, signer);
    let server = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[version])
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified)));
    let client = v.client_config(&[version], None).unwrap();
    let sni = ServerName::try_from("mx1.example.net").unwrap();
    let mut client = rustls::ClientConnection::new(Arc::new(client), sni).unwrap();
    let mut server = rustls::ServerConnection::new(Arc::new(server)).unwrap();
    while client.is_handshaking() {
        let mut buf = Vec::new();
        client.write_tls(&mut buf).unwrap();
        server.read_tls(&mut buf.as_slice()).unwrap();
        let _ = server.process_new_packets();
        buf.clear();
        server.write_tls(&mut buf).unwrap();
        if buf.is_empty() && !client.wants_write() {
            return Err(rustls::Error::General("handshake stalled".into()));
        }
        client.read_tls(&mut buf.as_slice()).unwrap();
        client.process_new_packets()?;
    }
    Ok(())
}

#[test]
fn a_passed_check_is_withdrawn_when_the_handshake_signature_fails() {
    let p = pki(&["mx1.example.net"]);
    let record = tlsa_for_chain(&p.chain, 0, 3, 1, 1).unwrap();
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let verifiers = [
            pkix(&p, &["mx1.example.net"]),
            PeerVerifier::dane(
                TlsaSet::new(vec![record.clone()]),
                ReferenceNames::new(["mx1.example.net"]),
                provider(),
            ),
        ];
        for v in verifiers {
            let v = Arc::new(v);
            let err = handshake_with_impostor(v.clone(), p.chain.clone(), version)
                .expect_err("a server without the certificate's key must fail");
            assert!(err.to_string().contains("ignature"), "{err}");
            assert_eq!(
                v.outcome(),
                PeerAuthentication::Failed(AuthFailure::Signature),
                "{version:?} {:?}",
                v.kind()
            );
            assert!(failed(&v).contains("handshake signature"));
        }
    }
}
