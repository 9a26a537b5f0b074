//! One policy domain's daily report, built from its stored aggregate as the
//! RFC 8460 §4.4 JSON (the report model of `portcullis_policy`, shared with
//! the receiving side) and gzipped for `application/tlsrpt+gzip`. The
//! report id is derived from the day, the domain and the submitter, so a
//! report sent again (a retry, `ctl tls-report send`) keeps its id and a
//! receiver can tell it is the same report.

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use portcullis_policy::TlsRptPolicyType;
use portcullis_policy::tlsrpt_report::{
    DateRange, FailureDetail, PolicyDetails, PolicyReport, ReportDateTime, ResultType, Summary,
    TlsReport,
};

use super::counts::DomainDay;
use super::day::UtcDay;

/// Who sends the reports (`[tls-report]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reporting {
    /// `organization-name` of every report.
    pub organization_name: String,
    /// `contact-info`: an address or URI the receiver can write to.
    pub contact_info: String,
    /// The submitter domain (`TLS-Report-Submitter`, file names, ids).
    pub submitter: String,
}

/// A built report: the model, its JSON and its gzip.
#[derive(Debug, Clone)]
pub struct BuiltReport {
    pub day: UtcDay,
    pub domain: String,
    pub report: TlsReport,
    pub json: Vec<u8>,
    pub gzip: Vec<u8>,
}

impl BuiltReport {
    /// RFC 8460 §5.3 file name:
    /// `<submitter>!<policy domain>!<begin>!<end>.json.gz`.
    pub fn file_name(&self, submitter: &str) -> String {
        format!(
            "{submitter}!{}!{}!{}.json.gz",
            self.domain,
            self.report.date_range.start_datetime.unix_seconds(),
            self.report.date_range.end_datetime.unix_seconds()
        )
    }
}

fn policy_type(name: &str) -> TlsRptPolicyType {
    match name {
        "sts" => TlsRptPolicyType::Sts,
        "tlsa" => TlsRptPolicyType::Tlsa,
        _ => TlsRptPolicyType::NoPolicyFound,
    }
}

/// Builds the report of `domain` for `day`.
pub fn build(
    who: &Reporting,
    day: UtcDay,
    domain: &str,
    counts: &DomainDay,
) -> Result<BuiltReport, std::io::Error> {
    let start = day.start_unix() as i64;
    let report = TlsReport {
        organization_name: who.organization_name.clone(),
        date_range: DateRange {
            start_datetime: ReportDateTime::from_unix_seconds(start),
            end_datetime: ReportDateTime::from_unix_seconds(start + 86_399),
        },
        contact_info: who.contact_info.clone(),
        report_id: format!("{day}.{domain}@{}", who.submitter),
        policies: counts
            .policies
            .iter()
            .map(|(policy, c)| PolicyReport {
                policy: PolicyDetails {
                    policy_type: policy_type(&policy.policy_type),
                    policy_string: policy.policy_string.clone(),
                    policy_domain: domain.to_owned(),
                    mx_host: policy.mx_host.clone(),
                },
                summary: Summary {
                    total_successful_session_count: c.successful,
                    total_failure_session_count: c.failed,
                },
                failure_details: c
                    .failures
                    .iter()
                    .map(|(f, n)| FailureDetail {
                        result_type: ResultType::from_report_str(&f.result_type),
                        sending_mta_ip: f.sending_mta_ip,
                        receiving_mx_hostname: f.receiving_mx_hostname.clone(),
                        receiving_mx_helo: f.receiving_mx_helo.clone(),
                        receiving_ip: f.receiving_ip,
                        failed_session_count: *n,
                        additional_information: None,
                        failure_reason_code: None,
                    })
                    .collect(),
            })
            .collect(),
    };
    let json = serde_json::to_vec(&report).map_err(std::io::Error::other)?;
    let mut gz = GzEncoder::new(Vec::with_capacity(json.len() / 2), Compression::default());
    gz.write_all(&json)?;
    let gzip = gz.finish()?;
    Ok(BuiltReport {
        day,
        domain: domain.to_owned(),
        report,
        json,
        gzip,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlsrpt::counts::{FailureKey, PolicyKey, Session};
    use std::io::Read;

    #[test]
    fn the_report_has_rfc_8460_fields_and_round_trips_through_the_shared_parser() {
        let mut counts = DomainDay::default();
        let policy = PolicyKey {
            policy_type: "sts".into(),
            policy_string: vec!["version: STSv1".into(), "mode: testing".into()],
            mx_host: vec!["*.mx.example".into()],
        };
        for _ in 0..3 {
            counts.count(Session {
                policy: policy.clone(),
                failure: None,
            });
        }
        counts.count(Session {
            policy,
            failure: Some(FailureKey {
                result_type: "certificate-expired".into(),
                sending_mta_ip: Some("127.0.0.1".parse().unwrap()),
                receiving_mx_hostname: Some("mx1.mx.example".into()),
                receiving_mx_helo: None,
                receiving_ip: Some("127.0.0.5".parse().unwrap()),
            }),
        });
        let who = Reporting {
            organization_name: "Example Gateway".into(),
            contact_info: "mailto:tls@gw.example".into(),
            submitter: "gw.example".into(),
        };
        let day = UtcDay::parse("2026-12-01").unwrap();
        let built = build(&who, day, "mx.example", &counts).unwrap();
        let mut json = Vec::new();
        flate2::read::GzDecoder::new(&built.gzip[..])
            .read_to_end(&mut json)
            .unwrap();
        assert_eq!(json, built.json);
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(v["date-range"]["start-datetime"], "2026-12-01T00:00:00Z");
        assert_eq!(v["date-range"]["end-datetime"], "2026-12-01T23:59:59Z");
        assert_eq!(v["report-id"], "2026-12-01.mx.example@gw.example");
        let p = &v["policies"][0];
        assert_eq!(p["policy"]["policy-type"], "sts");
        assert_eq!(p["policy"]["mx-host"][0], "*.mx.example");
        assert_eq!(p["summary"]["total-successful-session-count"], 3);
        assert_eq!(p["summary"]["total-failure-session-count"], 1);
        assert_eq!(
            p["failure-details"][0]["result-type"],
            "certificate-expired"
        );
        assert_eq!(p["failure-details"][0]["receiving-ip"], "127.0.0.5");
        let parsed = portcullis_policy::parse_report(&built.gzip, &Default::default()).unwrap();
        assert_eq!(parsed, built.report);
        assert_eq!(
            built.file_name("gw.example"),
            "gw.example!mx.example!1796083200!1796169599.json.gz"
        );
    }
}
