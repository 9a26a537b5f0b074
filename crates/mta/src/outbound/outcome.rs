//! What one attempt at one hop came to, per recipient, and the mail-log
//! lines that say so: delivered, deferred (retry later) or failed (bounce),
//! each with the remote reply, the connection id and the deciding rule.

use std::time::SystemTime;

use portcullis_policy::{Disposition, PeerFailure};
use portcullis_smtp_tls::{MessageResult, Reply, TlsOutcome};

use crate::dsn::RecipientFailure;
use crate::maillog::{Dcid, MailLog, reply_text};
use crate::spool::MessageId;

/// What happened to one recipient in this attempt.
#[derive(Debug, Clone)]
pub(crate) enum RcptOutcome {
    Delivered(Delivered),
    /// Try again later (status and reason inside; `recipient` is filled in
    /// by the scheduler).
    Deferred(RecipientFailure),
    /// Failed for good: bounce.
    Failed(RecipientFailure),
}

pub(crate) fn failure(
    status: &str,
    remote: Option<String>,
    diagnostic: String,
) -> RecipientFailure {
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

/// A recipient the next hop took.
#[derive(Debug, Clone)]
pub(crate) struct Delivered {
    /// The next hop's host name (the DSN's Remote-MTA).
    pub remote: String,
    /// Its reply to the final dot.
    pub reply: String,
    /// The next hop took the DSN parameters; if not, a `NOTIFY=SUCCESS`
    /// sender is owed a "relayed" notice.
    pub dsn_passed: bool,
}

/// Why a hop could not be used: go on to the next one.
#[derive(Debug, Clone)]
pub(crate) struct Shortfall {
    pub disposition: Disposition,
    pub status: String,
    pub diagnostic: String,
    pub remote: Option<String>,
    /// The TLS rule of the decision refused this hop: why (for the alert
    /// raised when every MX of a destination is refused so).
    pub tls_refused: Option<String>,
}

impl Shortfall {
    pub(crate) fn defer(status: &str, diagnostic: String) -> Self {
        Shortfall {
            disposition: Disposition::Defer,
            status: status.to_owned(),
            diagnostic,
            remote: None,
            tls_refused: None,
        }
    }

    pub(crate) fn outcome(&self) -> RcptOutcome {
        let f = failure(&self.status, self.remote.clone(), self.diagnostic.clone());
        match self.disposition {
            Disposition::Bounce => RcptOutcome::Failed(f),
            // Defer, or a disposition this build does not know: keep the
            // message queued.
            _ => RcptOutcome::Deferred(f),
        }
    }
}

/// The failure class of the mail log (`TLS failed: <class>`).
pub(crate) fn failure_class(f: PeerFailure) -> &'static str {
    match f {
        PeerFailure::StarttlsNotOffered => "STARTTLS not available (not advertised, or no ESMTP)",
        PeerFailure::StarttlsRefused => "STARTTLS refused",
        PeerFailure::HandshakeFailed => "handshake error",
        PeerFailure::AuthenticationFailed => "certificate verification failed",
        PeerFailure::RequireTlsNotOffered => "REQUIRETLS not offered",
        _ => "TLS requirement not met",
    }
}

/// Where a message went: for the per-recipient log lines.
pub(crate) struct Leg<'a> {
    pub id: MessageId,
    pub dcid: Dcid,
    /// `host[ip]:port`, for the log.
    pub label: &'a str,
    /// The host name (or `[ip]`), for the DSN's Remote-MTA.
    pub host: &'a str,
    pub rule: &'a str,
}

/// Each recipient's outcome from the server's replies, one log line each.
pub(crate) fn outcomes(
    log: &MailLog,
    leg: &Leg<'_>,
    tls: &TlsOutcome,
    auth: &str,
    list: &[(u32, String)],
    result: &MessageResult,
    dsn_passed: bool,
) -> Vec<(u32, RcptOutcome)> {
    let Leg {
        id,
        dcid,
        label,
        host,
        rule,
    } = *leg;
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
        let f = failure(&status, Some(host.to_owned()), reply_text(reply));
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
                    Some(d) if d.is_positive() => RcptOutcome::Delivered(Delivered {
                        remote: host.to_owned(),
                        reply: reply_text(d),
                        dsn_passed,
                    }),
                    Some(d) => judge(d),
                    None => RcptOutcome::Deferred(failure(
                        "4.4.2",
                        Some(host.to_owned()),
                        format!("{label}: DATA was not sent"),
                    )),
                },
                None => RcptOutcome::Deferred(failure(
                    "4.4.2",
                    Some(host.to_owned()),
                    format!("{label}: no reply to RCPT"),
                )),
            }
        };
        match &outcome {
            RcptOutcome::Delivered(_) => {
                let reply = result.data.as_ref().map(reply_text).unwrap_or_default();
                log.line(format_args!(
                    "MID {id} delivered to <{rcpt}> via {label} {dcid} rule={rule} tls={tls_word} auth={auth} reply=\"{reply}\""
                ));
            }
            RcptOutcome::Deferred(f) => log.line(format_args!(
                "MID {id} to <{rcpt}> via {label} {dcid} temporary failure: {} reply=\"{}\"",
                f.status, f.diagnostic
            )),
            RcptOutcome::Failed(f) => log.line(format_args!(
                "MID {id} to <{rcpt}> via {label} {dcid} permanent failure: {} reply=\"{}\"",
                f.status, f.diagnostic
            )),
        }
        out.push((*i, outcome));
    }
    out
}
