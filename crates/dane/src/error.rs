//! Errors for reading TLSA records and certificates: what was wrong and where.
//!
//! Verification outcomes are not errors: they are [`Verdict`](crate::Verdict)s.

use thiserror::Error;

/// A TLSA record that could not be read at all.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ParseError {
    /// A field is missing from the presentation text.
    #[error("TLSA record is missing its {0} field")]
    MissingField(&'static str),
    /// A numeric field is not a number from 0 to 255.
    #[error("TLSA {field} must be a number from 0 to 255, found {found:?}")]
    BadNumber {
        /// Which field.
        field: &'static str,
        /// What was there (truncated).
        found: String,
    },
    /// The association data has an odd number of hex digits.
    #[error("TLSA association data has an odd number of hex digits ({digits})")]
    OddHexLength {
        /// Number of digits found.
        digits: usize,
    },
    /// A character in the association data is not a hex digit.
    #[error("TLSA association data has a non-hex character {found:?} at digit {at}")]
    BadHexDigit {
        /// Offset among the hex digits (whitespace removed).
        at: usize,
        /// The offending character.
        found: char,
    },
    /// Wire RDATA shorter than the three fixed octets.
    #[error("TLSA RDATA is {len} bytes; it needs at least 3")]
    WireTooShort {
        /// Length received.
        len: usize,
    },
}

/// A certificate or chain that could not be read or used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CertError {
    /// No certificate in the input.
    #[error("no certificate found{0}")]
    Empty(String),
    /// A certificate is not valid DER X.509.
    #[error("certificate {index} is not a valid X.509 certificate: {detail}")]
    BadCertificate {
        /// Position in the chain, 0 = leaf.
        index: usize,
        /// Decoder message.
        detail: String,
    },
    /// PEM text could not be read.
    #[error("PEM input is malformed: {0}")]
    BadPem(String),
    /// A requested TLSA parameter combination cannot be generated.
    #[error("cannot generate TLSA record: {0}")]
    Unsupported(String),
}
