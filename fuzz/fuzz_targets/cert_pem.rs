//! Untrusted PEM text (what an operator pastes or a CA mails) through the
//! certstore PEM reader and, for every certificate found, the X.509 field
//! extraction and chain ordering.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_certstore::{CertInfo, pem};

fuzz_target!(|data: &[u8]| {
    if let Ok(parsed) = pem::parse(data, "fuzz") {
        for cert in &parsed.certs {
            let _ = CertInfo::from_der(cert, "fuzz");
        }
        for key in &parsed.keys {
            let _ = portcullis_certstore::PrivateKey::from_der(key, "fuzz");
        }
        if let Some((leaf, rest)) = parsed.certs.split_first() {
            let _ = portcullis_certstore::order_chain(leaf.clone(), rest.to_vec());
        }
    }
});
