//! Fuzzes the TLSA RDATA (wire) parser and the matcher fed with the parsed
//! records: nothing from DNS may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_dane::pki_types::{CertificateDer, UnixTime};
use portcullis_dane::{MatchOptions, ReferenceNames, TlsaRecord, TlsaSet, match_chain};

fuzz_target!(|data: &[u8]| {
    // First byte splits the input into RDATA and a "certificate" so the
    // matcher also sees arbitrary DER.
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let cut = usize::from(split).min(rest.len());
    let (rdata, cert) = rest.split_at(cut);
    let Ok(record) = TlsaRecord::from_wire(rdata) else {
        return;
    };
    assert_eq!(record.to_wire(), rdata);
    let set = TlsaSet::new(vec![record.clone(), record]);
    let chain = vec![CertificateDer::from(cert.to_vec())];
    let _ = match_chain(
        &set,
        &chain,
        &ReferenceNames::new(["mx.example.com"]),
        UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_800_000_000)),
        &MatchOptions::default(),
    );
});
