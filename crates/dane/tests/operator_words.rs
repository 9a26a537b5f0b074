//! Issue 10 item 13: what the verifier says when a certificate fails is
//! written for a mail operator — "self-signed certificate", "certificate
//! expired on 2020-12-31 (… days ago)" — never a library's debug output
//! (`Other(OtherError(CaUsedAsEndEntity))`, `ExpiredContext { time:
//! UnixTime(…) … }`) or documentation URLs.

use std::sync::Arc;

use portcullis_dane::{PeerAuthentication, PeerVerifier, PkixRoots, ReferenceId};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// What the PKIX check says about `chain`, trusting `root` (a CA that did
/// not necessarily issue it).
fn verdict(chain: &[CertificateDer<'static>], root: CertificateDer<'static>) -> String {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root).unwrap();
    let roots = PkixRoots::new(Arc::new(roots), provider()).unwrap();
    let v = PeerVerifier::pkix(roots, vec![ReferenceId::parse("mx.example.com")]);
    let sni = ServerName::try_from("mx.example.com").unwrap();
    let _ = v.verify_server_cert(&chain[0], &chain[1..], &sni, &[], UnixTime::now());
    match v.outcome() {
        PeerAuthentication::Failed(why) => why.to_string(),
        other => panic!("the check passed: {other:?}"),
    }
}

fn no_debug_output(text: &str) {
    for bad in [
        "{", "}", "Context", "Other(", "UnixTime", "https://", "Error(",
    ] {
        assert!(!text.contains(bad), "{bad:?} in {text:?}");
    }
}

fn ca() -> CertifiedIssuer<'static, KeyPair> {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap()
}

#[test]
fn a_self_signed_certificate_is_called_so() {
    let other_ca = ca();
    // Self-signed as leaf certificates usually are, and as a CA (webpki's
    // CaUsedAsEndEntity when it is the trusted root itself).
    let plain = CertificateParams::new(vec!["mx.example.com".to_string()])
        .unwrap()
        .self_signed(&KeyPair::generate().unwrap())
        .unwrap();
    let text = verdict(&[plain.der().clone()], other_ca.der().clone());
    assert!(text.starts_with("self-signed certificate"), "{text}");
    no_debug_output(&text);

    let mut p = CertificateParams::new(vec!["mx.example.com".to_string()]).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let as_ca = p.self_signed(&KeyPair::generate().unwrap()).unwrap();
    let text = verdict(&[as_ca.der().clone()], as_ca.der().clone());
    assert!(text.contains("self-signed certificate"), "{text}");
    no_debug_output(&text);
}

#[test]
fn an_expired_certificate_says_when() {
    let ca = ca();
    let mut p = CertificateParams::new(vec!["mx.example.com".to_string()]).unwrap();
    p.not_before = rcgen::date_time_ymd(2020, 1, 1);
    p.not_after = rcgen::date_time_ymd(2020, 12, 31);
    let leaf = p.signed_by(&KeyPair::generate().unwrap(), &ca).unwrap();
    let text = verdict(&[leaf.der().clone(), ca.der().clone()], ca.der().clone());
    assert!(
        text.starts_with("certificate expired on 2020-12-31 (") && text.ends_with(" days ago)"),
        "{text}"
    );
    no_debug_output(&text);

    let mut p = CertificateParams::new(vec!["mx.example.com".to_string()]).unwrap();
    p.not_before = rcgen::date_time_ymd(2099, 1, 1);
    p.not_after = rcgen::date_time_ymd(2099, 12, 31);
    let leaf = p.signed_by(&KeyPair::generate().unwrap(), &ca).unwrap();
    let text = verdict(&[leaf.der().clone(), ca.der().clone()], ca.der().clone());
    assert!(
        text.starts_with("certificate is not valid until 2099-01-01 (in "),
        "{text}"
    );
    no_debug_output(&text);
}
