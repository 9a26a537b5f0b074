//! Untrusted PEM text (what an operator pastes or a CA mails) through the
//! certstore PEM reader and, for every certificate found, the X.509 field
//! extraction and chain ordering. What is read must survive being written
//! back: certificates and keys re-encoded as PEM parse to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_certstore::{CertInfo, PrivateKey, describe_spki, order_chain, pem};

fuzz_target!(|data: &[u8]| {
    let parsed = match pem::parse(data, "fuzz") {
        Ok(parsed) => parsed,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    for cert in &parsed.certs {
        let _ = CertInfo::from_der(cert, "fuzz").map(|info| info.label());
    }
    if !parsed.certs.is_empty() {
        let again = pem::parse_certs(pem::encode_certs(&parsed.certs).as_bytes(), "re-encoded")
            .expect("certificates we read must read again once written as PEM");
        assert_eq!(again, parsed.certs, "PEM round trip changed a certificate");
    }
    for key in &parsed.keys {
        match PrivateKey::from_der(key, "fuzz") {
            Ok(key) => key_round_trip(&key),
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
    if let Some((leaf, rest)) = parsed.certs.split_first()
        && let Ok(chain) = order_chain(leaf.clone(), rest.to_vec())
    {
        for problem in &chain.problems {
            let _ = problem.to_string();
        }
    }
});

/// A usable key, written as PKCS#8 PEM and read back, is the same key.
fn key_round_trip(key: &PrivateKey) {
    let _ = describe_spki(key.spki_der()).to_string();
    let again = pem::parse(key.to_pem().as_bytes(), "re-encoded key")
        .expect("a key we accepted must read again once written as PEM");
    let [again] = again.keys.as_slice() else {
        panic!("one key written, {} read back", again.keys.len());
    };
    let again = PrivateKey::from_der(again, "re-encoded key")
        .expect("a key we accepted must be accepted again from its PKCS#8 PEM");
    assert_eq!(
        again.pkcs8_der(),
        key.pkcs8_der(),
        "PKCS#8 changed on the way"
    );
    assert_eq!(
        again.spki_der(),
        key.spki_der(),
        "public key changed on the way"
    );
}
