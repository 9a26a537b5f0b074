//! The delivery scheduler: a due queue of messages, one task per delivery
//! attempt, retries with back-off, and the end of a message's life in the
//! queue (every recipient delivered, or bounced with a DSN).
//!
//! Order of durable writes, so that nothing is lost and nothing is bounced
//! twice: a DSN is enqueued (and its commit awaited) before the recipients
//! it reports are marked finished; a crash between the two repeats the DSN,
//! never loses it. Retry times live only in memory: after a restart every
//! queued message is due at once (the spool's documented behaviour).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::delivery::{Context, RcptOutcome, deliver_domain};
use super::{NewMessage, OutboundHandle};
use crate::dsn::{FailedMessage, RecipientFailure, RelayedRecipient, bounce};
use crate::error::StartError;
use crate::maillog::MailLog;
use crate::settings::EngineSettings;
use crate::spool::{Envelope, MessageId, QueuedMessage, Spool};

/// A message in the scheduler.
#[derive(Debug)]
struct Queued {
    id: MessageId,
    envelope: Arc<Envelope>,
    pending: Vec<u32>,
    /// In memory from receipt to the first attempt; `None` after a deferral
    /// or a restart (read from the spool then).
    body: Option<Arc<Vec<u8>>>,
    attempts: u32,
}

#[derive(Debug)]
pub(crate) struct Running {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    pub(crate) async fn shutdown(self, grace: Duration) {
        let _ = self.stop.send(true);
        let mut task = self.task;
        if tokio::time::timeout(grace, &mut task).await.is_err() {
            task.abort();
        }
    }
}

pub(crate) fn start(
    settings: &EngineSettings,
    spool: Arc<Spool>,
    log: MailLog,
    recovered: Vec<QueuedMessage>,
    rx: mpsc::UnboundedReceiver<NewMessage>,
    handle: OutboundHandle,
    dns: Option<crate::dns::Resolver>,
) -> Result<Running, StartError> {
    let ctx = Arc::new(Context::new(settings, spool, log, handle, dns)?);
    let (stop, stop_rx) = watch::channel(false);
    if !recovered.is_empty() {
        ctx.log.line(format_args!(
            "queue: {} message(s) recovered from the spool, due now",
            recovered.len()
        ));
    }
    let task = tokio::spawn(run(ctx, recovered, rx, stop_rx));
    Ok(Running { stop, task })
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Bodies kept in memory for messages waiting to start; beyond this, a
/// waiting message's body is dropped and read back from the spool when its
/// attempt starts (the spool already made it durable).
const BODY_BUDGET: usize = 64 << 20;

async fn run(
    ctx: Arc<Context>,
    recovered: Vec<QueuedMessage>,
    mut rx: mpsc::UnboundedReceiver<NewMessage>,
    mut stop: watch::Receiver<bool>,
) {
    let mut waiting: HashMap<MessageId, Queued> = HashMap::new();
    let mut due: BinaryHeap<Reverse<(Instant, MessageId)>> = BinaryHeap::new();
    // Messages ready to start, oldest first; at most `max_inflight`
    // attempts run at once, so a burst waits here (bounded memory) instead
    // of as tasks each holding a body.
    let mut ready: VecDeque<Queued> = VecDeque::new();
    let mut held_bytes = 0usize;
    let max_inflight = ctx.settings.max_connections.max(1).saturating_mul(2);
    let mut inflight: JoinSet<Queued> = JoinSet::new();
    for m in recovered {
        ready.push_back(Queued {
            id: m.id,
            envelope: m.envelope,
            pending: m.pending,
            body: None,
            attempts: 0,
        });
    }
    loop {
        let now = Instant::now();
        while let Some(Reverse((at, id))) = due.peek().copied() {
            if at > now {
                break;
            }
            due.pop();
            if let Some(q) = waiting.remove(&id) {
                ready.push_back(q);
            }
        }
        while inflight.len() < max_inflight
            && let Some(q) = ready.pop_front()
        {
            held_bytes = held_bytes.saturating_sub(q.body.as_ref().map_or(0, |b| b.len()));
            inflight.spawn(attempt(ctx.clone(), q));
        }
        let next = due.peek().map(|Reverse((at, _))| *at);
        tokio::select! {
            _ = stop.changed() => break,
            new = rx.recv() => match new {
                Some(m) => {
                    let keep = held_bytes.saturating_add(m.body.len()) <= BODY_BUDGET;
                    if keep {
                        held_bytes += m.body.len();
                    }
                    ready.push_back(Queued {
                        id: m.id,
                        pending: (0..m.envelope.recipients.len() as u32).collect(),
                        envelope: m.envelope,
                        body: keep.then_some(m.body),
                        attempts: 0,
                    });
                }
                None => break,
            },
            Some(done) = inflight.join_next(), if !inflight.is_empty() => {
                if let Ok(q) = done && !q.pending.is_empty() {
                    let delay = ctx.settings.retry.delay(q.attempts);
                    due.push(Reverse((Instant::now() + delay, q.id)));
                    waiting.insert(q.id, q);
                }
            }
            _ = sleep_until(next) => {}
        }
    }
    // Shutdown: deliveries in flight get the grace delay (the engine bounds
    // it); whatever is not finished stays in the spool.
    while inflight.join_next().await.is_some() {}
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The domain part of a recipient, lower-cased (the grouping key).
fn domain_of(recipient: &str) -> String {
    recipient
        .rsplit_once('@')
        .map(|(_, d)| d)
        .unwrap_or(recipient)
        .to_ascii_lowercase()
}

/// One delivery attempt of one message: every pending recipient, grouped by
/// domain, domains in parallel.
async fn attempt(ctx: Arc<Context>, mut q: Queued) -> Queued {
    q.attempts = q.attempts.saturating_add(1);
    let body = match q.body.take() {
        Some(b) => b,
        None => match ctx.spool.body(q.id) {
            Ok(b) => Arc::new(b),
            Err(e) => {
                ctx.log.warn(format_args!(
                    "MID {} cannot be read from the spool: {e}; retrying later",
                    q.id
                ));
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
    let mut tasks = JoinSet::new();
    for (domain, rcpts) in by_domain {
        let (ctx, envelope, body) = (ctx.clone(), q.envelope.clone(), body.clone());
        let id = q.id;
        tasks.spawn(
            async move { deliver_domain(&ctx, id, &domain, &rcpts, &envelope, &body).await },
        );
    }
    let mut outcomes: Vec<(u32, RcptOutcome)> = Vec::new();
    while let Some(r) = tasks.join_next().await {
        if let Ok(mut v) = r {
            outcomes.append(&mut v);
        }
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
            RcptOutcome::Delivered(d) => {
                finished.push(i);
                if !d.dsn_passed {
                    relayed.push(RelayedRecipient {
                        recipient: rcpt,
                        remote_mta: d.remote,
                        diagnostic: d.reply,
                    });
                }
            }
            RcptOutcome::Failed(f) => {
                finished.push(i);
                failures.push((
                    i,
                    RecipientFailure {
                        recipient: rcpt,
                        ..f
                    },
                ));
            }
            RcptOutcome::Deferred(f) if expired => {
                finished.push(i);
                failures.push((
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
                ));
            }
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
        if !send_bounce(&ctx, &q, &body, &reports).await {
            // The DSN is not durable: keep the recipients pending.
            finished.retain(|i| !bounced.contains(i));
            still_pending.extend(bounced);
        }
    }
    if !relayed.is_empty() {
        super::notices::send_relayed_notice(&ctx, q.id, &q.envelope, &body, &relayed, unix_now())
            .await;
    }
    if !finished.is_empty()
        && let Err(e) = ctx.spool.finish(q.id, &finished).await
    {
        ctx.log.warn(format_args!(
            "MID {} outcome not recorded in the spool ({e}); it may be delivered again after a restart",
            q.id
        ));
    }
    still_pending.sort_unstable();
    q.pending = still_pending;
    if q.pending.is_empty() {
        ctx.log.line(format_args!("MID {} done", q.id));
    } else {
        ctx.log.line(format_args!(
            "MID {} deferred {} recipient(s) after attempt {}: {last_deferral}; retry in {}s",
            q.id,
            q.pending.len(),
            q.attempts,
            ctx.settings.retry.delay(q.attempts).as_secs()
        ));
    }
    q
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
async fn send_bounce(
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
                envelope.sender_or_recipient(),
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

trait FirstRecipient {
    fn sender_or_recipient(&self) -> &str;
}

impl FirstRecipient for Envelope {
    fn sender_or_recipient(&self) -> &str {
        self.recipients.first().map(String::as_str).unwrap_or("")
    }
}
