//! Delivery of one message to one destination domain: next hops (SMTP
//! route or DNSSEC-aware MX), the policy decision for each hop, and its
//! execution as a [`plan`](super::plan): reuse an idle connection under the
//! same decision, or connect with STARTTLS and the certificate check the
//! decision names; then the next host, a cleartext retry with the temporary
//! exemption, defer or bounce, as the decision says. Every TLS decision and
//! outcome is one mail-log line carrying the deciding rule.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use portcullis_dane::TlsaSet;
use portcullis_policy::mta_sts::MtaStsFacts;
use portcullis_policy::{DomainName, HopFacts, HopRequirement, MessageTls};

use tokio_rustls::TlsConnector;

use super::connect::{Open, OpenFailure, SendFailure, Sent, Target, open};
pub(crate) use super::context::Context;
use super::decision_notes::DecisionNotes;
use super::envelope::{Outgoing, message_tls, smtp_envelope};
use super::hop_failure::{connection_failed, log_tls, tls_failed, unsendable};
use super::hops::{Hop, NextHops, resolve};
use super::outcome::{Leg, failure, outcomes};
pub(crate) use super::outcome::{RcptOutcome, Shortfall};
use super::plan::{Step, Trust};
use super::tls_report::{self, Scope, SessionEnd};
use crate::maillog::Dcid;
use crate::spool::{Envelope, MessageId};

pub(crate) enum HopResult {
    Done(Vec<(u32, RcptOutcome)>),
    Next(Shortfall),
}

/// Delivers `rcpts` (indices into the envelope) of one message to `domain`.
pub(crate) async fn deliver_domain(
    ctx: &Context,
    id: MessageId,
    domain: &str,
    rcpts: &[u32],
    envelope: &Envelope,
    body: &[u8],
) -> Vec<(u32, RcptOutcome)> {
    let list: Vec<(u32, String)> = rcpts
        .iter()
        .filter_map(|&i| envelope.recipients.get(i as usize).map(|r| (i, r.clone())))
        .collect();
    let name = match DomainName::parse(domain) {
        Ok(n) => n,
        Err(e) => {
            ctx.log.line(format_args!(
                "MID {id} to {domain}: not a deliverable domain: {e}"
            ));
            let f = failure(
                "5.1.2",
                None,
                format!("bad destination domain {domain}: {e}"),
            );
            return list
                .iter()
                .map(|(i, _)| (*i, RcptOutcome::Failed(f.clone())))
                .collect();
        }
    };
    let rules = ctx.settings.policy.requiretls();
    let rcpt_names: Vec<String> = list.iter().map(|(_, r)| r.clone()).collect();
    let message = message_tls(rules, envelope, &name, &rcpt_names, body);
    let m = Message {
        id,
        domain: &name,
        list: &list,
        envelope,
        body,
        tls_opt_out: message == MessageTls::OptOut,
    };
    super::downgrade_guard::note_opt_out(ctx, &m);
    let shutting_down = || {
        all(
            &m,
            RcptOutcome::Deferred(failure("4.3.0", None, "delivery is shutting down".into())),
        )
    };
    let slots = ctx.destination_slots(&name);
    let Ok(_dest_permit) = slots.acquire_owned().await else {
        return shutting_down();
    };
    let hops = match resolve(ctx, id, &name).await {
        NextHops::Hops(h) => h,
        NextHops::None(s) => {
            ctx.log.line(format_args!(
                "MID {id} to {domain}: no next hop: {} ({})",
                s.diagnostic, s.status
            ));
            let out = all(&m, s.outcome());
            super::counting::unconnected(ctx, &out);
            return out;
        }
    };
    let mta_sts = ctx.sts.facts(ctx, id, &name).await;
    let mut last = Shortfall::defer("4.4.4", format!("no usable next hop for {domain}"));
    let mut refusals = super::tls_alert::Refusals::default();
    for hop in &hops {
        let mut notes = DecisionNotes::default();
        for addr in &hop.addrs {
            let next = hop.hop.clone().at(addr.ip());
            let now = SystemTime::now();
            let (req, without_opt_out) = {
                let ex = ctx.exemptions.lock().unwrap_or_else(|p| p.into_inner());
                let facts = |message| HopFacts {
                    domain: &name,
                    hop: &next,
                    tlsa: &hop.tlsa,
                    mta_sts: &mta_sts,
                    message,
                    now,
                };
                let req = ctx.settings.policy.decide(&ex, &facts(message));
                // What the hop would demand without `TLS-Required: No`,
                // to say when the header changed the outcome.
                let without = (message == MessageTls::OptOut)
                    .then(|| ctx.settings.policy.decide(&ex, &facts(MessageTls::Default)));
                (req, without)
            };
            notes.note(ctx, id, hop, &mta_sts, &req, without_opt_out.as_ref());
            let Ok(_permit) = ctx.connections.clone().acquire_owned().await else {
                return shutting_down();
            };
            match try_hop(ctx, &m, hop, *addr, &req, &mta_sts).await {
                HopResult::Done(v) => return v,
                HopResult::Next(s) => {
                    refusals.note(req.rule, s.tls_refused.as_deref());
                    last = s;
                }
            }
        }
    }
    refusals.raise(&ctx.alerts, &name);
    let out = all(&m, last.outcome());
    super::counting::unconnected(ctx, &out);
    out
}

fn rule_label(req: &HopRequirement<TlsaSet>) -> String {
    format!("R{}", req.rule.row())
}

/// One message to one destination: what every hop attempt needs.
pub(crate) struct Message<'a> {
    pub id: MessageId,
    pub domain: &'a DomainName,
    /// The recipients for this domain (index into the envelope, address).
    pub list: &'a [(u32, String)],
    pub envelope: &'a Envelope,
    pub body: &'a [u8],
    /// `TLS-Required: No`, honoured: the sender asked for delivery even
    /// below the TLS policy, never-downgrade included (RFC 8689 §4.2.1).
    pub tls_opt_out: bool,
}

/// Every recipient of `m` with the same outcome.
fn all(m: &Message<'_>, o: RcptOutcome) -> Vec<(u32, RcptOutcome)> {
    m.list.iter().map(|(i, _)| (*i, o.clone())).collect()
}

async fn try_hop(
    ctx: &Context,
    m: &Message<'_>,
    hop: &Hop,
    addr: SocketAddr,
    req: &HopRequirement<TlsaSet>,
    mta_sts: &MtaStsFacts,
) -> HopResult {
    let (id, domain) = (m.id, m.domain);
    let scope = Scope {
        req,
        hop,
        mta_sts,
        addr,
    };
    let label = format!("{}[{}]:{}", hop.hop.host, addr.ip(), addr.port());
    let host = hop.hop.host.to_string();
    let rule = rule_label(req);
    let trust = Trust {
        pkix: &ctx.pkix,
        provider: &ctx.settings.tls.provider,
    };
    let mut plan = match Step::new(req, &trust) {
        Step::Skip { shortfall, status } => {
            tls_report::count(ctx, &scope, &Default::default(), SessionEnd::Skipped);
            ctx.log.warn(format_args!(
                "{} MID {id} to {domain} via {label} rule={rule} host skipped, not connecting: {} ({status})",
                Dcid::next(),
                req.rule
            ));
            return HopResult::Next(Shortfall {
                disposition: shortfall.disposition(),
                status: status.to_string(),
                diagnostic: format!("{label}: {}", req.rule),
                remote: None,
                tls_refused: Some(format!("{label}: not connecting: {}", req.rule)),
            });
        }
        Step::Connect(plan) => plan,
    };
    let remembered = super::downgrade_guard::in_force(ctx, m);
    if let Some(refused) =
        super::downgrade_guard::before_connect(ctx, m, &label, &scope, &remembered, &plan)
    {
        return refused;
    }
    let smtp_env = match smtp_envelope(m.envelope, m.list, plan.starttls.require_requiretls) {
        Ok(e) => e,
        Err(e) => return HopResult::Done(all(m, RcptOutcome::Failed(failure("5.1.3", None, e)))),
    };
    let pool_key = plan.pool_key(addr, &hop.hop.host.to_string());
    if let Some(done) = reuse(ctx, m, req, &label, &host, &pool_key, &smtp_env).await {
        return HopResult::Done(done);
    }
    let dcid = Dcid::next();
    ctx.log.line(format_args!(
        "{dcid} MID {id} to {domain} via {label} rule={rule} ({}) starttls={}",
        req.rule,
        plan.starttls_label()
    ));
    // A verifier kept for this hop and check resumes its sessions.
    let checked = match plan.verifier.clone() {
        None => None,
        Some(v) => match ctx.tls_sessions.checkout(&pool_key) {
            Some(pair) => Some(pair),
            None => match v.client_config(
                &ctx.settings.tls.versions,
                ctx.settings.tls.client_certificate.clone(),
            ) {
                Ok(c) => Some((v, Arc::new(c))),
                Err(e) => {
                    return HopResult::Next(Shortfall::defer(
                        "4.7.5",
                        format!("outbound TLS configuration error: {e}"),
                    ));
                }
            },
        },
    };
    let connector = match &checked {
        None => ctx.plain_connector.clone(),
        Some((v, config)) => {
            plan.verifier = Some(v.clone());
            TlsConnector::from(config.clone())
        }
    };
    let target = Target {
        host: hop.hop.host.clone(),
        addr,
        server_name: hop.server_name.clone(),
        helo: &ctx.hostname,
        connector,
        connect_timeout: ctx.settings.connect_timeout,
        command_timeout: ctx.settings.command_timeout,
        data_timeout: ctx.settings.data_timeout,
        tls_handshake_timeout: ctx.settings.tls_handshake_timeout,
    };
    let (opened, injected) = open(&target, &plan).await;
    if injected > 0 {
        ctx.log.warn(format_args!(
            "{dcid} {label} sent {injected} bytes of plaintext behind its 220 to STARTTLS; discarded (injection attempt)"
        ));
    }
    let leg = Leg {
        id,
        dcid,
        label: &label,
        host: &host,
        rule: &rule,
    };
    match opened {
        Ok(mut open) => {
            if let Some(pair) = checked
                && open.tls.is_established()
            {
                if open.resumed {
                    let first = ctx.tls_sessions.authenticated(&pool_key);
                    open.auth = format!(
                        "{} (resumed session)",
                        first.as_deref().unwrap_or(&open.auth)
                    );
                    ctx.tls_sessions.checkin(&pool_key, pair, None);
                } else if matches!(
                    pair.0.outcome(),
                    portcullis_dane::PeerAuthentication::Verified(_)
                ) {
                    ctx.tls_sessions.checkin(&pool_key, pair, Some(&open.auth));
                }
            }
            log_tls(ctx, &leg, &open, &plan);
            if let Some(r) = &remembered
                && super::downgrade_guard::authenticated(&open.tls, &open.auth, &rule).is_none()
            {
                return super::downgrade_guard::refuse_open(ctx, m, &label, &scope, r, open).await;
            }
            let end = if open.tls.is_established() {
                Some(SessionEnd::Established(plan.verifier.as_deref()))
            } else if plan.starttls.starttls {
                Some(SessionEnd::Cleartext)
            } else {
                None
            };
            if let Some(end) = end {
                tls_report::count(ctx, &scope, &open.facts, end);
            }
            let sent = open.send(&smtp_env, m.body).await;
            finish(ctx, m, &leg, open, sent, Some(pool_key)).await
        }
        Err(OpenFailure::Tls(f)) => {
            let end = SessionEnd::Failed(f.failure, plan.verifier.as_deref());
            tls_report::count(ctx, &scope, &f.facts, end);
            tls_failed(ctx, m, &leg, &plan, &target, f, smtp_env).await
        }
        Err(OpenFailure::Connection(detail)) => connection_failed(ctx, &leg, detail),
    }
}

/// Sends on an idle connection kept for the same hop and decision, if any
/// is still open.
async fn reuse(
    ctx: &Context,
    m: &Message<'_>,
    req: &HopRequirement<TlsaSet>,
    label: &str,
    host: &str,
    pool_key: &str,
    smtp_env: &Outgoing,
) -> Option<Vec<(u32, RcptOutcome)>> {
    let remembered = super::downgrade_guard::in_force(ctx, m).is_some();
    while let Some((old, mut open)) = ctx.pool.take(pool_key) {
        if remembered
            && super::downgrade_guard::authenticated(&open.tls, &open.auth, &rule_label(req))
                .is_none()
        {
            // Kept from before the domain was remembered: a fresh
            // connection is checked instead.
            open.close().await;
            continue;
        }
        let Ok(sent) = open.send(smtp_env, m.body).await else {
            // The server closed it meanwhile: try another, or a fresh one.
            open.close().await;
            continue;
        };
        let rule = rule_label(req);
        ctx.log.line(format_args!(
            "{old} MID {} to {} via {label} rule={rule} ({}) on the open connection (message {} on it)",
            m.id, m.domain, req.rule, open.sent
        ));
        let leg = Leg {
            id: m.id,
            dcid: old,
            label,
            host,
            rule: &rule,
        };
        let out = outcomes(
            &ctx.log,
            &leg,
            &open.tls,
            &open.auth,
            m.list,
            &sent.result,
            sent.dsn_passed,
        );
        super::counting::conversation(ctx, &rule, &open.tls, &open.auth, &out);
        super::downgrade_guard::record(ctx, m.domain, &rule, &open.tls, &open.auth, &out);
        keep_or_close(ctx, m, old, open, pool_key.to_owned()).await;
        return Some(out);
    }
    None
}

/// Keeps a connection for the next message unless it carried the
/// destination's `max-messages-per-connection`.
async fn keep_or_close(ctx: &Context, m: &Message<'_>, dcid: Dcid, open: Open, key: String) {
    let per_connection = ctx
        .settings
        .policy
        .destinations()
        .lookup(m.domain)
        .limits
        .max_messages_per_connection;
    if open.sent < per_connection {
        ctx.pool.put(key, dcid, open);
    } else {
        open.close().await;
    }
}

/// The outcomes of a message sent on a fresh connection; the connection is
/// kept for reuse (`pool_key`) or closed.
pub(crate) async fn finish(
    ctx: &Context,
    m: &Message<'_>,
    leg: &Leg<'_>,
    open: Open,
    sent: Result<Sent, SendFailure>,
    pool_key: Option<String>,
) -> HopResult {
    match sent {
        Ok(sent) => {
            let out = outcomes(
                &ctx.log,
                leg,
                &open.tls,
                &open.auth,
                m.list,
                &sent.result,
                sent.dsn_passed,
            );
            super::counting::conversation(ctx, leg.rule, &open.tls, &open.auth, &out);
            super::downgrade_guard::record(ctx, m.domain, leg.rule, &open.tls, &open.auth, &out);
            match pool_key {
                Some(key) => keep_or_close(ctx, m, leg.dcid, open, key).await,
                None => open.close().await,
            }
            HopResult::Done(out)
        }
        Err(f) => {
            open.close().await;
            match f {
                SendFailure::Unsendable { status, detail } => unsendable(ctx, leg, status, detail),
                SendFailure::Connection(detail) => connection_failed(ctx, leg, detail),
            }
        }
    }
}
