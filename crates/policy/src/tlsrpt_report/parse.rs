//! Reading a TLS-RPT report from untrusted bytes: gzip (`application/
//! tlsrpt+gzip`, recognised by its magic number, not by what the sender
//! claims) or plain JSON, with a cap on the bytes received and another on the
//! JSON they expand to. Decompression streams into a buffer that stops at
//! the cap, so a gzip bomb costs at most the cap in memory and time. Every
//! error names what was wrong and where, for the operator who reads why a
//! partner's report was refused.

use std::io::Read;

use flate2::read::MultiGzDecoder;

use super::TlsReport;

/// Size caps for one report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReportLimits {
    /// Most bytes accepted as received (gzip or plain).
    pub max_received_bytes: u64,
    /// Most bytes of JSON accepted (after decompression).
    pub max_json_bytes: u64,
}

impl Default for ReportLimits {
    /// 5 MiB received, 50 MiB of JSON: a busy sender's daily report for a
    /// domain is kilobytes; these leave room for thousands of failure
    /// details without letting one report fill a disk or memory.
    fn default() -> Self {
        ReportLimits {
            max_received_bytes: 5 << 20,
            max_json_bytes: 50 << 20,
        }
    }
}

/// Why a report was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// More bytes arrived than `max_received_bytes`.
    #[error("report too large: {size} bytes received, the limit is {limit}")]
    ReceivedTooLarge {
        /// Bytes received.
        size: u64,
        /// The cap.
        limit: u64,
    },
    /// The gzip stream expands past `max_json_bytes`.
    #[error("report too large: the gzip data expands to more than {limit} bytes of JSON")]
    JsonTooLarge {
        /// The cap.
        limit: u64,
    },
    /// Nothing was received.
    #[error("empty report: no bytes received")]
    Empty,
    /// The gzip stream is corrupt or cut short.
    #[error("bad gzip data after {decompressed} bytes of output: {reason}")]
    BadGzip {
        /// Bytes decompressed before the error.
        decompressed: u64,
        /// What flate2 reported.
        reason: String,
    },
    /// The JSON ends before the report does.
    #[error("truncated JSON: the report ends early at line {line}, column {column}")]
    TruncatedJson {
        /// 1-based line of the end.
        line: usize,
        /// 1-based column of the end.
        column: usize,
    },
    /// The text is not JSON.
    #[error("bad JSON at line {line}, column {column}: {reason}")]
    BadJson {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the JSON parser said.
        reason: String,
    },
    /// Valid JSON, but not an RFC 8460 report: a field is missing, has
    /// the wrong type or an invalid value.
    #[error("not an RFC 8460 report: at {path}: {reason}")]
    NotAReport {
        /// Where in the report, e.g. `policies[0].summary`.
        path: String,
        /// What was wrong there (it names a missing field).
        reason: String,
    },
    /// The fields parse but contradict each other.
    #[error("not an RFC 8460 report: {0}")]
    Inconsistent(String),
}

impl ReportError {
    /// A short stable word for the kind of error (for counters and for the
    /// name of the refused-report file).
    pub fn kind(&self) -> &'static str {
        match self {
            ReportError::ReceivedTooLarge { .. } | ReportError::JsonTooLarge { .. } => "too-large",
            ReportError::Empty => "empty",
            ReportError::BadGzip { .. } => "bad-gzip",
            ReportError::TruncatedJson { .. } => "truncated-json",
            ReportError::BadJson { .. } => "bad-json",
            ReportError::NotAReport { .. } | ReportError::Inconsistent(_) => "not-a-report",
        }
    }
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Parses one report from the bytes a sender mailed or posted.
pub fn parse_report(bytes: &[u8], limits: &ReportLimits) -> Result<TlsReport, ReportError> {
    let size = bytes.len() as u64;
    if size > limits.max_received_bytes {
        return Err(ReportError::ReceivedTooLarge {
            size,
            limit: limits.max_received_bytes,
        });
    }
    if bytes.is_empty() {
        return Err(ReportError::Empty);
    }
    if bytes.starts_with(&GZIP_MAGIC) {
        let json = gunzip_capped(bytes, limits.max_json_bytes)?;
        parse_json(&json)
    } else {
        if size > limits.max_json_bytes {
            return Err(ReportError::JsonTooLarge {
                limit: limits.max_json_bytes,
            });
        }
        parse_json(bytes)
    }
}

/// Decompresses at most `limit` bytes (one more is read to tell "exactly
/// the limit" from "past it").
fn gunzip_capped(bytes: &[u8], limit: u64) -> Result<Vec<u8>, ReportError> {
    let mut json = Vec::new();
    let mut reader = MultiGzDecoder::new(bytes).take(limit.saturating_add(1));
    if let Err(e) = reader.read_to_end(&mut json) {
        return Err(ReportError::BadGzip {
            decompressed: json.len() as u64,
            reason: e.to_string(),
        });
    }
    if json.len() as u64 > limit {
        return Err(ReportError::JsonTooLarge { limit });
    }
    Ok(json)
}

fn parse_json(json: &[u8]) -> Result<TlsReport, ReportError> {
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    let report: TlsReport = match serde_path_to_error::deserialize(&mut deserializer) {
        Ok(report) => report,
        Err(e) => return Err(classify(e)),
    };
    if let Err(e) = deserializer.end() {
        return Err(classify_plain(e));
    }
    check_consistency(&report)?;
    Ok(report)
}

fn classify(e: serde_path_to_error::Error<serde_json::Error>) -> ReportError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    match inner.classify() {
        serde_json::error::Category::Data => ReportError::NotAReport {
            path: if path == "." {
                "the top level".to_owned()
            } else {
                path
            },
            reason: inner.to_string(),
        },
        _ => classify_plain(inner),
    }
}

fn classify_plain(e: serde_json::Error) -> ReportError {
    let (line, column) = (e.line(), e.column());
    match e.classify() {
        serde_json::error::Category::Eof => ReportError::TruncatedJson { line, column },
        _ => ReportError::BadJson {
            line,
            column,
            // serde_json appends " at line L column C"; it is in our fields.
            reason: strip_position(&e.to_string()),
        },
    }
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

/// What serde cannot check: a report needs a policy, and its period must
/// not end before it starts.
fn check_consistency(report: &TlsReport) -> Result<(), ReportError> {
    if report.policies.is_empty() {
        return Err(ReportError::Inconsistent(
            "\"policies\" is empty: a report covers at least one policy".to_owned(),
        ));
    }
    let range = &report.date_range;
    if range.end_datetime.unix_seconds() < range.start_datetime.unix_seconds() {
        return Err(ReportError::Inconsistent(format!(
            "date-range ends ({}) before it starts ({})",
            range.end_datetime, range.start_datetime
        )));
    }
    Ok(())
}
