//! Fuzzes the `_mta-sts` TXT record parser and record selection (DNS data:
//! untrusted). NUL bytes split the input into several TXT records.
//!
//! Without sanitizer hooks libFuzzer cannot see through string compares,
//! so when the first byte is even the rest is read as tokens of the
//! grammar (`v=STSv1`, `id=`, separators …) mixed with raw bytes; that
//! takes the parser past the version prefix.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_policy::mta_sts::StsTxtRecord;

const TOKENS: &[&[u8]] = &[
    b"v=STSv1",
    b";",
    b" ",
    b"\t",
    b"id=",
    b"=",
    b"20240101T000000Z",
    b"ext",
    b"_a.b-c",
    b"\0",
    b"v=STSv",
    b"ID=",
    b"x=y",
];

fn expand(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() * 4);
    for &b in data {
        match TOKENS.get(usize::from(b)) {
            Some(t) => out.extend_from_slice(t),
            None => out.push(b),
        }
    }
    out
}

fn check(data: &[u8]) {
    if let Ok(r) = StsTxtRecord::parse(data) {
        let again = StsTxtRecord::parse(r.to_string().as_bytes());
        assert_eq!(again.as_ref(), Ok(&r), "canonical form must re-parse");
        assert!((1..=32).contains(&r.id().len()));
    }
    let records: Vec<&[u8]> = data.split(|b| *b == 0).collect();
    let _ = StsTxtRecord::select(records.iter().copied());
}

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((mode, rest)) if mode % 2 == 0 => check(&expand(rest)),
        _ => check(data),
    }
});
