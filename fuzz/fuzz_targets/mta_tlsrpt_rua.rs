//! Fuzzes what the report task does with a domain's `_smtp._tls` record
//! (DNS data: untrusted): record selection, then each report address read
//! as a `mailto:` address or an `https:` URL. NUL bytes split the input into
//! several records.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_mta::tlsrpt::deliver::Rua;
use portcullis_policy::TlsRptTxtRecord;

fuzz_target!(|data: &[u8]| {
    let records: Vec<&[u8]> = data.split(|b| *b == 0).collect();
    if let Ok(r) = TlsRptTxtRecord::select(records.iter().copied()) {
        for uri in r.rua() {
            if let Ok(Rua::Mail(address)) = Rua::parse(uri) {
                assert!(address.contains('@'));
            }
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Rua::parse(text);
    }
});
