//! What the decision function is told about a destination's MTA-STS state:
//! no policy, a valid policy in force (fresh or cached), or no policy
//! because discovery or fetching failed (delivery proceeds as without a
//! policy, RFC 8461 §5, but the failure is reported through TLS-RPT).

use crate::mta_sts::policy::StsPolicy;
use crate::tlsrpt::TlsRptResult;

/// Why no policy could be obtained although the domain announced one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StsFailure {
    /// The HTTPS fetch failed (connection, status, redirect, size, timeout).
    FetchError,
    /// The policy file was invalid.
    PolicyInvalid,
    /// The policy host's certificate did not validate.
    WebPkiInvalid,
}

impl std::fmt::Display for StsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StsFailure::FetchError => "the policy could not be fetched",
            StsFailure::PolicyInvalid => "the policy file is invalid",
            StsFailure::WebPkiInvalid => "the policy host's certificate did not verify",
        })
    }
}

impl StsFailure {
    /// The TLS-RPT result type (RFC 8460 §4.3.2.2).
    pub fn tlsrpt(self) -> TlsRptResult {
        match self {
            StsFailure::FetchError => TlsRptResult::StsPolicyFetchError,
            StsFailure::PolicyInvalid => TlsRptResult::StsPolicyInvalid,
            StsFailure::WebPkiInvalid => TlsRptResult::StsWebpkiInvalid,
        }
    }
}

/// The MTA-STS state of the destination domain at decision time.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MtaStsFacts {
    /// No policy (no TXT record, mode `none`, or MTA-STS not consulted).
    None,
    /// A valid, unexpired policy with mode testing or enforce.
    Policy(StsPolicy),
    /// The domain announced a policy but none could be obtained and none
    /// is cached: deliver as without a policy, report the failure.
    Unavailable(StsFailure),
}
