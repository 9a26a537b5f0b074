//! Fuzzes the classification of DNS answers (`portcullis_dane::dns::classify`):
//! a response from the network, decoded, classified as a validating
//! resolver's answer (AD bit) and as records hickory validated (with proofs
//! taken from the input), then turned into MX hosts, addresses, TXT and a
//! TLSA finding. Nothing may panic, and an answer may only be secure when
//! every record it rests on was secure and inside the trust anchor.
#![no_main]

use hickory_proto::dnssec::Proof;
use hickory_proto::op::Message;
use hickory_proto::rr::{Name, RecordType};
use libfuzzer_sys::fuzz_target;
use portcullis_dane::dns::{Answer, classify};

const TYPES: [RecordType; 8] = [
    RecordType::A,
    RecordType::AAAA,
    RecordType::MX,
    RecordType::TLSA,
    RecordType::TXT,
    RecordType::PTR,
    RecordType::SOA,
    RecordType::CNAME,
];
const PROOFS: [Proof; 4] = [
    Proof::Secure,
    Proof::Insecure,
    Proof::Bogus,
    Proof::Indeterminate,
];

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, wire)) = data.split_first() else {
        return;
    };
    let Ok(message) = Message::from_vec(wire) else {
        return;
    };
    let rtype = TYPES[usize::from(ctl) % TYPES.len()];
    let name = message
        .queries
        .first()
        .map(|q| q.name().clone())
        .unwrap_or_else(Name::root);

    // A validating resolver's answer: secure exactly when AD is set and trusted.
    let trusted = ctl & 0x80 != 0;
    let ad = classify::ad_response(&name, rtype, &message, trusted);
    if let Answer::Records(p) = &ad {
        assert!(!p.proof().is_secure() || (trusted && message.metadata.authentic_data));
    }

    // Records hickory validated: proofs from the input, anchor = the
    // query name's parent zone.
    let mut records = message.answers.clone();
    for (i, r) in records.iter_mut().enumerate() {
        r.proof = PROOFS[(usize::from(ctl >> 3) + i) % PROOFS.len()];
    }
    let anchor = name.base_name();
    let outside = |n: &Name| !anchor.zone_of(n);
    let answer = classify::validated(&name, rtype, &records, outside);
    if matches!(&answer, Answer::Records(p) if p.proof().is_secure()) {
        for r in records
            .iter()
            .filter(|r| r.record_type() == rtype || r.record_type() == RecordType::CNAME)
        {
            assert!(
                r.proof.is_secure() && !outside(&r.name),
                "secure from {r:?}"
            );
        }
    }
    let _ = answer.status();

    let _ = classify::mx_records(&records);
    let _ = classify::address_records(&records);
    let _ = classify::txt_records(&records);
    let addresses = classify::combine_addresses(&name, answer.clone(), ad.clone());
    let _ = addresses.status();
    let finding = answer.map(|r| classify::tlsa_records(&r)).into_finding();
    let _ = finding.to_string();
});
