//! One delivery attempt of one message: every pending recipient, grouped by
//! domain, domains in parallel, and what the spool must remember after it.
//!
//! Order of durable writes, so that nothing is lost and as little as
//! possible is delivered twice:
//!
//! - the recipients a domain's next hop accepted are marked finished as soon
//!   as that domain's delivery returns, not after the slowest domain (group
//!   committed with everything else being written, never a sync of its
//!   own); a crash between the next hop's `250` and that write is the only
//!   way a message is delivered twice;
//! - a DSN is queued (and its commit awaited) before the recipients it
//!   reports are marked finished: a crash between the two repeats the DSN,
//!   never loses it;
//! - after a deferral the attempt count, next attempt time and last error
//!   are stored.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use super::delivery::{Context, RcptOutcome, deliver_domain};
use super::scheduler::Queued;
use super::{NewMessage, unix_now};
use crate::dsn::{FailedMessage, RecipientFailure, RelayedRecipient, bounce};
use crate::spool::{MessageId, Schedule, SpoolError};

/// The domain part of a recipient, lower-cased (the grouping key).
pub(super) fn domain_of(recipient: &str) -> String {
    recipient
        .rsplit_once('@')
        .map(|(_, d)| d)
        .unwrap_or(recipient)
        .to_ascii_lowercase()
}

/// One attempt; returns the message with the recipients still pending and
/// its new schedule. Recipients in domains whose delivery is `suspended`
/// are left pending without an attempt.
pub(super) async fn attempt(
    ctx: Arc<Context>,
    mut q: Queued,
    suspended: Arc<crate::suspension::DeliverySuspensions>,
) -> Queued {
    q.schedule.attempts = q.schedule.attempts.saturating_add(1);
    let body = match q.body.take() {
        Some(b) => b,
        None => match ctx.spool.body(q.id) {
            Ok(b) => Arc::new(b),
            Err(e) => {
                ctx.log.warn(format_args!(
                    "MID {} cannot be read from the spool: {e}; retrying later",
                    q.id
                ));
                defer(&ctx, &mut q, format!("cannot read the spool: {e}")).await;
                return q;
            }
        },
    };
    let mut by_domain: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for &i in &q.pending {
        if let Some(r) = q.envelope.recipients.get(i as usize) {
            by_domain.entry(domain_of(r)).or_default().push(i);
        }
    }
    let waiting = super::suspend::set_aside(&ctx, q.id, &suspended, &mut by_domain);
    let mut tasks = JoinSet::new();
    for (domain, rcpts) in by_domain {
        let (ctx, envelope, body) = (ctx.clone(), q.envelope.clone(), body.clone());
        let id = q.id;
        tasks.spawn(async move {
            let started = std::time::Instant::now();
            let out = deliver_domain(&ctx, id, &domain, &rcpts, &envelope, &body).await;
            ctx.metrics.delivery_took(started.elapsed());
            out
        });
    }
    let mut outcomes: Vec<(u32, RcptOutcome)> = Vec::new();
    while let Some(r) = tasks.join_next().await {
        let Ok(v) = r else { continue };
        let delivered: Vec<u32> = v
            .iter()
            .filter(|(_, o)| matches!(o, RcptOutcome::Delivered(_)))
            .map(|(i, _)| *i)
            .collect();
        if !delivered.is_empty() {
            record_finished(&ctx, q.id, &delivered).await;
        }
        outcomes.extend(v);
    }
    let expired =
        unix_now().saturating_sub(q.envelope.received_at) >= ctx.settings.queue_lifetime.as_secs();
    let mut finished = Vec::new();
    let mut failures = Vec::new();
    let mut still_pending = Vec::new();
    let mut relayed = Vec::new();
    let mut last_deferral = String::new();
    for (i, outcome) in outcomes {
        let rcpt = q
            .envelope
            .recipients
            .get(i as usize)
            .cloned()
            .unwrap_or_default();
        match outcome {
            // Already recorded finished above; a next hop without DSN
            // leaves the NOTIFY=SUCCESS notice to us (RFC 3461 §5.2.2).
            RcptOutcome::Delivered(d) => {
                if !d.dsn_passed {
                    relayed.push(RelayedRecipient {
                        recipient: rcpt,
                        remote_mta: d.remote,
                        diagnostic: d.reply,
                    });
                }
            }
            RcptOutcome::Failed(f) => failures.push((
                i,
                RecipientFailure {
                    recipient: rcpt,
                    ..f
                },
            )),
            RcptOutcome::Deferred(f) if expired => failures.push((
                i,
                RecipientFailure {
                    recipient: rcpt,
                    // RFC 3463: delivery time expired.
                    status: "5.4.7".to_owned(),
                    diagnostic: format!(
                        "message expired after {} in the queue; last error: {}",
                        human(ctx.settings.queue_lifetime),
                        f.diagnostic
                    ),
                    ..f
                },
            )),
            RcptOutcome::Deferred(f) => {
                last_deferral = f.diagnostic;
                still_pending.push(i);
            }
        }
    }
    if !failures.is_empty() {
        for (_, f) in &failures {
            ctx.log.line(format_args!(
                "MID {} bounced <{}>: {} {}",
                q.id, f.recipient, f.status, f.diagnostic
            ));
        }
        let (bounced, reports): (Vec<u32>, Vec<RecipientFailure>) = failures.into_iter().unzip();
        if send_bounce(&ctx, &q, &body, &reports).await {
            finished.extend(bounced);
        } else {
            // The DSN is not durable: keep the recipients pending.
            still_pending.extend(bounced);
        }
    }
    if !relayed.is_empty() {
        super::notices::send_relayed_notice(&ctx, q.id, &q.envelope, &body, &relayed, unix_now())
            .await;
    }
    if !finished.is_empty() {
        record_finished(&ctx, q.id, &finished).await;
    }
    let deferred = !still_pending.is_empty();
    still_pending.extend(waiting);
    still_pending.sort_unstable();
    q.pending = still_pending;
    if q.pending.is_empty() {
        ctx.log.line(format_args!("MID {} done", q.id));
    } else if deferred {
        defer(&ctx, &mut q, last_deferral).await;
    }
    q
}

/// Stores the next attempt after a failed one and logs the deferral.
async fn defer(ctx: &Context, q: &mut Queued, why: String) {
    let delay = ctx.settings.retry.delay(q.schedule.attempts);
    q.due_at = Instant::now() + delay;
    q.schedule = Schedule {
        attempts: q.schedule.attempts,
        next_attempt: unix_now() + delay.as_secs(),
        last_error: why,
    };
    ctx.log.line(format_args!(
        "MID {} deferred {} recipient(s) after attempt {}: {}; retry in {}s",
        q.id,
        q.pending.len(),
        q.schedule.attempts,
        q.schedule.last_error,
        delay.as_secs()
    ));
    if let Err(e) = ctx.spool.set_schedule(q.id, q.schedule.clone()).await
        && !matches!(e, SpoolError::UnknownMessage(_))
    {
        ctx.log.warn(format_args!(
            "MID {} retry time not stored in the spool ({e}); after a restart it is retried sooner",
            q.id
        ));
    }
}

/// Marks recipients finished, retrying until the spool has stored it: the
/// recipients have their outcome, and only a stored outcome keeps them
/// from being delivered again after a restart.
pub(super) async fn record_finished(ctx: &Context, id: MessageId, recipients: &[u32]) {
    let mut warned = false;
    loop {
        match ctx.spool.finish(id, recipients).await {
            Ok(()) | Err(SpoolError::UnknownMessage(_)) => {
                if warned {
                    ctx.log
                        .line(format_args!("MID {id} outcome stored in the spool at last"));
                }
                return;
            }
            Err(e) => {
                if !warned {
                    ctx.log.warn(format_args!(
                        "MID {id} outcome not stored in the spool ({e}); retrying every second (if the gateway stops first, these recipients are delivered again after the restart)"
                    ));
                    warned = true;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 86400 && s.is_multiple_of(86400) {
        format!("{} day(s)", s / 86400)
    } else if s >= 3600 && s.is_multiple_of(3600) {
        format!("{} hour(s)", s / 3600)
    } else {
        format!("{s}s")
    }
}

/// Queues the DSN durably; true once it is on disk (or none is due: null
/// sender).
pub(super) async fn send_bounce(
    ctx: &Context,
    q: &Queued,
    body: &[u8],
    failures: &[RecipientFailure],
) -> bool {
    let failed = FailedMessage {
        envelope: &q.envelope,
        message: body,
        queue_id: q.id.to_string(),
    };
    let Some((envelope, dsn)) = bounce(&ctx.hostname, &failed, failures, unix_now()) else {
        ctx.log.line(format_args!(
            "MID {} no bounce sent: {}",
            q.id,
            if q.envelope.sender.is_empty() {
                "the sender is the null sender"
            } else {
                "the sender asked for no failure notice (NOTIFY)"
            }
        ));
        return true;
    };
    let (id, commit) = ctx.spool.enqueue(envelope.clone(), &dsn);
    match commit.await {
        Ok(()) => {
            ctx.log.line(format_args!(
                "MID {id} queued bounce for MID {} to <{}> ({} bytes)",
                q.id,
                envelope
                    .recipients
                    .first()
                    .map(String::as_str)
                    .unwrap_or(""),
                dsn.len()
            ));
            ctx.handle.submit(NewMessage {
                id,
                envelope: Arc::new(envelope),
                body: Arc::new(dsn),
            });
            true
        }
        Err(e) => {
            ctx.log.warn(format_args!(
                "MID {} bounce could not be queued ({e}); will retry",
                q.id
            ));
            false
        }
    }
}
