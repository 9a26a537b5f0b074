//! Every error this crate returns. Grouped by what was wrong: a name, a
//! pattern in operator config, a whole configuration (with the entry and
//! field that is at fault), or a document fetched from the network
//! (MTA-STS TXT record or policy file). Messages are written for a mail
//! operator and quote the offending text.

use thiserror::Error;

/// A host or domain name that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum NameError {
    /// Nothing but perhaps a dot.
    #[error("empty domain name")]
    Empty,
    /// `a..b`, `.a` and the like.
    #[error("domain name {0:?} has an empty label")]
    EmptyLabel(String),
    /// Not a valid host name after IDNA mapping (characters outside
    /// letters-digits-hyphens, a label over 63 octets, a name over 253).
    #[error(
        "{0:?} is not a valid host or domain name (letters, digits and hyphens, labels of 1-63 characters, 253 at most; IDN is allowed)"
    )]
    Invalid(String),
    /// The last label is all digits: an address, not a name.
    #[error(
        "{0:?} is not a host or domain name: its last label is all digits (write IP addresses as such)"
    )]
    Numeric(String),
    /// `*.example.com` where only `.example.com` is understood.
    #[error(
        "{0:?}: wildcards are not used here; write .example.com to match every name below example.com"
    )]
    Wildcard(String),
}

/// A sender-group, recipient or STARTTLS-list pattern in config text that
/// cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("pattern {input:?}: {reason}")]
#[non_exhaustive]
pub struct PatternError {
    /// The text as written.
    pub input: String,
    /// What is wrong with it, and what would be accepted.
    pub reason: String,
}

impl PatternError {
    pub(crate) fn new(input: &str, reason: impl Into<String>) -> Self {
        PatternError {
            input: input.chars().take(200).collect(),
            reason: reason.into(),
        }
    }
}

/// One problem found while validating configuration: `location` names the
/// entry and field (`listener "public" hat.sender-group[2] "RELAY" match[0]`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{location}: {message}")]
#[non_exhaustive]
pub struct ConfigError {
    /// Which entry and field.
    pub location: String,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(location: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            location: location.into(),
            message: message.into(),
        }
    }
}

/// Every problem found in one validation pass (validation does not stop at
/// the first error, so an operator can fix them all at once).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{} configuration error(s):\n{}", .0.len(), render(.0))]
pub struct ConfigErrors(pub Vec<ConfigError>);

fn render(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(|e| format!("  - {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Why an `_mta-sts` TXT answer gives no MTA-STS policy (RFC 8461 §3.1).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum MtaStsTxtError {
    /// No record begins with `v=STSv1`.
    #[error("no _mta-sts TXT record starts with v=STSv1")]
    NoRecord,
    /// More than one record begins with `v=STSv1`: RFC 8461 §3.1 says to
    /// assume the domain has no policy.
    #[error("{0} _mta-sts TXT records start with v=STSv1; RFC 8461 requires exactly one")]
    MultipleRecords(usize),
    /// The record is not valid per the RFC grammar.
    #[error("_mta-sts TXT record is invalid: {0}")]
    Syntax(String),
}

/// Why an MTA-STS policy file is invalid (RFC 8461 §3.2).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum MtaStsPolicyError {
    /// Larger than the 64 KiB RFC 8461 §3.3 lets senders refuse.
    #[error("policy file is {0} bytes; at most 65536 are accepted")]
    TooLarge(usize),
    /// Not UTF-8.
    #[error("policy file is not UTF-8 text")]
    NotUtf8,
    /// A line that is not `key: value`.
    #[error("line {line}: {reason}")]
    Syntax {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A required key is absent.
    #[error("policy file has no {0} field")]
    Missing(&'static str),
    /// `version` is not `STSv1`.
    #[error("policy version {0:?} is not STSv1")]
    Version(String),
    /// `mode` is not none, testing or enforce.
    #[error("policy mode {0:?} is not none, testing or enforce")]
    Mode(String),
    /// `max_age` is not 1-10 digits or exceeds 31557600.
    #[error("max_age {0:?} is not a number of seconds from 0 to 31557600")]
    MaxAge(String),
    /// An `mx` value is not a domain or `*.` + domain.
    #[error("mx {value:?}: {reason}")]
    Mx {
        /// The value as written.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// Mode testing or enforce with no `mx` line.
    #[error("mode {0} requires at least one mx field")]
    NoMx(&'static str),
}
