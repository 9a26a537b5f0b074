//! Delivery's counters for `/metrics`: each recipient outcome with how the
//! next hop was authenticated, STARTTLS shortfalls by class, DANE checks.
//! Called beside the mail-log lines that report the same events; each is a
//! relaxed atomic add.

use portcullis_dane::{CheckKind, PeerAuthentication, PeerVerifier};
use portcullis_policy::{PeerFailure, Rule};
use portcullis_smtp_tls::TlsOutcome;

use super::context::Context;
use super::outcome::RcptOutcome;
use crate::metrics::{AuthKind, DeliveryResult, StarttlsFailure};

fn result(o: &RcptOutcome) -> DeliveryResult {
    match o {
        RcptOutcome::Delivered(_) => DeliveryResult::Delivered,
        RcptOutcome::Deferred(_) => DeliveryResult::Deferred,
        RcptOutcome::Failed(_) => DeliveryResult::Bounced,
    }
}

/// The outcomes of a conversation with a next hop; `auth` is the
/// connection's word (`none`, `pkix`, `dane`, `…-failed(report-only)`),
/// `rule` the deciding rule's label (`R10` is MTA-STS enforce).
pub(super) fn conversation(
    ctx: &Context,
    rule: &str,
    tls: &TlsOutcome,
    auth: &str,
    out: &[(u32, RcptOutcome)],
) {
    let sts = format!("R{}", Rule::StsEnforce.row());
    let kind = match auth {
        "pkix" if rule == sts => AuthKind::MtaSts,
        "pkix" => AuthKind::Pkix,
        "dane" => AuthKind::Dane,
        _ => AuthKind::None,
    };
    for (_, o) in out {
        ctx.metrics.delivery(result(o), kind, tls.is_established());
    }
}

/// Outcomes reached without a conversation (no next hop, every host
/// skipped or failed): no peer was authenticated.
pub(super) fn unconnected(ctx: &Context, out: &[(u32, RcptOutcome)]) {
    for (_, o) in out {
        ctx.metrics.delivery(result(o), AuthKind::None, false);
    }
}

/// A STARTTLS shortfall of an outbound connection.
pub(super) fn tls_failure(ctx: &Context, failure: PeerFailure, verifier: Option<&PeerVerifier>) {
    let class = match failure {
        PeerFailure::StarttlsNotOffered => StarttlsFailure::NotOffered,
        PeerFailure::StarttlsRefused => StarttlsFailure::Refused,
        PeerFailure::AuthenticationFailed => StarttlsFailure::Authentication,
        PeerFailure::RequireTlsNotOffered => StarttlsFailure::RequireTls,
        _ => StarttlsFailure::Handshake,
    };
    ctx.metrics.starttls_failure(class);
    if failure == PeerFailure::AuthenticationFailed
        && verifier.is_some_and(|v| v.kind() == CheckKind::Dane)
    {
        ctx.metrics.dane(false);
    }
}

/// A connection came up with TLS: a DANE check that ran is counted.
pub(super) fn tls_established(ctx: &Context, verifier: Option<&PeerVerifier>) {
    if let Some(v) = verifier.filter(|v| v.kind() == CheckKind::Dane) {
        ctx.metrics
            .dane(matches!(v.outcome(), PeerAuthentication::Verified(_)));
    }
}
