//! Fuzzes what the report task does with a domain's `_smtp._tls` record
//! (DNS data: untrusted): record selection, then each report address read
//! as a `mailto:` address or an `https:` URL. NUL bytes split the input into
//! several records. A `mailto:` address is percent-decoded, so the target
//! also checks that the `RCPT TO` path built from it never breaks a line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_mta::tlsrpt::deliver::Rua;
use portcullis_policy::TlsRptTxtRecord;
use portcullis_smtp_tls::ForwardPath;

fuzz_target!(|data: &[u8]| {
    let records: Vec<&[u8]> = data.split(|b| *b == 0).collect();
    if let Ok(r) = TlsRptTxtRecord::select(records.iter().copied()) {
        for uri in r.rua() {
            check(uri);
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        check(text);
    }
});

fn check(uri: &str) {
    if let Ok(Rua::Mail(address)) = Rua::parse(uri) {
        assert!(address.contains('@'));
        // As `Transport::mail` builds it.
        if let Ok(path) = ForwardPath::parse(&format!("<{address}>")) {
            let wire = path.to_string();
            assert!(!wire.contains(['\r', '\n', '\0']), "{wire:?}");
        }
    }
}
