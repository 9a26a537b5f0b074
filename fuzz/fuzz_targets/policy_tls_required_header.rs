//! Fuzzes the scan for a `TLS-Required` header field in message bytes
//! (whatever a client sent in DATA: untrusted), and the check of its value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_policy::requiretls::{tls_required_header, tls_required_header_says_no};

fuzz_target!(|data: &[u8]| {
    if let Some(value) = tls_required_header(data) {
        let _ = tls_required_header_says_no(&value);
    }
});
