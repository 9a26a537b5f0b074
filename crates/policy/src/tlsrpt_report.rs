//! The RFC 8460 §4.4 aggregate report: the JSON a sending MTA mails or posts
//! to a domain's `rua` once a day, as Rust types that serialize to exactly
//! the RFC's field names and parse what other senders produce. One model
//! serves both directions: the gateway builds its own reports from it and
//! reads the reports other organisations send about our domains.
//!
//! Parsing is lenient where the RFC asks receivers to be: unknown fields are
//! ignored, an unknown `result-type` is kept as [`ResultType::Other`] (§4.3:
//! new types may be registered), and `mx-host` is read as a string or an
//! array (errata 6241 made it an array; the RFC's own example has a string).
//! It is strict where a wrong value would mislead the operator: dates must
//! be RFC 3339, counts non-negative integers, IP addresses well formed.
//! [`parse_report`] adds gzip detection and size caps for untrusted bytes.

use std::fmt;
use std::net::IpAddr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::tlsrpt::{TlsRptPolicyType, TlsRptResult};

mod datetime;
mod parse;

pub use datetime::{DateTimeError, ReportDateTime};
pub use parse::{ReportError, ReportLimits, parse_report};

/// One RFC 8460 §4.4 report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct TlsReport {
    /// The organisation that sent the report.
    pub organization_name: String,
    /// The period the report covers.
    pub date_range: DateRange,
    /// Who to contact about it (an address or URI).
    pub contact_info: String,
    /// The sender's unique identifier for this report.
    pub report_id: String,
    /// One entry per policy the sender applied.
    pub policies: Vec<PolicyReport>,
}

/// RFC 8460 `date-range`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DateRange {
    /// Start of the period (RFC 3339).
    pub start_datetime: ReportDateTime,
    /// End of the period (RFC 3339).
    pub end_datetime: ReportDateTime,
}

/// One element of `policies`: the policy applied, its session counts and
/// the failures seen under it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct PolicyReport {
    /// The policy the sender applied.
    pub policy: PolicyDetails,
    /// Successful and failed session counts.
    pub summary: Summary,
    /// Failures by kind, peer and sender address.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failure_details: Vec<FailureDetail>,
}

/// RFC 8460 `policy`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct PolicyDetails {
    /// `tlsa`, `sts` or `no-policy-found`.
    pub policy_type: TlsRptPolicyType,
    /// The policy as the sender saw it: MTA-STS policy lines or TLSA
    /// records in presentation format; empty for `no-policy-found`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policy_string: Vec<String>,
    /// The domain the policy is for.
    pub policy_domain: String,
    /// The MX host patterns of an MTA-STS policy (errata 6241: an array;
    /// a single string is accepted when reading).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "string_or_array"
    )]
    pub mx_host: Vec<String>,
}

/// RFC 8460 `summary`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Summary {
    /// Sessions that negotiated TLS as the policy required.
    pub total_successful_session_count: u64,
    /// Sessions that failed.
    pub total_failure_session_count: u64,
}

/// One element of `failure-details`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct FailureDetail {
    /// What went wrong.
    pub result_type: ResultType,
    /// The sending MTA's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sending_mta_ip: Option<IpAddr>,
    /// The MX host name the sender tried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiving_mx_hostname: Option<String>,
    /// The name the MX gave in its greeting or EHLO answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiving_mx_helo: Option<String>,
    /// The MX's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiving_ip: Option<IpAddr>,
    /// How many sessions failed this way.
    pub failed_session_count: u64,
    /// A URI with more information.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_information: Option<String>,
    /// A free-text reason (e.g. an OpenSSL error name). RFC 8460's own
    /// example spells it `failure-error-code`; that spelling is read too.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "failure-error-code"
    )]
    pub failure_reason_code: Option<String>,
}

/// A `result-type`: one RFC 8460 §4.3 defines, or a newer one this version
/// does not know, kept by name so the report still parses and shows.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResultType {
    /// A result type RFC 8460 defines.
    Known(TlsRptResult),
    /// A result type registered later (never the spelling of a known one).
    Other(String),
}

impl ResultType {
    /// The report spelling.
    pub fn as_str(&self) -> &str {
        match self {
            ResultType::Known(result) => result.as_str(),
            ResultType::Other(name) => name,
        }
    }

    /// The result type for a report spelling.
    pub fn from_report_str(name: &str) -> Self {
        match TlsRptResult::from_report_str(name) {
            Some(known) => ResultType::Known(known),
            None => ResultType::Other(name.to_owned()),
        }
    }
}

impl From<TlsRptResult> for ResultType {
    fn from(result: TlsRptResult) -> Self {
        ResultType::Known(result)
    }
}

impl fmt::Display for ResultType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ResultType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ResultType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        if name.is_empty() {
            return Err(de::Error::invalid_value(
                de::Unexpected::Str(&name),
                &"a result type name",
            ));
        }
        Ok(ResultType::from_report_str(&name))
    }
}

/// `mx-host` as RFC 8460 printed it (one string) or as errata 6241 fixed it
/// (an array of strings).
fn string_or_array<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    struct OneOrMany;
    impl<'de> Visitor<'de> for OneOrMany {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an MX host pattern or an array of them")
        }
        fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
            Ok(vec![value.to_owned()])
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut hosts = Vec::new();
            while let Some(host) = seq.next_element::<String>()? {
                hosts.push(host);
            }
            Ok(hosts)
        }
    }
    deserializer.deserialize_any(OneOrMany)
}

impl TlsReport {
    /// The UTC day the report covers (the day of its start), `YYYY-MM-DD`.
    pub fn day(&self) -> String {
        self.date_range.start_datetime.utc_day()
    }

    /// Every failure in the report with the policy it was counted under.
    pub fn failures(&self) -> impl Iterator<Item = (&PolicyDetails, &FailureDetail)> {
        self.policies
            .iter()
            .flat_map(|p| p.failure_details.iter().map(move |f| (&p.policy, f)))
    }

    /// Sum of the successful and of the failed session counts over all
    /// policies (saturating: a hostile report cannot overflow them).
    pub fn totals(&self) -> Summary {
        self.policies.iter().fold(
            Summary {
                total_successful_session_count: 0,
                total_failure_session_count: 0,
            },
            |acc, p| Summary {
                total_successful_session_count: acc
                    .total_successful_session_count
                    .saturating_add(p.summary.total_successful_session_count),
                total_failure_session_count: acc
                    .total_failure_session_count
                    .saturating_add(p.summary.total_failure_session_count),
            },
        )
    }

    /// The report as pretty-printed JSON (the shape `show` prints and the
    /// store keeps).
    pub fn to_json_pretty(&self) -> String {
        // Serializing these types cannot fail: every map key is a string
        // and no value is a float.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests;
