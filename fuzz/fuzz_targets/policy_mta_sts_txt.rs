//! Fuzzes the `_mta-sts` TXT record parser and record selection (DNS data:
//! untrusted). NUL bytes split the input into several TXT records.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_policy::mta_sts::StsTxtRecord;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = StsTxtRecord::parse(data) {
        let again = StsTxtRecord::parse(r.to_string().as_bytes());
        assert_eq!(again.as_ref(), Ok(&r), "canonical form must re-parse");
        assert!((1..=32).contains(&r.id().len()));
    }
    let records: Vec<&[u8]> = data.split(|b| *b == 0).collect();
    let _ = StsTxtRecord::select(records.iter().copied());
});
