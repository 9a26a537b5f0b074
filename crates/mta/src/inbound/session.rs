//! One inbound SMTP session: limits and HAT at connect, the smtp-tls server
//! session with the TLS mode of the client's sender group, the RAT on every
//! `RCPT`, and the spool on every message. Message text is streamed: the
//! `Received` header is written when DATA starts and the body is appended to
//! it as it arrives, so the gateway holds one copy of each message. The
//! client hears `250` only once the spool's commit has resolved (the message
//! is on stable storage); then the message goes to the scheduler with its
//! text still in memory.
//!
//! Every step that matters to an operator is one mail-log line: the
//! connection and its HAT verdict (sender group and mail flow policy by
//! name), TLS success the moment the handshake completes, or its failure,
//! every command the session refused (rate-limited, see `refusals`), each
//! message queued or refused, and the close, including "TLS was required
//! but the client left without starting it".
//!
//! `RCPT TO:<Postmaster>` (no domain) is always accepted (RFC 5321 §4.5.1)
//! and goes to the configured postmaster address. DSN parameters (RFC 3461)
//! are accepted and stored with the message for delivery to honour.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use portcullis_policy::requiretls::{tls_required_header, tls_required_header_says_no};
use portcullis_policy::{ClientFacts, ConnectionAction, InboundTls, RcptVerdict, canonical_ip};
use portcullis_smtp_tls::{
    BodyType, CloseReason, Error as SmtpError, ForwardPath, MessageRefusal, Reply,
    ServerConnection, ServerEvent, ServerSession, SessionEnd, TlsMode,
};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::ListenerContext;
use super::limits::Refusal;
use super::received::{Trace, header};
use super::refusals::RefusalLog;
use super::report_intake::Diverted;
use super::session_settings::{policy_name, postmaster_address, server_config};
use crate::maillog::{Icid, reply_text};
use crate::outbound::NewMessage;
use crate::spool::{DsnRequest, Envelope, EnvelopeFlags};

/// A reply from this module's own constants (codes and enhanced codes are
/// fixed or come from policy's typed statuses; only the text varies, and
/// `Reply::new` sanitises text rather than refusing it).
pub(super) fn fixed(code: u16, enhanced: &str, text: &str) -> Reply {
    Reply::new(code, enhanced, text)
        .or_else(|_| Reply::new(code, "", text))
        .or_else(|_| Reply::new(451, "", text))
        .unwrap_or_else(|_| unreachable!("451 without an enhanced code is always valid"))
}

/// Writes one reply and closes: for refusals before the SMTP session starts.
async fn refuse(mut stream: TcpStream, reply: Reply) {
    let _ = stream.write_all(&reply.encode()).await;
    let _ = stream.shutdown().await;
}

fn tls_word(t: InboundTls) -> &'static str {
    match t {
        InboundTls::Off => "off",
        InboundTls::Preferred => "preferred",
        InboundTls::Required => "required",
    }
}

/// The recipient's domain for the RAT: `<Postmaster>` is the listener's own.
fn rcpt_domain<'a>(to: &'a ForwardPath, own: &'a str) -> &'a str {
    match to.mailbox() {
        Some(m) => m.domain(),
        None => own,
    }
}

/// The address a recipient is queued for: `<Postmaster>` becomes the
/// listener's postmaster address.
fn path_text(to: &ForwardPath, postmaster: &str) -> String {
    match to.mailbox() {
        Some(m) => m.to_string(),
        None => postmaster.to_owned(),
    }
}

pub(crate) async fn run(ctx: Arc<ListenerContext>, stream: TcpStream, peer: SocketAddr) {
    let icid = Icid::next();
    let log = &ctx.log;
    let l = &ctx.settings;
    if let Some(reply) = super::conservation::refuse_connection(&ctx, icid, peer) {
        refuse(stream, reply).await;
        return;
    }
    let ip = canonical_ip(peer.ip());
    let fcrdns = match &ctx.names {
        Some(resolver) => {
            resolver
                .forward_confirmed_name(ip, resolver.timeout())
                .await
        }
        None => None,
    };
    let hat = l.access.connect(&ClientFacts {
        ip,
        fcrdns: fcrdns.clone(),
    });
    let group = hat.group.unwrap_or("(no sender group matched)");
    let policy = hat.policy;
    let action = match policy.action {
        ConnectionAction::Accept => "ACCEPTED",
        ConnectionAction::Relay => "RELAYED",
        ConnectionAction::Reject => "REJECTED",
        ConnectionAction::TcpRefuse => "TCP-REFUSED",
        // An action this build does not know is refused below.
        _ => "REJECTED (unknown HAT action)",
    };
    log.line(format_args!(
        "{icid} new from {peer}{} on listener {:?} sender-group {group} policy {action} tls={} (mail flow policy {:?})",
        match (&ctx.names, &fcrdns) {
            (Some(_), Some(n)) => format!(" ({n}, forward-confirmed)"),
            (Some(_), None) => " (no forward-confirmed name)".to_owned(),
            (None, _) => String::new(),
        },
        l.name,
        tls_word(policy.tls),
        policy_name(l, hat.group)
    ));
    match policy.action {
        ConnectionAction::TcpRefuse => {
            log.line(format_args!("{icid} close: connection refused by the HAT"));
            return;
        }
        ConnectionAction::Reject => {
            refuse(
                stream,
                fixed(554, "5.7.1", &format!("{} Access denied", l.hostname)),
            )
            .await;
            log.line(format_args!(
                "{icid} close: rejected by the HAT (554 5.7.1)"
            ));
            return;
        }
        ConnectionAction::Accept | ConnectionAction::Relay => {}
        // A HAT action this build does not know (the enum is
        // non_exhaustive): refuse rather than accept mail on a guess.
        _ => {
            refuse(
                stream,
                fixed(554, "5.7.1", &format!("{} Access denied", l.hostname)),
            )
            .await;
            log.warn(format_args!(
                "{icid} close: the HAT chose an action this gateway does not know; refused (554 5.7.1)"
            ));
            return;
        }
    }
    let _slot = match ctx
        .limits
        .acquire_within(
            ip,
            policy.limits.max_connections_per_host,
            std::time::Duration::from_millis(250),
        )
        .await
    {
        Ok(slot) => slot,
        Err(refusal) => {
            let why = match refusal {
                Refusal::ListenerFull { max } => {
                    format!("listener has its maximum of {max} sessions open")
                }
                Refusal::HostFull { max } => {
                    format!("client has its maximum of {max} sessions open")
                }
            };
            refuse(
                stream,
                fixed(
                    421,
                    "4.7.0",
                    &format!("{} Too many connections, try again later", l.hostname),
                ),
            )
            .await;
            log.line(format_args!("{icid} close: refused with 421: {why}"));
            return;
        }
    };
    if let Some(reply) = super::conservation::refuse_private_over_limit(&ctx, icid) {
        refuse(stream, reply).await;
        return;
    }
    let mut mode = match policy.tls {
        InboundTls::Off => TlsMode::Off,
        InboundTls::Preferred => TlsMode::Preferred,
        InboundTls::Required => TlsMode::Required,
    };
    if mode != TlsMode::Off && ctx.acceptor.is_none() {
        if mode == TlsMode::Required {
            refuse(
                stream,
                fixed(421, "4.7.0", &format!("{} TLS not available", l.hostname)),
            )
            .await;
            log.warn(format_args!(
                "{icid} close: TLS is required for sender-group {group} but listener {:?} has no certificate (421 4.7.0)",
                l.name
            ));
            return;
        }
        log.warn(format_args!(
            "{icid} STARTTLS not offered: listener {:?} has no certificate",
            l.name
        ));
        mode = TlsMode::Off;
    }
    let config = server_config(l, &policy.limits, mode);
    let session = ServerSession::new(config, Instant::now());
    let mut conn = ServerConnection::new(stream, session, ctx.acceptor.clone());
    let mut abort = ctx.abort.clone();
    let mut refusals = RefusalLog::default();
    let mut incoming: Option<Incoming> = None;
    loop {
        let event = tokio::select! {
            ev = conn.next_event() => Some(ev),
            _ = abort.wait_for(|a| *a) => None,
        };
        let Some(event) = event else {
            super::storage::say_shutting_down(&mut conn, &l.hostname).await;
            log.line(format_args!(
                "{icid} close: the gateway is shutting down (grace delay over, answered 421 4.3.2)"
            ));
            return;
        };
        let result = match event {
            Ok(ServerEvent::TlsEstablished(info)) => {
                log.line(format_args!(
                    "{icid} TLS success protocol {} cipher {}",
                    info.protocol, info.cipher
                ));
                Ok(())
            }
            Ok(ServerEvent::CommandRefused { command, reply }) => {
                refusals.refused(log, icid, &command, &reply);
                Ok(())
            }
            Ok(ServerEvent::MessageAbandoned) => {
                if let Some(m) = incoming.take() {
                    log.line(format_args!(
                        "{icid} message from {} abandoned by the client before its last BDAT chunk",
                        m.envelope.from
                    ));
                }
                Ok(())
            }
            Ok(ServerEvent::Rcpt {
                to: ForwardPath::Postmaster,
            }) => {
                log.line(format_args!(
                    "{icid} RCPT <Postmaster> accepted for {} (RFC 5321 section 4.5.1)",
                    postmaster_address(l)
                ));
                conn.accept()
            }
            Ok(ServerEvent::Mail { from, params }) => {
                let refusal = super::conservation::refuse_mail(&ctx, icid, &from)
                    .or_else(|| super::storage::refuse_mail(&ctx, icid, &from, &params));
                match refusal {
                    Some(reply) => conn.reject(reply),
                    None => conn.accept(),
                }
            }
            Ok(ServerEvent::Rcpt { to }) => {
                let domain = rcpt_domain(&to, &l.hostname);
                match l.access.recipient(&hat, domain) {
                    RcptVerdict::Accept | RcptVerdict::Relay => conn.accept(),
                    RcptVerdict::Refuse { status, reason } => {
                        log.line(format_args!(
                            "{icid} RCPT {to} refused: {reason} ({status})"
                        ));
                        let code = if status.is_transient() { 450 } else { 550 };
                        conn.reject(fixed(code, &status.to_string(), &reason))
                    }
                    // A verdict this build does not know: refuse for now
                    // (4xx, so the client retries) rather than relay on a guess.
                    other => {
                        log.warn(format_args!(
                            "{icid} RCPT {to} refused: unknown RAT verdict {other:?} (451 4.3.0)"
                        ));
                        conn.reject(fixed(
                            451,
                            "4.3.0",
                            "Recipient not accepted now, try again later",
                        ))
                    }
                }
            }
            Ok(ServerEvent::MessageStart { envelope }) => {
                let dsn = conn.session().recipient_params().to_vec();
                let mut m = start_message(&ctx, icid, ip, &conn, envelope);
                m.rcpt_params = dsn;
                incoming = Some(m);
                Ok(())
            }
            Ok(ServerEvent::MessageData(piece)) => {
                if let Some(m) = incoming.as_mut() {
                    m.text.extend_from_slice(&piece);
                }
                Ok(())
            }
            Ok(ServerEvent::MessageEnd) => match incoming.take() {
                Some(message) => {
                    match super::report_intake::divert(&ctx, icid, ip, message).await {
                        Diverted::Done(Ok(r)) => conn.accept_with(r),
                        Diverted::Done(Err(r)) => conn.reject(r),
                        Diverted::Rest(message) => match queue_message(&ctx, icid, message).await {
                            Ok(r) => conn.accept_with(r),
                            Err(r) => conn.reject(r),
                        },
                    }
                }
                // The session never ends a message it did not start; if it
                // did, there is no text to queue: refuse, do not accept.
                None => conn.reject(fixed(
                    451,
                    "4.3.0",
                    "Requested action aborted: local error in processing",
                )),
            },
            Ok(ServerEvent::MessageRefused { reason }) => {
                let sender = incoming
                    .take()
                    .map(|m| m.envelope.from.to_string())
                    .unwrap_or_default();
                let answer = reply_text(&reason.reply());
                if reason == MessageRefusal::BareLineEnding {
                    log.warn(format_args!(
                        "{icid} message from {sender} refused: {reason} (answered {answer})"
                    ));
                } else {
                    log.line(format_args!(
                        "{icid} message from {sender} refused: {reason} (answered {answer})"
                    ));
                }
                Ok(())
            }
            Ok(ServerEvent::StartTls) => Ok(()),
            Ok(ServerEvent::InjectionAttempt { discarded }) => {
                log.warn(format_args!(
                    "{icid} discarded {discarded} bytes of plaintext sent behind STARTTLS (command injection attempt, CVE-2011-0411)"
                ));
                Ok(())
            }
            Ok(ServerEvent::Closed(end)) => {
                if refusals.unlogged() > 0 {
                    log.line(format_args!(
                        "{icid} {} further refused command(s) were not logged one by one",
                        refusals.unlogged()
                    ));
                }
                log_close(&ctx, icid, policy.tls, &end);
                return;
            }
            // An event this build does not know: end the session without
            // accepting anything (whatever it was, no 250 was given).
            Ok(other) => {
                log.warn(format_args!(
                    "{icid} close: unexpected SMTP session event {other:?}"
                ));
                return;
            }
            Err(SmtpError::Handshake(e)) => {
                ctx.metrics.handshake_failed();
                log.warn(format_args!("{icid} TLS failed: handshake error: {e}"));
                log.line(format_args!("{icid} close: TLS handshake failed"));
                return;
            }
            Err(e) => {
                log.line(format_args!("{icid} close: {e}"));
                return;
            }
        };
        if let Err(e) = result {
            log.line(format_args!("{icid} close: {e}"));
            return;
        }
    }
}

fn log_close(ctx: &ListenerContext, icid: Icid, tls: InboundTls, end: &SessionEnd) {
    ctx.metrics.closed(end.tls_active);
    let reason = match end.reason {
        CloseReason::Quit => "client sent QUIT",
        CloseReason::PeerClosed => "client closed the connection",
        CloseReason::TooManyErrors => "too many errors (421 4.7.0)",
        CloseReason::TooMuchPendingInput => {
            "too much input sent without waiting for replies (421 4.7.0)"
        }
        CloseReason::Timeout => "idle timeout (421 4.4.2)",
        CloseReason::TlsHandshakeTimeout => {
            "the TLS handshake did not complete in time (closed without a reply)"
        }
        CloseReason::DataTimeout => "the message transfer took too long (421 4.4.2)",
        CloseReason::SessionTimeout => "session time limit reached (421 4.4.2)",
        CloseReason::UnframedChunk => {
            "BDAT chunk size unreadable, the chunk could not be skipped (421 4.5.4)"
        }
        _ => "session ended",
    };
    if tls == InboundTls::Required && !end.tls_active && end.messages_accepted == 0 {
        ctx.log.warn(format_args!(
            "{icid} TLS required but client left without STARTTLS: no message delivered, {} command(s) refused with 530 5.7.0",
            end.refused_without_tls
        ));
    }
    ctx.log.line(format_args!(
        "{icid} close: {reason}; {} message(s) accepted, tls={}",
        end.messages_accepted,
        if end.tls_active { "yes" } else { "no" }
    ));
}

/// A message being received: its envelope, and its spool text so far (the
/// `Received` header, then the body as it arrives).
pub(super) struct Incoming {
    pub(super) envelope: portcullis_smtp_tls::Envelope,
    /// The recipients' DSN parameters, in envelope order.
    pub(super) rcpt_params: Vec<portcullis_smtp_tls::RcptParams>,
    pub(super) text: Vec<u8>,
}

/// DATA started: the spool text opens with the trace header, written now
/// (the time the message began to arrive, as Postfix stamps it).
fn start_message(
    ctx: &ListenerContext,
    icid: Icid,
    ip: std::net::IpAddr,
    conn: &ServerConnection<TcpStream>,
    envelope: portcullis_smtp_tls::Envelope,
) -> Incoming {
    let postmaster = postmaster_address(&ctx.settings);
    let single = match envelope.to.as_slice() {
        [only] => Some(format!("<{}>", path_text(only, &postmaster))),
        _ => None,
    };
    let trace = header(
        &Trace {
            helo: conn.session().helo(),
            esmtp: conn.session().is_esmtp(),
            client: ip,
            by: &ctx.gateway_hostname,
            tls: conn.session().tls(),
            utf8: envelope.params.smtputf8,
            icid: icid.get(),
            single_recipient: single.as_deref(),
        },
        time::OffsetDateTime::now_utc(),
    );
    Incoming {
        envelope,
        rcpt_params: Vec::new(),
        text: trace.into_bytes(),
    }
}

/// Spools one message; the reply is `250` only after the commit resolved.
async fn queue_message(
    ctx: &ListenerContext,
    icid: Icid,
    Incoming {
        envelope,
        rcpt_params,
        text: message,
    }: Incoming,
) -> Result<Reply, Reply> {
    let postmaster = postmaster_address(&ctx.settings);
    let sender = envelope
        .from
        .mailbox()
        .map(ToString::to_string)
        .unwrap_or_default();
    let recipients: Vec<String> = envelope
        .to
        .iter()
        .map(|t| path_text(t, &postmaster))
        .collect();
    let received_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let spool_envelope = Envelope {
        sender,
        recipients,
        received_at,
        flags: EnvelopeFlags {
            requiretls: envelope.params.requiretls,
            smtputf8: envelope.params.smtputf8,
            eight_bit: envelope.params.body == Some(BodyType::EightBitMime),
        },
        dsn: DsnRequest {
            ret: envelope.params.ret,
            envid: envelope.params.envid.clone(),
            recipients: rcpt_params,
        },
    };
    let (id, commit) = ctx.spool.enqueue(spool_envelope.clone(), &message);
    match commit.await {
        Ok(()) => {
            ctx.log.line(format_args!(
                "MID {id} queued from <{}> to {} recipient(s) ({} bytes) {icid}{}",
                spool_envelope.sender,
                spool_envelope.recipients.len(),
                message.len(),
                if spool_envelope.flags.requiretls {
                    " REQUIRETLS"
                } else if tls_required_header(&message)
                    .is_some_and(|v| tls_required_header_says_no(&v))
                {
                    // REQUIRETLS overrides the header (RFC 8689 §5), so
                    // only shown without it; delivery says when it mattered.
                    " TLS-Required: No"
                } else {
                    ""
                }
            ));
            let reply = fixed(250, "2.0.0", &format!("Ok: queued as {id}"));
            ctx.outbound.submit(NewMessage {
                id,
                envelope: Arc::new(spool_envelope),
                body: Arc::new(message),
            });
            Ok(reply)
        }
        Err(e @ crate::spool::SpoolError::TooLarge(_)) => {
            ctx.log.line(format_args!(
                "{icid} message from <{}> NOT queued: {e}",
                spool_envelope.sender
            ));
            Err(fixed(552, "5.3.4", "Message too big for the queue"))
        }
        Err(e) => {
            if let Some(r) = super::storage::not_stored(ctx, icid, &spool_envelope.sender, &e) {
                return Err(r);
            }
            ctx.log.warn(format_args!(
                "{icid} message from <{}> NOT queued: {e}",
                spool_envelope.sender
            ));
            let r = fixed(
                451,
                "4.3.0",
                "Requested action aborted: local error in processing",
            );
            ctx.log
                .line(format_args!("{icid} answered {}", reply_text(&r)));
            Err(r)
        }
    }
}
