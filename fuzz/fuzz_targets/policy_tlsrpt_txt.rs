//! Fuzzes the `_smtp._tls` TLS-RPT TXT record parser and record selection
//! (DNS data: untrusted). NUL bytes split the input into several records.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_policy::TlsRptTxtRecord;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = TlsRptTxtRecord::parse(data) {
        assert!(!r.rua().is_empty());
    }
    let records: Vec<&[u8]> = data.split(|b| *b == 0).collect();
    let _ = TlsRptTxtRecord::select(records.iter().copied());
});
