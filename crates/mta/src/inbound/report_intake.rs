//! Mail to the TLS report inbox (`[tls-report-inbox] address`): at the end
//! of DATA, recipients that are inbox addresses are taken out of the
//! envelope and the message's report part goes to the report store instead
//! of the queue. The client hears `250` for a report-only message once the
//! report is on stable storage, `550 5.6.0` with the reason for a report
//! that does not parse (its bytes kept aside with the reason), and `451`
//! when the store cannot be written (nothing kept; the client retries).
//! A message for other recipients too is queued for them as usual.

use std::net::IpAddr;
use std::sync::Arc;

use portcullis_smtp_tls::Reply;

use super::ListenerContext;
use super::session::{Incoming, fixed};
use crate::maillog::Icid;
use crate::tlsrpt_inbox::{Intake, ReportInbox, ReportSource, report_part};

/// What is left to do with a message after the inbox took its share.
pub(super) enum Diverted {
    /// Answered: every recipient was an inbox address (or the store
    /// failed).
    Done(Result<Reply, Reply>),
    /// Queue the message for the recipients left.
    Rest(Incoming),
}

pub(super) async fn divert(
    ctx: &ListenerContext,
    icid: Icid,
    client: IpAddr,
    mut message: Incoming,
) -> Diverted {
    let inbox = ctx
        .report_inbox
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let Some(inbox) = inbox else {
        return Diverted::Rest(message);
    };
    let is_ours = |to: &portcullis_smtp_tls::ForwardPath| {
        to.mailbox()
            .is_some_and(|m| inbox.is_inbox_address(&m.to_string()))
    };
    let ours: Vec<String> = message
        .envelope
        .to
        .iter()
        .filter(|t| is_ours(t))
        .map(ToString::to_string)
        .collect();
    if ours.is_empty() {
        return Diverted::Rest(message);
    }
    let sender = message.envelope.from.to_string();
    let source = ReportSource {
        via: "smtp".to_owned(),
        peer: client.to_string(),
        detail: format!("from {sender} to {} ({icid})", ours.join(", ")),
    };
    let only_reports = ours.len() == message.envelope.to.len();
    // The text is needed again only when others get the message.
    let text = if only_reports {
        std::mem::take(&mut message.text)
    } else {
        message.text.clone()
    };
    let store = inbox.clone();
    let intake = tokio::task::spawn_blocking(move || take_mail(&store, &text, &source)).await;
    let log = &ctx.log;
    let reply = match intake {
        Ok(Ok(Intake::Stored {
            id,
            report,
            replaced,
        })) => {
            log.line(format_args!(
                "{icid} TLS report from {sender} stored as {}",
                crate::tlsrpt_inbox::stored_summary(&id, &report, replaced)
            ));
            Ok(fixed(
                250,
                "2.0.0",
                &format!("Ok: TLS report stored as {id}"),
            ))
        }
        Ok(Ok(Intake::Refused { id, reason })) => {
            log.warn(format_args!(
                "{icid} TLS report from {sender} refused: {reason}; kept aside as {id} (answered 550 5.6.0)"
            ));
            Err(fixed(
                550,
                "5.6.0",
                &format!("TLS report refused: {reason}"),
            ))
        }
        Ok(Err(e)) => store_failed(ctx, icid, &sender, &e.to_string()),
        Err(e) => store_failed(ctx, icid, &sender, &e.to_string()),
    };
    if only_reports || is_transient(&reply) {
        return Diverted::Done(reply);
    }
    // Other recipients remain: the report's fate is in the log; the
    // message goes to them as usual.
    let keep: Vec<bool> = message.envelope.to.iter().map(|t| !is_ours(t)).collect();
    if message.rcpt_params.len() == keep.len() {
        let mut flags = keep.iter();
        message
            .rcpt_params
            .retain(|_| *flags.next().unwrap_or(&true));
    }
    let mut flags = keep.iter();
    message
        .envelope
        .to
        .retain(|_| *flags.next().unwrap_or(&true));
    Diverted::Rest(message)
}

fn is_transient(reply: &Result<Reply, Reply>) -> bool {
    reply.as_ref().err().is_some_and(Reply::is_transient)
}

/// Finds the report part and hands it to the inbox (blocking: fsync).
fn take_mail(
    inbox: &Arc<ReportInbox>,
    text: &[u8],
    source: &ReportSource,
) -> std::io::Result<Intake> {
    match report_part(text) {
        Ok(bytes) => inbox.take(&bytes, source),
        Err(reason) => {
            // Keep the message itself when it is within the report cap.
            let keep =
                (text.len() as u64 <= inbox.settings().limits.max_received_bytes).then_some(text);
            inbox.refuse_because(keep, "no-report", &reason, source)
        }
    }
}

fn store_failed(
    ctx: &ListenerContext,
    icid: Icid,
    sender: &str,
    error: &str,
) -> Result<Reply, Reply> {
    ctx.log.warn(format_args!(
        "{icid} TLS report from {sender} NOT stored: {error} (answered 451 4.3.0; the sender will retry)"
    ));
    Err(fixed(
        451,
        "4.3.0",
        "Requested action aborted: local error in processing",
    ))
}
