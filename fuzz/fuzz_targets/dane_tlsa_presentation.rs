//! Fuzzes the TLSA presentation-format parser: any text must parse or fail
//! with an error that prints, and a parsed record must survive a print/parse
//! round trip. Parsed records are classified next to a SHA-512 DANE-EE
//! record, so a SHA-256 one of the same usage is set aside as weaker.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_dane::{TlsaRecord, TlsaSet};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let record = match TlsaRecord::from_presentation(text) {
        Ok(record) => record,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let again = TlsaRecord::from_presentation(&record.to_string());
    assert_eq!(again.as_ref(), Ok(&record));
    assert_eq!(
        TlsaRecord::from_wire(&record.to_wire()).as_ref(),
        Ok(&record)
    );
    let sha512 = TlsaRecord::new(3, 1, 2, vec![0x5a; 64]);
    let set = TlsaSet::new(vec![record, sha512]);
    for pkix in [true, false] {
        for (_, why) in set.classify(pkix) {
            if let Some(why) = why {
                let _ = why.to_string();
            }
        }
    }
});
