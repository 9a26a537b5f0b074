//! What each TLS session to a recipient domain contributes to its TLS-RPT
//! report (RFC 8460 §4): the policy it ran under (`sts` with the policy
//! lines and MX patterns, `tlsa` with the records and the MX host, or
//! `no-policy-found`, as the decision classified it) and, for a failure,
//! the result type and the peer. Counted once per new session (a hop
//! skipped for a failure known before connecting counts as a failed
//! session; a message sent on a kept connection adds nothing); a
//! connection that never reached the SMTP greeting is not a TLS session.

use std::net::SocketAddr;

use portcullis_dane::{AuthFailure, PeerAuthentication, PeerVerifier, TlsaSet};
use portcullis_policy::mta_sts::MtaStsFacts;
use portcullis_policy::{HopRequirement, PeerFailure, TlsRptPolicyType, TlsRptResult, TlsaFacts};

use super::connect::SessionFacts;
use super::context::Context;
use super::hops::Hop;
use crate::tlsrpt::{FailureKey, PolicyKey, Session};

/// The hop and decision a session is counted under.
pub(crate) struct Scope<'a> {
    pub req: &'a HopRequirement<TlsaSet>,
    pub hop: &'a Hop,
    pub mta_sts: &'a MtaStsFacts,
    pub addr: SocketAddr,
}

/// How the session ended, as far as TLS goes.
pub(crate) enum SessionEnd<'a> {
    /// Not connected: the decision skipped the hop.
    Skipped,
    /// TLS came up; the verifier (if any) says whether the peer passed.
    Established(Option<&'a PeerVerifier>),
    /// STARTTLS was planned, the peer did not offer it, and the decision
    /// went on in cleartext.
    Cleartext,
    /// The peer fell short and the session stopped.
    Failed(PeerFailure, Option<&'a PeerVerifier>),
    /// The never-downgrade memory refused a session that would have been
    /// unauthenticated or cleartext.
    Refused(TlsRptResult),
}

/// Counts one session (a no-op unless TLS reports are enabled).
pub(crate) fn count(ctx: &Context, scope: &Scope<'_>, facts: &SessionFacts, end: SessionEnd<'_>) {
    if !ctx.tls_report.enabled() {
        return;
    }
    let known = scope.req.tls_rpt.known_failure;
    let result = match end {
        SessionEnd::Skipped => match known {
            Some(r) => Some(r),
            // Skipped for a reason TLS-RPT has no type for (an excluded
            // host, REQUIRETLS): no TLS session was attempted.
            None => return,
        },
        SessionEnd::Established(verifier) => match verifier.map(|v| v.outcome()) {
            Some(PeerAuthentication::Failed(why)) => Some(known.unwrap_or(auth_result(&why))),
            _ => known,
        },
        SessionEnd::Cleartext => Some(TlsRptResult::StarttlsNotSupported),
        SessionEnd::Refused(result) => Some(result),
        SessionEnd::Failed(failure, verifier) => {
            let by_check = match (failure, verifier.map(|v| v.outcome())) {
                (PeerFailure::AuthenticationFailed, Some(PeerAuthentication::Failed(why))) => {
                    Some(auth_result(&why))
                }
                _ => TlsRptResult::for_failure(failure),
            };
            match by_check {
                Some(r) => Some(known.unwrap_or(r)),
                // Not a TLS failure (REQUIRETLS not offered): not counted.
                None => return,
            }
        }
    };
    let session = Session {
        policy: policy_key(scope),
        failure: result.map(|r| FailureKey {
            result_type: r.as_str().to_owned(),
            sending_mta_ip: facts.local_ip,
            receiving_mx_hostname: scope.hop.hop.host.name().map(ToString::to_string),
            receiving_mx_helo: facts.mx_helo.clone(),
            receiving_ip: Some(scope.addr.ip()),
        }),
    };
    ctx.tls_report
        .record(scope.req.tls_rpt.policy_domain.as_str(), session);
}

/// The RFC 8460 §4.3 type for a failed certificate check, from the
/// verifier's own words (`dane::words`); anything else is the catch-all.
fn auth_result(why: &AuthFailure) -> TlsRptResult {
    match why {
        AuthFailure::Pkix(words) => {
            if words.contains("name mismatch") {
                TlsRptResult::CertificateHostMismatch
            } else if words.contains("expired") {
                TlsRptResult::CertificateExpired
            } else if words.contains("self-signed") || words.contains("trusted CA") {
                TlsRptResult::CertificateNotTrusted
            } else {
                TlsRptResult::ValidationFailure
            }
        }
        _ => TlsRptResult::ValidationFailure,
    }
}

fn policy_key(scope: &Scope<'_>) -> PolicyKey {
    let policy_type = scope.req.tls_rpt.policy_type;
    let (policy_string, mx_host) = match (policy_type, scope.mta_sts, &scope.hop.tlsa) {
        (TlsRptPolicyType::Sts, MtaStsFacts::Policy(p), _) => (
            p.to_string()
                .lines()
                .map(|l| l.trim_end_matches('\r').to_owned())
                .filter(|l| !l.is_empty())
                .collect(),
            p.mx().iter().map(ToString::to_string).collect(),
        ),
        (TlsRptPolicyType::Tlsa, _, TlsaFacts::SecureUsable(set)) => (
            set.records().iter().map(ToString::to_string).collect(),
            scope
                .hop
                .hop
                .host
                .name()
                .map(|n| vec![n.to_string()])
                .unwrap_or_default(),
        ),
        _ => (Vec::new(), Vec::new()),
    };
    PolicyKey {
        policy_type: policy_type.as_str().to_owned(),
        policy_string,
        mx_host,
    }
}
