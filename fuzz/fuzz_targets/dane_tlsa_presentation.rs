//! Fuzzes the TLSA presentation-format parser: any text must parse or fail
//! cleanly, and a parsed record must survive a print/parse round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_dane::{TlsaRecord, TlsaSet};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(record) = TlsaRecord::from_presentation(text) {
        let again = TlsaRecord::from_presentation(&record.to_string());
        assert_eq!(again.as_ref(), Ok(&record));
        let _ = record.intrinsic_unusable();
        let set = TlsaSet::new(vec![record]);
        let _ = set.classify(true);
    }
});
