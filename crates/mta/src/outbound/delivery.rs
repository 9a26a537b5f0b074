//! Delivery of one message to one destination domain: next hops (SMTP
//! route or DNSSEC-aware MX), the policy decision for each hop, and its
//! exact execution — STARTTLS or not, the certificate check the decision
//! names, cleartext retry with the temporary exemption, next host, defer or
//! bounce. Every TLS decision and outcome is one mail-log line carrying the
//! deciding rule.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use portcullis_dane::TlsaSet;
use portcullis_policy::requiretls::{MessageFacts, strip_requiretls_tag};
use portcullis_policy::{
    Disposition, DomainName, HopAction, HopFacts, HopRequirement, MessageTls, NextStep,
    PeerFailure, TlsExemptions,
};
use portcullis_smtp_tls::{
    BodyType, Envelope as SmtpEnvelope, ForwardPath, MailParams, MessageResult, Reply, ReversePath,
    TlsOutcome,
};
use rustls::client::WebPkiServerVerifier;
use tokio::sync::Semaphore;
use tokio_rustls::TlsConnector;

use super::OutboundHandle;
use super::client::{Attempt, Conversation, Open, StartTls, close, converse, send};
use super::hops::{Hop, NextHops, resolve};
use super::mta_sts::StsState;
use super::verify::{AuthKind, AuthResult, HopVerifier, client_config};
use crate::dsn::RecipientFailure;
use crate::error::StartError;
use crate::maillog::{Dcid, MailLog, reply_text};
use crate::settings::{DeliverySettings, EngineSettings};
use crate::spool::{Envelope, MessageId, Spool};

/// Shared by every delivery.
pub(crate) struct Context {
    pub settings: DeliverySettings,
    pub hostname: String,
    pub spool: Arc<Spool>,
    pub log: MailLog,
    pub handle: OutboundHandle,
    pub exemptions: Mutex<TlsExemptions>,
    pub pkix: Option<Arc<WebPkiServerVerifier>>,
    /// A connector for hops that need no certificate check.
    pub plain_connector: TlsConnector,
    pub connections: Arc<Semaphore>,
    pub per_destination: Mutex<std::collections::HashMap<String, Arc<Semaphore>>>,
    /// The gateway's resolver (built once by the engine).
    pub resolver: Option<crate::dns::Resolver>,
    pub sts: StsState,
    pub pool: Arc<Pool>,
}

/// Idle outbound connections kept for the next message to the same hop
/// under the same decision (address, host, STARTTLS and authentication
/// demands), so a burst to one destination pays one TCP connection and one
/// TLS handshake, not one per message. An idle connection is closed with
/// QUIT after [`IDLE`].
#[derive(Debug, Default)]
pub(crate) struct Pool {
    next: std::sync::atomic::AtomicU64,
    idle: Mutex<std::collections::HashMap<String, Vec<IdleConnection>>>,
}

/// Pool entry: its id (for the idle timer), the connection id, the connection.
type IdleConnection = (u64, Dcid, Open);

const IDLE: std::time::Duration = std::time::Duration::from_secs(2);

impl Pool {
    fn take(&self, key: &str) -> Option<(Dcid, Open)> {
        let mut g = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = g.get_mut(key)?;
        let (_, dcid, open) = list.pop()?;
        if list.is_empty() {
            g.remove(key);
        }
        Some((dcid, open))
    }

    fn take_id(&self, key: &str, id: u64) -> Option<Open> {
        let mut g = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = g.get_mut(key)?;
        let pos = list.iter().position(|(i, _, _)| *i == id)?;
        let (_, _, open) = list.swap_remove(pos);
        if list.is_empty() {
            g.remove(key);
        }
        Some(open)
    }

    fn put(self: &Arc<Self>, key: String, dcid: Dcid, open: Open) {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.clone())
            .or_default()
            .push((id, dcid, open));
        let pool = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(IDLE).await;
            if let Some(open) = pool.take_id(&key, id) {
                close(open).await;
            }
        });
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("hostname", &self.hostname)
            .finish_non_exhaustive()
    }
}

impl Context {
    pub(crate) fn new(
        settings: &EngineSettings,
        spool: Arc<Spool>,
        log: MailLog,
        handle: OutboundHandle,
        resolver: Option<crate::dns::Resolver>,
    ) -> Result<Context, StartError> {
        let d = &settings.delivery;
        let pkix = if d.tls.roots.is_empty() {
            log.warn(format_args!(
                "outbound TLS: no CA list is enabled; every certificate verification (required-verify, MTA-STS enforce, REQUIRETLS) will fail"
            ));
            None
        } else {
            Some(
                WebPkiServerVerifier::builder_with_provider(
                    d.tls.roots.clone(),
                    d.tls.provider.clone(),
                )
                .build()
                .map_err(|e| {
                    StartError::Setup(format!(
                        "outbound TLS: cannot verify certificates with the configured CA lists: {e}"
                    ))
                })?,
            )
        };
        let none = Arc::new(HopVerifier::new(
            &portcullis_policy::Authentication::None,
            false,
            pkix.clone(),
            d.tls.provider.clone(),
        ));
        let plain = client_config(none, &d.tls)
            .map_err(|e| StartError::Setup(format!("outbound TLS settings: {e}")))?;
        Ok(Context {
            settings: d.clone(),
            hostname: settings.hostname.clone(),
            spool,
            log,
            handle,
            exemptions: Mutex::new(TlsExemptions::new()),
            pkix,
            plain_connector: TlsConnector::from(Arc::new(plain)),
            connections: Arc::new(Semaphore::new(d.max_connections.max(1))),
            per_destination: Mutex::default(),
            sts: StsState::new(settings, resolver.clone())?,
            pool: Arc::default(),
            resolver,
        })
    }

    /// Connection slots of one destination: the destination entry's
    /// `max-connections`, capped by the engine-wide per-destination limit.
    fn destination_slots(&self, domain: &DomainName) -> Arc<Semaphore> {
        let limit = (self
            .settings
            .policy
            .destinations()
            .lookup(domain)
            .limits
            .max_connections as usize)
            .min(self.settings.max_connections_per_destination)
            .max(1);
        let mut map = self
            .per_destination
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        map.entry(domain.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(limit)))
            .clone()
    }
}

/// What happened to one recipient in this attempt.
#[derive(Debug, Clone)]
pub(crate) enum RcptOutcome {
    Delivered,
    /// Try again later (status and reason inside; `recipient` is filled in
    /// by the scheduler).
    Deferred(RecipientFailure),
    /// Failed for good: bounce.
    Failed(RecipientFailure),
}

fn failure(status: &str, remote: Option<String>, diagnostic: String) -> RecipientFailure {
    RecipientFailure {
        recipient: String::new(),
        status: status.to_owned(),
        remote_mta: remote,
        diagnostic,
        last_attempt: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .ok()
            .map(|d| d.as_secs()),
    }
}

/// Why a hop could not be used: go on to the next one.
#[derive(Debug, Clone)]
pub(crate) struct Shortfall {
    pub disposition: Disposition,
    pub status: String,
    pub diagnostic: String,
    pub remote: Option<String>,
}

impl Shortfall {
    pub(crate) fn defer(status: &str, diagnostic: String) -> Self {
        Shortfall {
            disposition: Disposition::Defer,
            status: status.to_owned(),
            diagnostic,
            remote: None,
        }
    }

    fn outcome(&self) -> RcptOutcome {
        let f = failure(&self.status, self.remote.clone(), self.diagnostic.clone());
        match self.disposition {
            Disposition::Defer => RcptOutcome::Deferred(f),
            Disposition::Bounce => RcptOutcome::Failed(f),
        }
    }
}

enum HopResult {
    Done(Vec<(u32, RcptOutcome)>),
    Next(Shortfall),
}

/// The message's TLS stance for this domain (REQUIRETLS flag, tag, rule,
/// or `TLS-Required: No`).
fn message_tls(
    ctx: &Context,
    envelope: &Envelope,
    domain: &DomainName,
    rcpts: &[String],
    body: &[u8],
) -> MessageTls {
    let sender_domain = envelope
        .sender
        .rsplit_once('@')
        .and_then(|(_, d)| DomainName::parse(d).ok());
    let header = tls_required_header(body);
    let rules = ctx.settings.policy.requiretls();
    let mut result = MessageTls::Default;
    for r in rcpts {
        let m = rules.classify(&MessageFacts {
            mail_parameter: envelope.flags.requiretls,
            recipient: Some(r),
            sender_domain: sender_domain.as_ref(),
            recipient_domain: Some(domain),
            tls_required_header: header.as_deref(),
        });
        if m.is_require_tls() {
            return m;
        }
        result = m;
    }
    result
}

/// The value of a `TLS-Required` header field in the header section.
fn tls_required_header(body: &[u8]) -> Option<String> {
    let end = body
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(body.len());
    let head = String::from_utf8_lossy(body.get(..end).unwrap_or_default());
    let mut lines = head.split("\r\n").peekable();
    while let Some(line) = lines.next() {
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("TLS-Required")
        {
            let mut v = value.to_owned();
            while let Some(cont) = lines.next_if(|l| l.starts_with([' ', '\t'])) {
                v.push_str(cont);
            }
            return Some(v);
        }
    }
    None
}

fn smtp_envelope(
    envelope: &Envelope,
    rcpts: &[(u32, String)],
    requiretls: bool,
) -> Result<SmtpEnvelope, String> {
    let from = if envelope.sender.is_empty() {
        ReversePath::Null
    } else {
        ReversePath::parse(&format!("<{}>", envelope.sender))
            .map_err(|e| format!("stored sender <{}> is invalid: {e}", envelope.sender))?
    };
    let mut to = Vec::with_capacity(rcpts.len());
    for (_, r) in rcpts {
        let addr = strip_requiretls_tag(r).unwrap_or_else(|| r.clone());
        to.push(
            ForwardPath::parse(&format!("<{addr}>"))
                .map_err(|e| format!("stored recipient <{r}> is invalid: {e}"))?,
        );
    }
    Ok(SmtpEnvelope {
        from,
        params: MailParams {
            size: None,
            body: envelope.flags.eight_bit.then_some(BodyType::EightBitMime),
            smtputf8: envelope.flags.smtputf8,
            requiretls,
        },
        to,
    })
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
    let all = |o: RcptOutcome| {
        list.iter()
            .map(|(i, _)| (*i, o.clone()))
            .collect::<Vec<_>>()
    };
    let name = match DomainName::parse(domain) {
        Ok(n) => n,
        Err(e) => {
            ctx.log.line(format_args!(
                "MID {id} to {domain}: not a deliverable domain: {e}"
            ));
            return all(RcptOutcome::Failed(failure(
                "5.1.2",
                None,
                format!("bad destination domain {domain}: {e}"),
            )));
        }
    };
    let slots = ctx.destination_slots(&name);
    let Ok(_dest_permit) = slots.acquire_owned().await else {
        return all(RcptOutcome::Deferred(failure(
            "4.3.0",
            None,
            "delivery is shutting down".into(),
        )));
    };
    let rcpt_names: Vec<String> = list.iter().map(|(_, r)| r.clone()).collect();
    let message = message_tls(ctx, envelope, &name, &rcpt_names, body);
    let hops = match resolve(ctx, id, &name).await {
        NextHops::Hops(h) => h,
        NextHops::None(s) => {
            ctx.log.line(format_args!(
                "MID {id} to {domain}: no next hop: {} ({})",
                s.diagnostic, s.status
            ));
            return all(s.outcome());
        }
    };
    let mta_sts = ctx.sts.facts(ctx, id, &name).await;
    let mut last = Shortfall::defer("4.4.4", format!("no usable next hop for {domain}"));
    for hop in &hops {
        for addr in &hop.addrs {
            let next = hop.hop.clone().at(addr.ip());
            let now = SystemTime::now();
            let req = {
                let ex = ctx.exemptions.lock().unwrap_or_else(|p| p.into_inner());
                ctx.settings.policy.decide(
                    &ex,
                    &HopFacts {
                        domain: &name,
                        hop: &next,
                        tlsa: &hop.tlsa,
                        mta_sts: &mta_sts,
                        message,
                        now,
                    },
                )
            };
            let permit = ctx.connections.clone().acquire_owned().await;
            if permit.is_err() {
                return all(RcptOutcome::Deferred(failure(
                    "4.3.0",
                    None,
                    "delivery is shutting down".into(),
                )));
            }
            match try_hop(ctx, id, &name, hop, *addr, &req, &list, envelope, body).await {
                HopResult::Done(v) => return v,
                HopResult::Next(s) => last = s,
            }
        }
    }
    all(last.outcome())
}

fn rule_label(req: &HopRequirement<TlsaSet>) -> String {
    format!("R{}", req.rule.row())
}

#[allow(clippy::too_many_arguments)]
async fn try_hop(
    ctx: &Context,
    id: MessageId,
    domain: &DomainName,
    hop: &Hop,
    addr: SocketAddr,
    req: &HopRequirement<TlsaSet>,
    list: &[(u32, String)],
    envelope: &Envelope,
    body: &[u8],
) -> HopResult {
    let label = format!("{}[{}]:{}", hop.hop.host, addr.ip(), addr.port());
    let rule = rule_label(req);
    let dcid = Dcid::next();
    let (starttls, auth, enforce) = match &req.action {
        HopAction::Skip { shortfall, status } => {
            ctx.log.warn(format_args!(
                "{dcid} MID {id} to {domain} via {label} rule={rule} host skipped, not connecting: {} ({status})",
                req.rule
            ));
            return HopResult::Next(Shortfall {
                disposition: shortfall.disposition(),
                status: status.to_string(),
                diagnostic: format!("{label}: {}", req.rule),
                remote: None,
            });
        }
        HopAction::Cleartext => (StartTls::Never, None, false),
        HopAction::Opportunistic {
            report_authentication,
            ..
        } => (StartTls::IfOffered, Some(report_authentication), false),
        HopAction::Mandatory {
            authentication,
            require_requiretls,
            ..
        } => (
            StartTls::Required {
                requiretls: *require_requiretls,
            },
            Some(authentication),
            true,
        ),
    };
    let requiretls_param = matches!(
        req.action,
        HopAction::Mandatory {
            require_requiretls: true,
            ..
        }
    );
    let smtp_env = match smtp_envelope(envelope, list, requiretls_param) {
        Ok(e) => e,
        Err(e) => {
            return HopResult::Done(
                list.iter()
                    .map(|(i, _)| (*i, RcptOutcome::Failed(failure("5.1.3", None, e.clone()))))
                    .collect(),
            );
        }
    };
    let pool_key = match &req.action {
        HopAction::Skip { .. } => String::new(),
        HopAction::Cleartext => format!("{addr}|{}|clear", hop.hop.host),
        HopAction::Opportunistic {
            report_authentication,
            ..
        } => format!("{addr}|{}|opp|{report_authentication:?}", hop.hop.host),
        HopAction::Mandatory {
            authentication,
            require_requiretls,
            ..
        } => format!(
            "{addr}|{}|mandatory|{require_requiretls}|{authentication:?}",
            hop.hop.host
        ),
    };
    let per_connection = ctx
        .settings
        .policy
        .destinations()
        .lookup(domain)
        .limits
        .max_messages_per_connection;
    while let Some((old, mut open)) = ctx.pool.take(&pool_key) {
        match send(&mut open, smtp_env.clone(), body).await {
            Conversation::Sent { tls, result, auth } => {
                ctx.log.line(format_args!(
                    "{old} MID {id} to {domain} via {label} rule={rule} ({}) on the open connection (message {} on it)",
                    req.rule, open.sent
                ));
                let out = outcomes(ctx, id, old, &label, &rule, &tls, &auth, list, &result);
                if open.sent < per_connection {
                    ctx.pool.put(pool_key, old, open);
                } else {
                    close(open).await;
                }
                return HopResult::Done(out);
            }
            // The server closed it meanwhile: use a fresh connection.
            _ => close(open).await,
        }
    }
    ctx.log.line(format_args!(
        "{dcid} MID {id} to {domain} via {label} rule={rule} ({}) starttls={}",
        req.rule,
        match starttls {
            StartTls::Never => "no",
            StartTls::IfOffered => "if-offered",
            StartTls::Required { requiretls: false } => "required",
            StartTls::Required { requiretls: true } => "required+REQUIRETLS",
        }
    ));
    let (connector, verifier) = match auth {
        Some(a) if !a.is_none() => {
            let v = Arc::new(HopVerifier::new(
                a,
                enforce,
                ctx.pkix.clone(),
                ctx.settings.tls.provider.clone(),
            ));
            match client_config(v.clone(), &ctx.settings.tls) {
                Ok(c) => (TlsConnector::from(Arc::new(c)), Some(v)),
                Err(e) => {
                    return HopResult::Next(Shortfall::defer(
                        "4.7.5",
                        format!("outbound TLS configuration error: {e}"),
                    ));
                }
            }
        }
        _ => (ctx.plain_connector.clone(), None),
    };
    let server_name = hop.server_name.clone();
    let attempt = Attempt {
        addr,
        server_name,
        helo: &ctx.hostname,
        starttls,
        connector,
        verifier: verifier.clone(),
        connect_timeout: ctx.settings.connect_timeout,
        command_timeout: ctx.settings.command_timeout,
        data_timeout: ctx.settings.data_timeout,
    };
    let mut injected = 0;
    let (conv, open) = converse(&attempt, smtp_env.clone(), body, &mut injected).await;
    if let Some(open) = open {
        if open.sent < per_connection && !pool_key.is_empty() {
            ctx.pool.put(pool_key.clone(), dcid, open);
        } else {
            close(open).await;
        }
    }
    if injected > 0 {
        ctx.log.warn(format_args!(
            "{dcid} {label} sent {injected} bytes of plaintext behind its 220 to STARTTLS; discarded (injection attempt)"
        ));
    }
    let kind = verifier
        .as_ref()
        .map(|v| v.kind())
        .unwrap_or(AuthKind::None);
    match conv {
        Conversation::Sent { tls, result, auth } => {
            log_tls(
                ctx,
                dcid,
                &label,
                &rule,
                &tls,
                verifier.as_deref(),
                starttls,
            );
            HopResult::Done(outcomes(
                ctx, id, dcid, &label, &rule, &tls, &auth, list, &result,
            ))
        }
        Conversation::AuthFailed { detail } => {
            ctx.log.warn(format_args!(
                "{dcid} MID {id} to {domain} via {label} rule={rule} TLS failed: {} verification failed: {detail}",
                kind.as_str()
            ));
            give_up(
                ctx,
                dcid,
                req,
                PeerFailure::AuthenticationFailed,
                &label,
                detail,
            )
        }
        Conversation::TlsShortfall { failure: f, detail } => {
            ctx.log.warn(format_args!(
                "{dcid} MID {id} to {domain} via {label} rule={rule} TLS failed: {} ({detail})",
                failure_class(f)
            ));
            match req.on_peer_failure(f) {
                NextStep::RetryCleartext { exempt_until } => {
                    if let Some(until) = exempt_until {
                        ctx.exemptions
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .record(hop.hop.host.clone(), until);
                    }
                    let dcid2 = Dcid::next();
                    ctx.log.line(format_args!(
                        "{dcid2} MID {id} to {domain} via {label} rule={rule} retrying in cleartext after the failed handshake{}",
                        match exempt_until {
                            Some(u) => format!(
                                "; {} exempt from STARTTLS for {}s",
                                hop.hop.host,
                                u.duration_since(SystemTime::now()).map(|d| d.as_secs() + 1).unwrap_or(0)
                            ),
                            None => String::new(),
                        }
                    ));
                    let retry = Attempt {
                        starttls: StartTls::Never,
                        verifier: None,
                        connector: ctx.plain_connector.clone(),
                        ..attempt
                    };
                    let mut inj = 0;
                    let (conv, open) = converse(&retry, smtp_env, body, &mut inj).await;
                    if let Some(open) = open {
                        close(open).await;
                    }
                    match conv {
                        Conversation::Sent { tls, result, .. } => HopResult::Done(outcomes(
                            ctx, id, dcid2, &label, &rule, &tls, "none", list, &result,
                        )),
                        other => connection_failed(ctx, dcid2, &label, other),
                    }
                }
                _ => give_up(ctx, dcid, req, f, &label, detail),
            }
        }
        other => connection_failed(ctx, dcid, &label, other),
    }
}

fn failure_class(f: PeerFailure) -> &'static str {
    match f {
        PeerFailure::StarttlsNotOffered => "STARTTLS not available (not advertised, or no ESMTP)",
        PeerFailure::StarttlsRefused => "STARTTLS refused",
        PeerFailure::HandshakeFailed => "handshake error",
        PeerFailure::AuthenticationFailed => "certificate verification failed",
        PeerFailure::RequireTlsNotOffered => "REQUIRETLS not offered",
    }
}

fn give_up(
    ctx: &Context,
    dcid: Dcid,
    req: &HopRequirement<TlsaSet>,
    f: PeerFailure,
    label: &str,
    detail: String,
) -> HopResult {
    match req.on_peer_failure(f) {
        NextStep::GiveUp { shortfall, status } => {
            ctx.log.line(format_args!(
                "{dcid} message not sent to {label}: {status}; {}",
                match shortfall.disposition() {
                    Disposition::Defer => "next host, then defer",
                    Disposition::Bounce => "next host, then bounce",
                }
            ));
            HopResult::Next(Shortfall {
                disposition: shortfall.disposition(),
                status: status.to_string(),
                diagnostic: format!("{label}: TLS failed: {}: {detail}", failure_class(f)),
                remote: Some(label.to_owned()),
            })
        }
        other => {
            // The conversation stopped although the decision would go on
            // (a shortfall the decision tolerates): defer, never deliver in
            // a way the decision did not choose.
            ctx.log.line(format_args!(
                "{dcid} {label}: stopped after {} although the decision says {other:?}; deferring",
                failure_class(f)
            ));
            HopResult::Next(Shortfall::defer("4.7.0", format!("{label}: {detail}")))
        }
    }
}

fn connection_failed(ctx: &Context, dcid: Dcid, label: &str, c: Conversation) -> HopResult {
    let (status, detail, disposition) = match c {
        Conversation::Failed { detail } => ("4.4.1", detail, Disposition::Defer),
        Conversation::Unsendable { detail } => {
            let status = if detail.contains("SMTPUTF8") {
                "5.6.7"
            } else {
                "5.6.3"
            };
            (status, detail, Disposition::Bounce)
        }
        Conversation::TlsShortfall { detail, .. } | Conversation::AuthFailed { detail } => {
            ("4.7.0", detail, Disposition::Defer)
        }
        Conversation::Sent { .. } => ("4.4.1", "unexpected".into(), Disposition::Defer),
    };
    ctx.log.line(format_args!(
        "{dcid} {label} delivery failed: {detail} ({status})"
    ));
    HopResult::Next(Shortfall {
        disposition,
        status: status.to_owned(),
        diagnostic: format!("{label}: {detail}"),
        remote: Some(label.to_owned()),
    })
}

fn log_tls(
    ctx: &Context,
    dcid: Dcid,
    label: &str,
    rule: &str,
    tls: &TlsOutcome,
    verifier: Option<&HopVerifier>,
    starttls: StartTls,
) {
    match tls {
        TlsOutcome::Established(info) => {
            let auth = match verifier.map(|v| (v.kind(), v.result())) {
                None | Some((_, AuthResult::NotChecked)) => "auth=none".to_owned(),
                Some((k, AuthResult::Passed(how))) => format!("auth={} ok ({how})", k.as_str()),
                Some((k, AuthResult::Failed(why))) => {
                    format!("auth={} FAILED, report only: {why}", k.as_str())
                }
            };
            ctx.log.line(format_args!(
                "{dcid} {label} rule={rule} TLS success protocol {} cipher {} {auth}",
                info.protocol, info.cipher
            ));
        }
        TlsOutcome::NotAttempted if starttls == StartTls::Never => {
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

#[allow(clippy::too_many_arguments)]
fn outcomes(
    ctx: &Context,
    id: MessageId,
    dcid: Dcid,
    label: &str,
    rule: &str,
    tls: &TlsOutcome,
    auth: &str,
    list: &[(u32, String)],
    result: &MessageResult,
) -> Vec<(u32, RcptOutcome)> {
    let tls_word = match tls {
        TlsOutcome::Established(i) => i.protocol.clone(),
        _ => "none".to_owned(),
    };
    let judge = |reply: &Reply| -> RcptOutcome {
        let status = reply.enhanced().map(|e| e.to_string()).unwrap_or_else(|| {
            if reply.is_permanent() {
                "5.0.0".into()
            } else {
                "4.0.0".into()
            }
        });
        let f = failure(&status, Some(label.to_owned()), reply_text(reply));
        if reply.is_permanent() {
            RcptOutcome::Failed(f)
        } else {
            RcptOutcome::Deferred(f)
        }
    };
    let mut out = Vec::with_capacity(list.len());
    for (k, (i, rcpt)) in list.iter().enumerate() {
        let rcpt_reply = result.recipients.get(k).and_then(|(_, r)| r.as_ref());
        let outcome = if !result.mail.is_positive() {
            judge(&result.mail)
        } else {
            match rcpt_reply {
                Some(r) if !r.is_positive() => judge(r),
                Some(_) => match &result.data {
                    Some(d) if d.is_positive() => RcptOutcome::Delivered,
                    Some(d) => judge(d),
                    None => RcptOutcome::Deferred(failure(
                        "4.4.2",
                        Some(label.to_owned()),
                        "DATA was not sent".into(),
                    )),
                },
                None => RcptOutcome::Deferred(failure(
                    "4.4.2",
                    Some(label.to_owned()),
                    "no reply to RCPT".into(),
                )),
            }
        };
        match &outcome {
            RcptOutcome::Delivered => {
                let reply = result.data.as_ref().map(reply_text).unwrap_or_default();
                ctx.log.line(format_args!(
                    "MID {id} delivered to <{rcpt}> via {label} {dcid} rule={rule} tls={tls_word} auth={auth} reply=\"{reply}\""
                ));
            }
            RcptOutcome::Deferred(f) => ctx.log.line(format_args!(
                "MID {id} to <{rcpt}> via {label} {dcid} temporary failure: {} reply=\"{}\"",
                f.status, f.diagnostic
            )),
            RcptOutcome::Failed(f) => ctx.log.line(format_args!(
                "MID {id} to <{rcpt}> via {label} {dcid} permanent failure: {} reply=\"{}\"",
                f.status, f.diagnostic
            )),
        }
        out.push((*i, outcome));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_tls_required_header() {
        let body = b"Subject: x\r\nTLS-Required:\r\n No\r\n\r\nTLS-Required: yes\r\n";
        assert_eq!(tls_required_header(body).as_deref(), Some(" No"));
        assert_eq!(tls_required_header(b"Subject: y\r\n\r\nbody"), None);
        assert_eq!(tls_required_header(b""), None);
    }

    proptest::proptest! {
        /// Message bytes come from the network: never a panic.
        #[test]
        fn header_scan_never_panics(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = tls_required_header(&body);
        }
    }
}
