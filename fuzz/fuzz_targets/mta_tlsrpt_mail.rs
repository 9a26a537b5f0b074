//! Fuzzes what the report inbox reads from a TLS-RPT report mail (RFC 8460
//! §5.3; any sender can mail one: untrusted): the MIME message, the report
//! part found in it, and that part parsed as a report.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_mta::tlsrpt_inbox::report_part;
use portcullis_policy::{ReportLimits, parse_report};

fuzz_target!(|data: &[u8]| {
    if let Ok(part) = report_part(data) {
        let limits = ReportLimits {
            max_received_bytes: 64 << 10,
            max_json_bytes: 256 << 10,
        };
        let _ = parse_report(&part, &limits);
    }
});
