//! Untrusted DER bytes as a certificate: the X.509 field extraction `show`
//! and the chain logic rely on, and the DER branch of the PEM/DER reader.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_certstore::{CertInfo, CertificateDer, Timestamp, describe_spki, order_chain, pem};

/// 1970 and 2100: a certificate of today is not yet valid at the first and
/// expired at the second, so both refusals (and the dates they print) run.
const TOO_EARLY: Timestamp = Timestamp { unix: 0 };
const TOO_LATE: Timestamp = Timestamp {
    unix: 4_102_444_800,
};

/// A real leaf and the CA that issued it (written by `seeds/make.sh`; the
/// seed `leaf.der` is the same leaf), for the fuzzed certificate to chain
/// with in both directions.
const REAL_LEAF: &[u8] = include_bytes!("pkcs12_pool/ec-leaf.der");
const REAL_CA: &[u8] = include_bytes!("pkcs12_pool/ca.der");

fuzz_target!(|data: &[u8]| {
    if let Ok(info) = CertInfo::from_der(data, "fuzz") {
        let _ = info.label();
        let _ = info.dns_names().count();
        let _ = info.key.to_string();
        let _ = info.check_valid_at(TOO_EARLY).map_err(|e| e.to_string());
        let _ = info.check_valid_at(TOO_LATE).map_err(|e| e.to_string());
        chain(data);
    }
    let _ = describe_spki(data);
    let _ = pem::parse(data, "fuzz");
});

/// The fuzzed certificate as a leaf below the real CA, and offered twice as
/// the issuer of the real leaf; every problem found is printed.
fn chain(data: &[u8]) {
    let cert = || CertificateDer::from(data.to_vec());
    let (leaf, ca) = (
        CertificateDer::from(REAL_LEAF),
        CertificateDer::from(REAL_CA),
    );
    for (leaf, others) in [
        (cert(), vec![ca.clone(), cert()]),
        (leaf, vec![cert(), cert(), ca]),
    ] {
        if let Ok(chain) = order_chain(leaf, others) {
            for problem in &chain.problems {
                let _ = problem.to_string();
            }
        }
    }
}
