//! Fuzzes the MTA-STS policy file parser (fetched over HTTPS from the
//! recipient's domain: untrusted) and MX matching against its patterns.
//!
//! When the first byte is even the rest is read as tokens of the grammar
//! (keys, values, line ends) mixed with raw bytes, so the fuzzer reaches
//! the semantic checks without guessing `version: STSv1` byte by byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_policy::DomainName;
use portcullis_policy::mta_sts::{MAX_MAX_AGE, StsMode, StsPolicy};

const TOKENS: &[&str] = &[
    "version",
    "mode",
    "max_age",
    "mx",
    ":",
    " ",
    "\t",
    "\n",
    "\r\n",
    "\r",
    "STSv1",
    "enforce",
    "testing",
    "none",
    "*.",
    "example.com",
    "mx1.",
    "31557600",
    "31557601",
    "0",
    "ü",
    ".",
    "-",
    "xn--bcher-kva",
    "version: STSv1\n",
    "mode: enforce\n",
    "max_age: 86400\n",
    "mx: ",
];

fn expand(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() * 4);
    for &b in data {
        match TOKENS.get(usize::from(b)) {
            Some(t) => out.extend_from_slice(t.as_bytes()),
            None => out.push(b),
        }
    }
    out
}

fn check(data: &[u8]) {
    if let Ok(p) = StsPolicy::parse(data) {
        assert!(p.max_age() <= MAX_MAX_AGE);
        assert!(p.mode() == StsMode::None || !p.mx().is_empty());
        let again = StsPolicy::parse(p.to_string().as_bytes());
        assert_eq!(again.as_ref(), Ok(&p), "serialised policy must re-parse");
        if let Ok(mx) = DomainName::parse("mx1.example.com") {
            let _ = p.allows_mx(&mx);
        }
        for m in p.mx() {
            // Every pattern's base is itself a valid name.
            let base = m.to_string();
            assert!(
                DomainName::parse(base.trim_start_matches("*.")).is_ok(),
                "{base}"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((mode, rest)) if mode % 2 == 0 => check(&expand(rest)),
        _ => check(data),
    }
});
