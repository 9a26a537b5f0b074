//! Untrusted DER bytes as a certificate: the X.509 field extraction `show`
//! and the chain logic rely on, and the DER branch of the PEM/DER reader.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_certstore::{CertInfo, describe_spki, pem};

fuzz_target!(|data: &[u8]| {
    if let Ok(info) = CertInfo::from_der(data, "fuzz") {
        let _ = info.label();
        let _ = info.dns_names().count();
    }
    let _ = describe_spki(data);
    let _ = pem::parse(data, "fuzz");
});
