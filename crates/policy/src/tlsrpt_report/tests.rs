//! The report model against RFC 8460's example, malformed variants, and a
//! serialize → parse round trip over generated reports.

use std::io::Write;
use std::net::IpAddr;

use flate2::Compression;
use flate2::write::GzEncoder;
use proptest::prelude::*;

use super::*;

const APPENDIX_B: &str = include_str!("../../tests/fixtures/rfc8460-appendix-b.json");

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn rfc_8460_appendix_b_parses_plain_and_gzipped() {
    let limits = ReportLimits::default();
    let plain = parse_report(APPENDIX_B.as_bytes(), &limits).unwrap();
    let gzipped = parse_report(&gzip(APPENDIX_B.as_bytes()), &limits).unwrap();
    assert_eq!(plain, gzipped);
    assert_eq!(plain.organization_name, "Company-X");
    assert_eq!(plain.day(), "2016-04-01");
    let policy = &plain.policies[0];
    assert_eq!(policy.policy.policy_type, TlsRptPolicyType::Sts);
    assert_eq!(policy.policy.mx_host, ["*.mail.company-y.example"]);
    assert_eq!(policy.summary.total_failure_session_count, 303);
    let results: Vec<&str> = plain
        .failures()
        .map(|(_, f)| f.result_type.as_str())
        .collect();
    assert_eq!(
        results,
        [
            "certificate-expired",
            "starttls-not-supported",
            "validation-failure"
        ]
    );
    let third = &policy.failure_details[2];
    assert_eq!(
        third.failure_reason_code.as_deref(),
        Some("X509_V_ERR_PROOF_OF_POSSESSION")
    );
    assert_eq!(
        third.receiving_ip,
        Some("203.0.113.58".parse::<IpAddr>().unwrap())
    );
}

#[test]
fn serialization_uses_the_rfc_field_names_and_mx_host_array() {
    let report = parse_report(APPENDIX_B.as_bytes(), &ReportLimits::default()).unwrap();
    let value: serde_json::Value = serde_json::from_str(&report.to_json_pretty()).unwrap();
    let policy = &value["policies"][0];
    assert_eq!(
        policy["policy"]["mx-host"],
        serde_json::json!(["*.mail.company-y.example"])
    );
    assert_eq!(policy["summary"]["total-successful-session-count"], 5326);
    assert_eq!(
        policy["failure-details"][2]["failure-reason-code"],
        "X509_V_ERR_PROOF_OF_POSSESSION"
    );
    assert_eq!(
        value["date-range"]["start-datetime"],
        "2016-04-01T00:00:00Z"
    );
    for key in ["organization-name", "contact-info", "report-id"] {
        assert!(value[key].is_string(), "{key}");
    }
}

#[test]
fn an_unknown_result_type_is_kept_not_refused() {
    let json = APPENDIX_B.replace("certificate-expired", "quantum-decoherence");
    let report = parse_report(json.as_bytes(), &ReportLimits::default()).unwrap();
    let first = &report.policies[0].failure_details[0].result_type;
    assert_eq!(first, &ResultType::Other("quantum-decoherence".into()));
    assert!(report.to_json_pretty().contains("\"quantum-decoherence\""));
}

#[test]
fn errors_name_what_was_wrong() {
    let limits = ReportLimits::default();
    let truncated = &APPENDIX_B.as_bytes()[..APPENDIX_B.len() / 2];
    let err = parse_report(truncated, &limits).unwrap_err();
    assert!(
        matches!(err, ReportError::TruncatedJson { line, .. } if line > 1),
        "{err}"
    );
    assert!(err.to_string().starts_with("truncated JSON"), "{err}");

    let missing = APPENDIX_B.replace("\"report-id\"", "\"report-identifier\"");
    let err = parse_report(missing.as_bytes(), &limits).unwrap_err();
    assert!(
        err.to_string().contains("missing field `report-id`"),
        "{err}"
    );

    let bad_count = APPENDIX_B.replace(
        "\"failed-session-count\": 3",
        "\"failed-session-count\": -3",
    );
    let err = parse_report(bad_count.as_bytes(), &limits).unwrap_err();
    assert!(
        err.to_string()
            .contains("policies[0].failure-details[2].failed-session-count"),
        "{err}"
    );

    let bad_date = APPENDIX_B.replace("2016-04-01T23:59:59Z", "yesterday");
    let err = parse_report(bad_date.as_bytes(), &limits).unwrap_err();
    assert!(err.to_string().contains("date-range.end-datetime"), "{err}");
    assert!(err.to_string().contains("RFC 3339"), "{err}");

    let err = parse_report(b"{\"organization-name\": nope}", &limits).unwrap_err();
    assert!(matches!(err, ReportError::BadJson { line: 1, .. }), "{err}");

    let err = parse_report(b"", &limits).unwrap_err();
    assert!(matches!(err, ReportError::Empty));

    let backwards = APPENDIX_B.replace("2016-04-01T00:00:00Z", "2016-04-02T00:00:00Z");
    let err = parse_report(backwards.as_bytes(), &limits).unwrap_err();
    assert!(
        err.to_string()
            .contains("ends (2016-04-01T23:59:59Z) before it starts"),
        "{err}"
    );

    let trailing = format!("{APPENDIX_B} []");
    let err = parse_report(trailing.as_bytes(), &limits).unwrap_err();
    assert!(matches!(err, ReportError::BadJson { .. }), "{err}");
}

#[test]
fn corrupt_or_cut_gzip_is_bad_gzip() {
    let limits = ReportLimits::default();
    let gz = gzip(APPENDIX_B.as_bytes());
    let err = parse_report(&gz[..gz.len() - 12], &limits).unwrap_err();
    assert_eq!(err.kind(), "bad-gzip", "{err}");
    let mut flipped = gz.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0xff;
    let err = parse_report(&flipped, &limits).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            "bad-gzip" | "bad-json" | "truncated-json" | "not-a-report"
        ),
        "{err}"
    );
    let err = parse_report(&[0x1f, 0x8b, 0, 0], &limits).unwrap_err();
    assert_eq!(err.kind(), "bad-gzip", "{err}");
}

#[test]
fn a_gzip_bomb_stops_at_the_json_cap() {
    // 100 MB of spaces (valid leading JSON whitespace) gzip to ~100 kB.
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    let block = vec![b' '; 1 << 20];
    for _ in 0..100 {
        encoder.write_all(&block).unwrap();
    }
    let bomb = encoder.finish().unwrap();
    assert!(bomb.len() < 1 << 20);
    let limits = ReportLimits {
        max_received_bytes: 1 << 20,
        max_json_bytes: 1 << 20,
    };
    let err = parse_report(&bomb, &limits).unwrap_err();
    assert!(
        matches!(err, ReportError::JsonTooLarge { limit } if limit == 1 << 20),
        "{err}"
    );

    let err = parse_report(
        &bomb,
        &ReportLimits {
            max_received_bytes: 1000,
            ..limits
        },
    )
    .unwrap_err();
    assert!(matches!(err, ReportError::ReceivedTooLarge { .. }), "{err}");
}

fn domain() -> impl Strategy<Value = String> {
    "[a-z0-9]{1,12}(\\.[a-z0-9]{1,12}){0,3}"
}

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(IpAddr::from),
        any::<[u8; 16]>().prop_map(IpAddr::from),
    ]
}

fn result_type() -> impl Strategy<Value = ResultType> {
    prop_oneof![
        proptest::sample::select(TlsRptResult::ALL.to_vec()).prop_map(ResultType::Known),
        // A name RFC 8460 does not define: "x-" never starts a known one.
        "x-[a-z-]{1,20}".prop_map(ResultType::Other),
    ]
}

fn failure() -> impl Strategy<Value = FailureDetail> {
    (
        result_type(),
        proptest::option::of(ip()),
        proptest::option::of(domain()),
        proptest::option::of(".{0,30}"),
        proptest::option::of(ip()),
        any::<u64>(),
        proptest::option::of(".{0,40}"),
        proptest::option::of(".{0,40}"),
    )
        .prop_map(
            |(result_type, sending, mx, helo, receiving, count, info, code)| FailureDetail {
                result_type,
                sending_mta_ip: sending,
                receiving_mx_hostname: mx,
                receiving_mx_helo: helo,
                receiving_ip: receiving,
                failed_session_count: count,
                additional_information: info,
                failure_reason_code: code,
            },
        )
}

fn policy() -> impl Strategy<Value = PolicyReport> {
    (
        proptest::sample::select(vec![
            TlsRptPolicyType::Sts,
            TlsRptPolicyType::Tlsa,
            TlsRptPolicyType::NoPolicyFound,
        ]),
        proptest::collection::vec(".{0,40}", 0..4),
        domain(),
        proptest::collection::vec(domain(), 0..3),
        any::<(u64, u64)>(),
        proptest::collection::vec(failure(), 0..4),
    )
        .prop_map(
            |(policy_type, strings, domain, mx, (ok, failed), failures)| PolicyReport {
                policy: PolicyDetails {
                    policy_type,
                    policy_string: strings,
                    policy_domain: domain,
                    mx_host: mx,
                },
                summary: Summary {
                    total_successful_session_count: ok,
                    total_failure_session_count: failed,
                },
                failure_details: failures,
            },
        )
}

fn report() -> impl Strategy<Value = TlsReport> {
    (
        ".{0,30}",
        // 1970 to 9999, so the text keeps four year digits.
        0i64..253_402_300_000,
        0i64..1_000_000,
        ".{0,30}",
        ".{0,30}",
        proptest::collection::vec(policy(), 1..4),
    )
        .prop_map(|(org, start, length, contact, id, policies)| TlsReport {
            organization_name: org,
            date_range: DateRange {
                start_datetime: ReportDateTime::from_unix_seconds(start),
                end_datetime: ReportDateTime::from_unix_seconds(
                    (start + length).min(253_402_300_799),
                ),
            },
            contact_info: contact,
            report_id: id,
            policies,
        })
}

proptest! {
    #[test]
    fn serialize_then_parse_gives_the_same_report(report in report(), gzipped in any::<bool>()) {
        let json = report.to_json_pretty();
        let bytes = if gzipped { gzip(json.as_bytes()) } else { json.into_bytes() };
        let parsed = parse_report(&bytes, &ReportLimits::default());
        prop_assert_eq!(parsed.map_err(|e| e.to_string()), Ok(report));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_report(&bytes, &ReportLimits::default());
    }
}
