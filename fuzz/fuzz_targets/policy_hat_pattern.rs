//! Fuzzes the HAT sender-group pattern parser (operator config text) and
//! matching of the parsed pattern.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_policy::{ClientFacts, DomainName, SenderPattern};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(p) = SenderPattern::parse(text) {
        let again = SenderPattern::parse(&p.to_string());
        assert_eq!(again.as_ref(), Ok(&p), "display form must re-parse");
        for ip in ["192.0.2.1", "::ffff:192.0.2.1", "2001:db8::1"] {
            if let Ok(ip) = ip.parse() {
                let client = ClientFacts {
                    ip,
                    fcrdns: DomainName::parse("mail.example.com").ok(),
                };
                let _ = p.matches(&client);
            }
        }
    }
});
