//! The inbox on a real directory: stored, replaced, refused and kept
//! aside, read back after the inbox is gone, and summarised.

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use portcullis_policy::ReportLimits;

use super::*;

const APPENDIX_B: &str = include_str!("../../../policy/tests/fixtures/rfc8460-appendix-b.json");

fn inbox(dir: &Path, limits: ReportLimits) -> ReportInbox {
    ReportInbox::open(
        dir,
        InboxSettings {
            addresses: vec!["tlsrpt@example.com".into()],
            https: true,
            limits,
        },
    )
    .unwrap()
}

fn source() -> ReportSource {
    ReportSource {
        via: "smtp".into(),
        peer: "192.0.2.1".into(),
        detail: "test".into(),
    }
}

#[test]
fn a_report_is_stored_once_and_reads_back_as_sent() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = inbox(dir.path(), ReportLimits::default());
    assert!(inbox.is_inbox_address("TLSRPT@example.COM"));
    assert!(!inbox.is_inbox_address("other@example.com"));
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(APPENDIX_B.as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    let Intake::Stored { id, replaced, .. } = inbox.take(&gz, &source()).unwrap() else {
        panic!("not stored");
    };
    assert!(!replaced);
    let Intake::Stored {
        id: again,
        replaced,
        ..
    } = inbox.take(APPENDIX_B.as_bytes(), &source()).unwrap()
    else {
        panic!("not stored");
    };
    assert_eq!((again.as_str(), replaced), (id.as_str(), true));
    drop(inbox);
    let store = ReportStore::at(dir.path());
    let (reports, damaged) = store.reports();
    assert_eq!(reports.len(), 1);
    assert!(damaged.is_empty());
    let (stored, report) = store.report(&id).unwrap();
    assert_eq!(report.organization_name, "Company-X");
    // Kept as sent: the RFC example's own spelling of the reason field.
    assert_eq!(
        stored.report["policies"][0]["failure-details"][2]["failure-error-code"],
        "X509_V_ERR_PROOF_OF_POSSESSION"
    );
    assert!(store.report("../received/x").is_err());
    assert!(
        store
            .report("0000000000000000")
            .unwrap_err()
            .contains("no stored TLS report")
    );
}

#[test]
fn refused_reports_keep_their_bytes_within_the_cap_and_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let limits = ReportLimits {
        max_received_bytes: 64,
        max_json_bytes: 1024,
    };
    let inbox = inbox(dir.path(), limits);
    let truncated = b"{\"organization-name\": \"x\", ";
    let Intake::Refused { id, reason } = inbox.take(truncated, &source()).unwrap() else {
        panic!("stored a truncated report");
    };
    assert!(reason.starts_with("truncated JSON"), "{reason}");
    assert_eq!(
        std::fs::read(inbox.store().refused_data_path(&id)).unwrap(),
        truncated
    );
    let big = vec![b' '; 65];
    let Intake::Refused { id: big_id, reason } = inbox.take(&big, &source()).unwrap() else {
        panic!("stored an oversized report");
    };
    assert!(
        reason.contains("65 bytes received, the limit is 64"),
        "{reason}"
    );
    assert!(!inbox.store().refused_data_path(&big_id).exists());
    let refused = inbox.store().refused();
    let kinds: Vec<(&str, u64)> = refused
        .iter()
        .map(|r| (r.kind.as_str(), r.kept_bytes))
        .collect();
    assert_eq!(
        kinds,
        [("truncated-json", truncated.len() as u64), ("too-large", 0)]
    );
}

#[test]
fn the_summary_sums_failures_per_day_organisation_mx_and_result() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = inbox(dir.path(), ReportLimits::default());
    let second = APPENDIX_B.replace("5065427c-23d3", "another-report");
    for r in [APPENDIX_B, second.as_str()] {
        assert!(matches!(
            inbox.take(r.as_bytes(), &source()).unwrap(),
            Intake::Stored { .. }
        ));
    }
    let (reports, damaged) = inbox.store().reports();
    let all = summarize(&reports, Vec::new(), damaged, &SummaryFilter::default());
    assert_eq!(all.reports.len(), 2);
    let expired = all
        .failures
        .iter()
        .find(|f| f.result_type == "certificate-expired")
        .unwrap();
    assert_eq!(
        (expired.our_mx.as_str(), expired.sessions),
        ("mx1.mail.company-y.example", 200)
    );
    let no_mx = all
        .failures
        .iter()
        .find(|f| f.result_type == "validation-failure")
        .unwrap();
    assert_eq!(no_mx.our_mx, "203.0.113.58");
    assert!(
        all.to_text().contains("certificate-expired     200"),
        "{}",
        all.to_text()
    );
    for filter in [
        SummaryFilter {
            day: Some("2016-04-02".into()),
            ..Default::default()
        },
        SummaryFilter {
            domain: Some("example.org".into()),
            ..Default::default()
        },
        SummaryFilter {
            organization: Some("Company-Y".into()),
            ..Default::default()
        },
    ] {
        let none = summarize(&reports, Vec::new(), Vec::new(), &filter);
        assert!(
            none.reports.is_empty() && none.failures.is_empty(),
            "{filter:?}"
        );
    }
    let kept = summarize(
        &reports,
        Vec::new(),
        Vec::new(),
        &SummaryFilter {
            day: Some("2016-04-01".into()),
            domain: Some("Company-Y.example.".into()),
            organization: Some("company-x".into()),
        },
    );
    assert_eq!(kept.reports.len(), 2);
}
