//! Fuzzes the MTA-STS policy file parser (fetched over HTTPS from the
//! recipient's domain: untrusted) and MX matching against its patterns.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_policy::DomainName;
use portcullis_policy::mta_sts::{MAX_MAX_AGE, StsMode, StsPolicy};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = StsPolicy::parse(data) {
        assert!(p.max_age() <= MAX_MAX_AGE);
        assert!(p.mode() == StsMode::None || !p.mx().is_empty());
        let again = StsPolicy::parse(p.to_string().as_bytes());
        assert_eq!(again.as_ref(), Ok(&p), "serialised policy must re-parse");
        if let Ok(mx) = DomainName::parse("mx1.example.com") {
            let _ = p.allows_mx(&mx);
        }
        for m in p.mx() {
            // Every pattern's own base name is a valid name.
            let _ = DomainName::parse(m.to_string().trim_start_matches("*.")).map_err(|e| panic!("{m}: {e}"));
        }
    }
});
