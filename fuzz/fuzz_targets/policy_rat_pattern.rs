//! Fuzzes the RAT recipient pattern parser (operator config text) and the
//! RCPT domain check (network input: the domain part of `RCPT TO`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_policy::{ConnectionAction, Rat, RecipientPattern};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(p) = RecipientPattern::parse(text) {
        let again = RecipientPattern::parse(&p.to_string());
        assert_eq!(again.as_ref(), Ok(&p), "display form must re-parse");
    }
    let rat = Rat::new(
        ["example.com", ".example.org"]
            .iter()
            .filter_map(|s| RecipientPattern::parse(s).ok())
            .collect(),
    );
    let _ = rat.check(text, ConnectionAction::Accept);
    let _ = rat.check(text, ConnectionAction::Relay);
});
