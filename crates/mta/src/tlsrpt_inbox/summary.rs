//! What the received reports say, arranged for the operator whose partner
//! says "we could not reach you over TLS": one line per report (who sent
//! it, which day, sessions that worked and failed) and the failures summed
//! per day, sending organisation, policy domain, our MX and result type.
//! `portcullis tls-report list`, `GET /api/tls-reports` and the status
//! page all show this one value.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use portcullis_policy::TlsReport;
use serde::{Deserialize, Serialize};

use super::store::{RefusedReport, StoredReport};

/// One received report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ReportRow {
    /// Store id (`tls-report show ID`).
    pub id: String,
    /// The UTC day the report covers.
    pub day: String,
    /// The sending organisation.
    pub organization: String,
    /// The policy domains it reports on.
    pub policy_domains: Vec<String>,
    /// Sessions that negotiated TLS as required.
    pub successful: u64,
    /// Sessions that failed.
    pub failed: u64,
    /// When it arrived (Unix seconds).
    pub received_at: u64,
    /// `smtp` or `https`.
    pub via: String,
}

/// Failed sessions of one kind, summed over reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct FailureRow {
    /// The UTC day.
    pub day: String,
    /// The sending organisation.
    pub organization: String,
    /// Our domain whose policy applied.
    pub policy_domain: String,
    /// Our MX as the sender named it (`receiving-mx-hostname`), else its
    /// address, else `(not given)`.
    pub our_mx: String,
    /// Our addresses the sender reached (`receiving-ip`).
    pub receiving_ips: Vec<String>,
    /// The result type (`certificate-expired`, …).
    pub result_type: String,
    /// Failed sessions.
    pub sessions: u64,
}

/// Everything the inbox holds, summarised.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Summary {
    /// The reports, newest day first.
    pub reports: Vec<ReportRow>,
    /// The failures, newest day first.
    pub failures: Vec<FailureRow>,
    /// Refused reports, newest first.
    pub refused: Vec<RefusedReport>,
    /// Stored files that did not read back.
    pub damaged: Vec<String>,
}

/// Which reports to summarise (empty: all).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SummaryFilter {
    /// Only this UTC day (`YYYY-MM-DD`).
    pub day: Option<String>,
    /// Only this policy domain (case-insensitive).
    pub domain: Option<String>,
    /// Only this organisation (case-insensitive).
    pub organization: Option<String>,
}

impl SummaryFilter {
    fn keeps(&self, report: &TlsReport) -> bool {
        self.day.as_ref().is_none_or(|d| *d == report.day())
            && self
                .organization
                .as_ref()
                .is_none_or(|o| o.eq_ignore_ascii_case(&report.organization_name))
    }

    fn keeps_domain(&self, domain: &str) -> bool {
        self.domain.as_ref().is_none_or(|d| {
            d.trim_end_matches('.')
                .eq_ignore_ascii_case(domain.trim_end_matches('.'))
        })
    }
}

/// Summarises stored reports.
pub fn summarize(
    reports: &[(StoredReport, TlsReport)],
    refused: Vec<RefusedReport>,
    damaged: Vec<String>,
    filter: &SummaryFilter,
) -> Summary {
    type Key = (String, String, String, String, String);
    let mut failures: BTreeMap<Key, (u64, BTreeSet<String>)> = BTreeMap::new();
    let mut rows = Vec::new();
    for (stored, report) in reports.iter().filter(|(_, r)| filter.keeps(r)) {
        let policies: Vec<_> = report
            .policies
            .iter()
            .filter(|p| filter.keeps_domain(&p.policy.policy_domain))
            .collect();
        if policies.is_empty() {
            continue;
        }
        let day = report.day();
        let (mut successful, mut failed) = (0u64, 0u64);
        for p in &policies {
            successful = successful.saturating_add(p.summary.total_successful_session_count);
            failed = failed.saturating_add(p.summary.total_failure_session_count);
            for f in &p.failure_details {
                let our_mx = f
                    .receiving_mx_hostname
                    .clone()
                    .or_else(|| f.receiving_ip.map(|ip| ip.to_string()))
                    .unwrap_or_else(|| "(not given)".to_owned());
                let entry = failures
                    .entry((
                        day.clone(),
                        report.organization_name.clone(),
                        p.policy.policy_domain.to_ascii_lowercase(),
                        our_mx,
                        f.result_type.to_string(),
                    ))
                    .or_default();
                entry.0 = entry.0.saturating_add(f.failed_session_count);
                if let Some(ip) = f.receiving_ip {
                    entry.1.insert(ip.to_string());
                }
            }
        }
        let mut domains: Vec<String> = policies
            .iter()
            .map(|p| p.policy.policy_domain.to_ascii_lowercase())
            .collect();
        domains.dedup();
        rows.push(ReportRow {
            id: stored.id.clone(),
            day,
            organization: report.organization_name.clone(),
            policy_domains: domains,
            successful,
            failed,
            received_at: stored.received_at,
            via: stored.source.via.clone(),
        });
    }
    rows.sort_by(|a, b| {
        b.day
            .cmp(&a.day)
            .then_with(|| a.organization.cmp(&b.organization))
            .then_with(|| a.id.cmp(&b.id))
    });
    let mut failures: Vec<FailureRow> = failures
        .into_iter()
        .map(
            |((day, organization, policy_domain, our_mx, result_type), (sessions, ips))| {
                FailureRow {
                    day,
                    organization,
                    policy_domain,
                    our_mx,
                    receiving_ips: ips.into_iter().collect(),
                    result_type,
                    sessions,
                }
            },
        )
        .collect();
    // Newest day first; within a day the map's order (organisation, domain,
    // MX, result type).
    failures.sort_by(|a, b| b.day.cmp(&a.day));
    let mut refused = refused;
    refused.reverse();
    Summary {
        reports: rows,
        failures,
        refused,
        damaged,
    }
}

impl Summary {
    /// The text `portcullis tls-report list` prints.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        if self.reports.is_empty() {
            out.push_str("No TLS reports received.\n");
        } else {
            out.push_str("Reports received:\n");
            let mut table = vec![[
                "DAY".to_owned(),
                "ORGANISATION".to_owned(),
                "POLICY DOMAIN".to_owned(),
                "SUCCESSFUL".to_owned(),
                "FAILED".to_owned(),
                "VIA".to_owned(),
                "ID".to_owned(),
            ]];
            for r in &self.reports {
                table.push([
                    r.day.clone(),
                    r.organization.clone(),
                    r.policy_domains.join(","),
                    r.successful.to_string(),
                    r.failed.to_string(),
                    r.via.clone(),
                    r.id.clone(),
                ]);
            }
            push_table(&mut out, &table);
        }
        if !self.failures.is_empty() {
            out.push_str("\nFailed sessions by sending organisation, our MX and result type:\n");
            let mut table = vec![[
                "DAY".to_owned(),
                "ORGANISATION".to_owned(),
                "POLICY DOMAIN".to_owned(),
                "OUR MX".to_owned(),
                "RECEIVING IP".to_owned(),
                "RESULT TYPE".to_owned(),
                "SESSIONS".to_owned(),
            ]];
            for f in &self.failures {
                table.push([
                    f.day.clone(),
                    f.organization.clone(),
                    f.policy_domain.clone(),
                    f.our_mx.clone(),
                    if f.receiving_ips.is_empty() {
                        "-".to_owned()
                    } else {
                        f.receiving_ips.join(",")
                    },
                    f.result_type.clone(),
                    f.sessions.to_string(),
                ]);
            }
            push_table(&mut out, &table);
        }
        if !self.refused.is_empty() {
            let _ = writeln!(
                out,
                "\nRefused reports ({}; bytes kept in tls-reports/refused/ID.data):",
                self.refused.len()
            );
            for r in &self.refused {
                let _ = writeln!(
                    out,
                    "  {}  {} via {} from {}: {}",
                    r.id,
                    crate::control::utc(r.received_at),
                    r.source.via,
                    r.source.peer,
                    r.reason
                );
            }
        }
        for d in &self.damaged {
            let _ = writeln!(out, "unreadable stored report: {d}");
        }
        out
    }
}

/// Columns padded to their widest cell, two spaces apart; text is shown
/// with control characters replaced (it comes from senders).
fn push_table<const N: usize>(out: &mut String, rows: &[[String; N]]) {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect()
    };
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| clean(c)).collect())
        .collect();
    let mut widths = [0usize; N];
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    for r in &rows {
        let mut line = String::new();
        for (i, (c, w)) in r.iter().zip(widths).enumerate() {
            if i + 1 == N {
                line.push_str(c);
            } else {
                let _ = write!(line, "{c:<w$}  ");
            }
        }
        out.push_str("  ");
        out.push_str(line.trim_end());
        out.push('\n');
    }
}
