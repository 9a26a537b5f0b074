//! Delivery's side of the never-downgrade memory
//! ([`crate::never_downgrade`]): after an authenticated delivery to a
//! destination with `never-downgrade` on, the domain is remembered; while
//! it is remembered, a hop that would carry the message unauthenticated or
//! in cleartext is refused before the message is sent — the attempt is
//! deferred (`4.7.5`, retried by the scheduler) with one mail-log line
//! naming the domain, what was remembered and since when, and what this
//! attempt would have been. Every refusal goes through [`refuse`].

use std::time::Duration;

use portcullis_policy::{DomainName, Rule, TlsRptResult};
use portcullis_smtp_tls::TlsOutcome;

use super::connect::Open;
use super::context::Context;
use super::delivery::{HopResult, Message};
use super::outcome::{RcptOutcome, Shortfall};
use super::plan::HopPlan;
use super::tls_report::{self, Scope, SessionEnd};
use crate::never_downgrade::{AuthMethod, Remembered, utc};

/// The deferral status of a refused downgrade.
pub(crate) const STATUS: &str = "4.7.5";

/// What a refused attempt would have been.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Would {
    /// The decision chose cleartext (no STARTTLS).
    Cleartext,
    /// TLS with no certificate check (the decision asks for none).
    UncheckedTls,
    /// The server did not offer STARTTLS; the decision would go on in
    /// cleartext.
    StarttlsNotOffered,
    /// The handshake failed; the decision would retry in cleartext.
    CleartextRetry,
    /// TLS came up but the certificate check failed (report-only) or was
    /// not made: unauthenticated TLS.
    Unauthenticated,
}

impl Would {
    fn describe(self) -> &'static str {
        match self {
            Would::Cleartext => "cleartext (the policy chose no STARTTLS)",
            Would::UncheckedTls => {
                "TLS without a certificate check, or cleartext if STARTTLS failed"
            }
            Would::StarttlsNotOffered => "cleartext (STARTTLS not offered)",
            Would::CleartextRetry => "cleartext (retry after a failed TLS handshake)",
            Would::Unauthenticated => "unauthenticated TLS (certificate not verified)",
        }
    }

    /// The RFC 8460 §4.3 result type this refusal is counted under.
    pub(crate) fn tlsrpt_result(self, remembered: AuthMethod) -> TlsRptResult {
        match (self, remembered) {
            (Would::StarttlsNotOffered | Would::Cleartext, _) => TlsRptResult::StarttlsNotSupported,
            (_, AuthMethod::Dane) => TlsRptResult::DaneRequired,
            _ => TlsRptResult::ValidationFailure,
        }
    }
}

fn remembered(ctx: &Context, domain: &DomainName) -> Option<Remembered> {
    ctx.settings
        .policy
        .destinations()
        .lookup(domain)
        .never_downgrade_days?;
    ctx.never_downgrade.active(domain.as_str())
}

/// What is remembered about the message's domain, if its destination has
/// never-downgrade on, the memory lasts, and the message does not carry an
/// honoured `TLS-Required: No`.
pub(crate) fn in_force(ctx: &Context, m: &Message<'_>) -> Option<Remembered> {
    if m.tls_opt_out {
        return None;
    }
    remembered(ctx, m.domain)
}

/// Says once per attempt when `TLS-Required: No` sets the memory aside.
pub(crate) fn note_opt_out(ctx: &Context, m: &Message<'_>) {
    if m.tls_opt_out
        && let Some(r) = remembered(ctx, m.domain)
    {
        ctx.log.line(format_args!(
            "MID {} to {}: never-downgrade not applied: the message says TLS-Required: No (remembered: {} since {} UTC)",
            m.id,
            m.domain,
            r.method,
            utc(r.since)
        ));
    }
}

/// How a connection authenticated its peer, from its auth word (`dane`,
/// `pkix`, `dane (resumed session)`, `none`, `pkix-failed(report-only)`).
pub(crate) fn authenticated(tls: &TlsOutcome, auth: &str, rule: &str) -> Option<AuthMethod> {
    if !tls.is_established() {
        return None;
    }
    match auth.strip_suffix(" (resumed session)").unwrap_or(auth) {
        "dane" => Some(AuthMethod::Dane),
        "pkix" if rule == format!("R{}", Rule::StsEnforce.row()) => Some(AuthMethod::MtaSts),
        "pkix" => Some(AuthMethod::Pkix),
        _ => None,
    }
}

/// Refuses this hop: logs it and defers (next host, then the scheduler's
/// retry). The callers count the refusal for TLS-RPT, except after a failed
/// handshake, which was counted as that failure.
pub(crate) fn refuse(
    ctx: &Context,
    m: &Message<'_>,
    label: &str,
    remembered: &Remembered,
    would: Would,
) -> HopResult {
    let Remembered {
        method,
        since,
        until,
        ..
    } = *remembered;
    let domain = m.domain;
    ctx.log.warn(format_args!(
        "MID {} to {domain} via {label} deferred by never-downgrade: {domain} was delivered with authenticated TLS ({method}) since {since} UTC, remembered until {until} UTC; this attempt would have been {}; not sent ({STATUS})",
        m.id,
        would.describe(),
        since = utc(since),
        until = utc(until),
    ));
    HopResult::Next(Shortfall::defer(
        STATUS,
        format!(
            "{label}: never-downgrade: {domain} was delivered with {method} since {} UTC; refusing {}",
            utc(since),
            would.describe()
        ),
    ))
}

/// Before connecting: a plan that cannot authenticate the peer (no
/// STARTTLS, or no certificate check) is refused outright.
pub(crate) fn before_connect(
    ctx: &Context,
    m: &Message<'_>,
    label: &str,
    scope: &Scope<'_>,
    remembered: &Option<Remembered>,
    plan: &HopPlan<'_>,
) -> Option<HopResult> {
    let r = remembered.as_ref()?;
    let would = if !plan.starttls.starttls {
        Would::Cleartext
    } else if plan.verifier.is_none() {
        Would::UncheckedTls
    } else {
        return None;
    };
    let end = SessionEnd::Refused(would.tlsrpt_result(r.method));
    tls_report::count(ctx, scope, &Default::default(), end);
    Some(refuse(ctx, m, label, r, would))
}

/// A connection that came up without an authenticated peer (STARTTLS not
/// offered, or a report-only check that failed): closed before any mail.
pub(crate) async fn refuse_open(
    ctx: &Context,
    m: &Message<'_>,
    label: &str,
    scope: &Scope<'_>,
    remembered: &Remembered,
    open: Open,
) -> HopResult {
    let would = if open.tls.is_established() {
        Would::Unauthenticated
    } else {
        Would::StarttlsNotOffered
    };
    let end = SessionEnd::Refused(would.tlsrpt_result(remembered.method));
    tls_report::count(ctx, scope, &open.facts, end);
    open.close().await;
    refuse(ctx, m, label, remembered, would)
}

/// After a conversation: an authenticated delivery to a destination with
/// never-downgrade on is remembered (written at most hourly per domain).
pub(crate) fn record(
    ctx: &Context,
    domain: &DomainName,
    rule: &str,
    tls: &TlsOutcome,
    auth: &str,
    out: &[(u32, RcptOutcome)],
) {
    let Some(days) = ctx
        .settings
        .policy
        .destinations()
        .lookup(domain)
        .never_downgrade_days
    else {
        return;
    };
    if !out
        .iter()
        .any(|(_, o)| matches!(o, RcptOutcome::Delivered(_)))
    {
        return;
    }
    let Some(method) = authenticated(tls, auth, rule) else {
        return;
    };
    let keep = Duration::from_secs(u64::from(days) * 86_400);
    match ctx.never_downgrade.remember(domain.as_str(), method, keep) {
        Ok(true) => ctx.log.line(format_args!(
            "never-downgrade: {domain} remembered as delivered with {method} for {days} days"
        )),
        Ok(false) => {}
        Err(e) => ctx.log.warn(format_args!("{e}")),
    }
}

#[cfg(test)]
mod tests {
    use portcullis_smtp_tls::TlsOutcome;

    use super::*;

    #[test]
    fn only_an_established_verified_session_counts_as_authenticated() {
        let sts = format!("R{}", Rule::StsEnforce.row());
        let none = TlsOutcome::NotAttempted;
        assert_eq!(authenticated(&none, "dane", "R8"), None);
        let est = |auth: &str, rule: &str| {
            let tls = TlsOutcome::Established(portcullis_smtp_tls::TlsInfo {
                protocol: "TLSv1.3".into(),
                cipher: "TLS13_AES_128_GCM_SHA256".into(),
                peer_certificates: Vec::new(),
            });
            authenticated(&tls, auth, rule)
        };
        assert_eq!(est("dane", "R8"), Some(AuthMethod::Dane));
        assert_eq!(est("dane (resumed session)", "R8"), Some(AuthMethod::Dane));
        assert_eq!(est("pkix", &sts), Some(AuthMethod::MtaSts));
        assert_eq!(est("pkix", "R12"), Some(AuthMethod::Pkix));
        assert_eq!(est("pkix-failed(report-only)", "R14"), None);
        assert_eq!(est("none", "R15"), None);
        assert_eq!(est("none (resumed session)", "R15"), None);
    }

    #[test]
    fn refusals_map_to_rfc8460_result_types() {
        assert_eq!(
            Would::StarttlsNotOffered.tlsrpt_result(AuthMethod::Dane),
            TlsRptResult::StarttlsNotSupported
        );
        assert_eq!(
            Would::Unauthenticated.tlsrpt_result(AuthMethod::Dane),
            TlsRptResult::DaneRequired
        );
        assert_eq!(
            Would::Unauthenticated.tlsrpt_result(AuthMethod::Pkix),
            TlsRptResult::ValidationFailure
        );
    }
}
