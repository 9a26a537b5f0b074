//! Fuzzes the RFC 8460 report parser (mail attachments and HTTPS posts from
//! any sender: untrusted). Gzip is recognised by its magic number, so the
//! same input space covers both encodings. A report that parses must
//! serialize and parse back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_policy::{ReportLimits, parse_report};

fuzz_target!(|data: &[u8]| {
    // Small caps keep each run fast and exercise the "too large" paths.
    let limits = ReportLimits {
        max_received_bytes: 64 << 10,
        max_json_bytes: 256 << 10,
    };
    if let Ok(report) = parse_report(data, &limits) {
        let json = report.to_json_pretty();
        let again = parse_report(json.as_bytes(), &ReportLimits::default())
            .expect("a parsed report serializes to a report that parses");
        assert_eq!(again, report);
        let _ = report.totals();
        let _ = report.day();
    }
});
