//! What a delivery attempt contributes to a TLS-RPT report (RFC 8460): the
//! policy type the session is counted under and, for failures, the result
//! type. The decision function fills in what it already knows before
//! connecting; [`TlsRptResult::for_failure`] maps what the transport then
//! observes.

use serde::{Deserialize, Serialize};

use crate::decision::PeerFailure;
use crate::name::DomainName;

/// RFC 8460 §4.4 `policy-type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsRptPolicyType {
    /// DANE TLSA records governed the session.
    Tlsa,
    /// An MTA-STS policy governed the session.
    Sts,
    /// Neither.
    NoPolicyFound,
}

impl TlsRptPolicyType {
    /// The report spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsRptPolicyType::Tlsa => "tlsa",
            TlsRptPolicyType::Sts => "sts",
            TlsRptPolicyType::NoPolicyFound => "no-policy-found",
        }
    }
}

/// RFC 8460 §4.3 result types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum TlsRptResult {
    /// The peer did not offer STARTTLS (or refused it).
    StarttlsNotSupported,
    /// The certificate does not match the host.
    CertificateHostMismatch,
    /// The certificate has expired.
    CertificateExpired,
    /// The certificate does not chain to a trusted root.
    CertificateNotTrusted,
    /// Any other validation failure (handshake failure included).
    ValidationFailure,
    /// No TLSA record of the set was usable or valid.
    TlsaInvalid,
    /// DNSSEC validation of the TLSA lookup failed.
    DnssecInvalid,
    /// DANE was required but no secure TLSA records exist.
    DaneRequired,
    /// The MTA-STS policy could not be fetched.
    StsPolicyFetchError,
    /// The MTA-STS policy was invalid.
    StsPolicyInvalid,
    /// The MTA-STS policy host's certificate was invalid.
    StsWebpkiInvalid,
}

impl TlsRptResult {
    /// Every result type RFC 8460 §4.3 defines, in its order.
    pub const ALL: [TlsRptResult; 11] = [
        TlsRptResult::StarttlsNotSupported,
        TlsRptResult::CertificateHostMismatch,
        TlsRptResult::CertificateExpired,
        TlsRptResult::CertificateNotTrusted,
        TlsRptResult::ValidationFailure,
        TlsRptResult::TlsaInvalid,
        TlsRptResult::DnssecInvalid,
        TlsRptResult::DaneRequired,
        TlsRptResult::StsPolicyFetchError,
        TlsRptResult::StsPolicyInvalid,
        TlsRptResult::StsWebpkiInvalid,
    ];

    /// The result type with this report spelling, if RFC 8460 defines it.
    pub fn from_report_str(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// The report spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsRptResult::StarttlsNotSupported => "starttls-not-supported",
            TlsRptResult::CertificateHostMismatch => "certificate-host-mismatch",
            TlsRptResult::CertificateExpired => "certificate-expired",
            TlsRptResult::CertificateNotTrusted => "certificate-not-trusted",
            TlsRptResult::ValidationFailure => "validation-failure",
            TlsRptResult::TlsaInvalid => "tlsa-invalid",
            TlsRptResult::DnssecInvalid => "dnssec-invalid",
            TlsRptResult::DaneRequired => "dane-required",
            TlsRptResult::StsPolicyFetchError => "sts-policy-fetch-error",
            TlsRptResult::StsPolicyInvalid => "sts-policy-invalid",
            TlsRptResult::StsWebpkiInvalid => "sts-webpki-invalid",
        }
    }

    /// The result type for a shortfall the transport observed; `None` when
    /// RFC 8460 has no type for it (a missing REQUIRETLS extension is not a
    /// TLS failure). Certificate failures map to the catch-all
    /// `validation-failure`; a transport that knows the precise reason
    /// (mismatch, expired, untrusted) records that instead.
    pub fn for_failure(failure: PeerFailure) -> Option<Self> {
        match failure {
            PeerFailure::StarttlsNotOffered | PeerFailure::StarttlsRefused => {
                Some(TlsRptResult::StarttlsNotSupported)
            }
            PeerFailure::HandshakeFailed | PeerFailure::AuthenticationFailed => {
                Some(TlsRptResult::ValidationFailure)
            }
            PeerFailure::RequireTlsNotOffered => None,
        }
    }
}

/// What to record for this attempt.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TlsRptRecord {
    /// The policy domain (the destination domain).
    pub policy_domain: DomainName,
    /// Policy type the session counts under.
    pub policy_type: TlsRptPolicyType,
    /// A failure already known before connecting (bogus TLSA, MX not in
    /// the MTA-STS policy, policy fetch error); `None` when only the
    /// session's outcome will tell.
    pub known_failure: Option<TlsRptResult>,
}
