//! Fuzzes what REQUIRETLS reads from a client (untrusted): the scan for a
//! `TLS-Required` header field in message bytes and the check of its value,
//! and the `+requiretls` tag in a recipient address.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_policy::requiretls::{
    strip_requiretls_tag, tls_required_header, tls_required_header_says_no,
};

fuzz_target!(|data: &[u8]| {
    if let Some(value) = tls_required_header(data) {
        let _ = tls_required_header_says_no(&value);
    }
    let Ok(address) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(stripped) = strip_requiretls_tag(address) {
        // The tag goes, the domain and the rest of the local part stay.
        let (local, domain) = stripped.rsplit_once('@').expect("an address keeps its @");
        assert!(address.ends_with(&format!("@{domain}")));
        assert!(!local.is_empty());
        assert!(
            !local
                .split('+')
                .skip(1)
                .any(|p| p.eq_ignore_ascii_case("requiretls"))
        );
        assert!(strip_requiretls_tag(&stripped).is_none());
    }
});
