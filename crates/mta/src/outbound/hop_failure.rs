//! When a hop does not take the message: the mail-log lines and what
//! follows — for a TLS shortfall, whatever the decision says (cleartext
//! retry, next host then defer or bounce); for a connection that failed,
//! the next host; for a message the server can never take, a bounce after
//! the last host. Also the TLS line of a connection that did come up.

use portcullis_dane::PeerAuthentication;
use portcullis_policy::{Disposition, NextStep, PeerFailure};
use portcullis_smtp_tls::TlsOutcome;

use super::connect::{Open, Target, TlsFailure};
use super::context::Context;
use super::delivery::{HopResult, Message};
use super::envelope::Outgoing;
use super::outcome::{Leg, Shortfall, failure_class};
use super::plan::HopPlan;

/// The peer fell short of the plan: the decision says what happens next.
pub(crate) async fn tls_failed(
    ctx: &Context,
    m: &Message<'_>,
    leg: &Leg<'_>,
    plan: &HopPlan<'_>,
    target: &Target<'_>,
    TlsFailure {
        failure, detail, ..
    }: TlsFailure,
    smtp_env: Outgoing,
) -> HopResult {
    let Leg {
        id,
        dcid,
        label,
        host,
        rule,
    } = *leg;
    let domain = m.domain;
    super::counting::tls_failure(ctx, failure, plan.verifier.as_deref());
    match (failure, &plan.verifier) {
        (PeerFailure::AuthenticationFailed, Some(v)) => ctx.log.warn(format_args!(
            "{dcid} MID {id} to {domain} via {label} rule={rule} TLS failed: {} verification failed: {detail}",
            v.kind().as_str()
        )),
        _ => ctx.log.warn(format_args!(
            "{dcid} MID {id} to {domain} via {label} rule={rule} TLS failed: {} ({detail})",
            failure_class(failure)
        )),
    }
    if matches!(plan.next_step(failure), NextStep::RetryCleartext { .. })
        && let Some(r) = super::downgrade_guard::in_force(ctx, m)
    {
        let would = super::downgrade_guard::Would::CleartextRetry;
        return super::downgrade_guard::refuse(ctx, m, label, &r, would);
    }
    match plan.next_step(failure) {
        NextStep::RetryCleartext { exempt_until } => {
            super::cleartext_retry::run(ctx, m, leg, plan, target, exempt_until, smtp_env).await
        }
        NextStep::GiveUp { shortfall, status } => {
            ctx.log.line(format_args!(
                "{dcid} message not sent to {label}: {status}; {}",
                match shortfall.disposition() {
                    Disposition::Bounce => "next host, then bounce",
                    _ => "next host, then defer",
                }
            ));
            HopResult::Next(Shortfall {
                disposition: shortfall.disposition(),
                status: status.to_string(),
                diagnostic: format!("{label}: TLS failed: {}: {detail}", failure_class(failure)),
                remote: Some(host.to_owned()),
                tls_refused: Some(format!("{label}: {}: {detail}", failure_class(failure))),
            })
        }
        other => {
            // smtp-tls stopped although the decision would go on: defer,
            // never deliver in a way the decision did not choose.
            ctx.log.line(format_args!(
                "{dcid} {label}: stopped after {} although the decision says {other:?}; deferring",
                failure_class(failure)
            ));
            HopResult::Next(Shortfall::defer("4.7.0", format!("{label}: {detail}")))
        }
    }
}

/// The server cannot take this message for good (an extension it needs is
/// not offered, or it is larger than the server's SIZE): bounce after the
/// last host, with `status`.
pub(crate) fn unsendable(
    ctx: &Context,
    leg: &Leg<'_>,
    status: &'static str,
    detail: String,
) -> HopResult {
    next_host(ctx, leg, status, detail, Disposition::Bounce)
}

pub(crate) fn connection_failed(ctx: &Context, leg: &Leg<'_>, detail: String) -> HopResult {
    next_host(ctx, leg, "4.4.1", detail, Disposition::Defer)
}

fn next_host(
    ctx: &Context,
    leg: &Leg<'_>,
    status: &str,
    detail: String,
    disposition: Disposition,
) -> HopResult {
    let Leg {
        dcid, label, host, ..
    } = *leg;
    ctx.log.line(format_args!(
        "{dcid} {label} delivery failed: {detail} ({status})"
    ));
    HopResult::Next(Shortfall {
        disposition,
        status: status.to_owned(),
        diagnostic: format!("{label}: {detail}"),
        remote: Some(host.to_owned()),
        tls_refused: None,
    })
}

pub(crate) fn log_tls(ctx: &Context, leg: &Leg<'_>, open: &Open, plan: &HopPlan<'_>) {
    let Leg {
        dcid, label, rule, ..
    } = *leg;
    match &open.tls {
        TlsOutcome::Established(info) if open.resumed && plan.verifier.is_some() => {
            ctx.log.line(format_args!(
                "{dcid} {label} rule={rule} TLS success protocol {} cipher {} auth={}",
                info.protocol, info.cipher, open.auth
            ));
        }
        TlsOutcome::Established(info) => {
            super::counting::tls_established(ctx, plan.verifier.as_deref());
            let auth = match plan.verifier.as_deref().map(|v| (v.kind(), v.outcome())) {
                Some((k, PeerAuthentication::Verified(how))) => {
                    format!("auth={} ok ({how})", k.as_str())
                }
                Some((k, PeerAuthentication::Failed(why))) => {
                    format!("auth={} FAILED, report only: {why}", k.as_str())
                }
                _ => "auth=none".to_owned(),
            };
            ctx.log.line(format_args!(
                "{dcid} {label} rule={rule} TLS success protocol {} cipher {} {auth}",
                info.protocol, info.cipher
            ));
        }
        TlsOutcome::NotAttempted if !plan.starttls.starttls => {
            ctx.log.line(format_args!(
                "{dcid} {label} rule={rule} TLS not attempted (decision: cleartext)"
            ));
        }
        other => {
            ctx.log.line(format_args!(
                "{dcid} {label} rule={rule} TLS not used: {other}; continuing in cleartext as the decision allows"
            ));
        }
    }
}
