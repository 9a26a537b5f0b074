//! The delivery scheduler: which message is attempted when. It keeps the
//! queue in four places — ready to start, waiting for its next attempt,
//! held by the operator, in flight (at most `max_inflight` attempts at
//! once) — and moves messages between them on new mail, finished attempts,
//! due times and operator commands (`queue_ops.rs`). One attempt of one
//! message is `attempt.rs`.
//!
//! Retry times and attempt counts are stored in the spool after every
//! deferral, so a restart resumes the schedule instead of retrying
//! everything at once (`resume.rs` spreads the retries that fell due while
//! the gateway was down). Delivery pauses while the spool cannot store
//! outcomes (a full disk): a delivery whose outcome is lost is repeated
//! after a restart, so it is better not attempted.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::NewMessage;
use super::attempt::attempt;
use super::delivery::Context;
use super::queue_ops::Command;
use super::resume::plan_recovered;
use crate::spool::{Envelope, MessageId, QueuedMessage, Schedule};
use crate::suspension::DeliverySuspensions;

/// A message in the scheduler.
#[derive(Debug)]
pub(super) struct Queued {
    pub(super) id: MessageId,
    pub(super) envelope: Arc<Envelope>,
    pub(super) pending: Vec<u32>,
    /// In memory from receipt to the first attempt; `None` after a deferral
    /// or a restart (read from the spool then).
    pub(super) body: Option<Arc<Vec<u8>>>,
    pub(super) schedule: Schedule,
    /// When it is due, while waiting.
    pub(super) due_at: Instant,
}

impl Queued {
    pub(super) fn recovered(m: QueuedMessage, due_at: Instant) -> Self {
        Queued {
            id: m.id,
            envelope: m.envelope,
            pending: m.pending,
            body: None,
            schedule: m.schedule,
            due_at,
        }
    }
}

/// Messages with an attempt in flight, for `queue list` ("delivering now").
pub(crate) type Active = Arc<Mutex<HashSet<MessageId>>>;

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

pub(crate) struct Channels {
    pub(crate) new: mpsc::UnboundedReceiver<NewMessage>,
    pub(crate) commands: mpsc::UnboundedReceiver<Command>,
}

pub(crate) fn start(
    ctx: Arc<Context>,
    recovered: Vec<QueuedMessage>,
    channels: Channels,
    active: Active,
    suspended: Arc<DeliverySuspensions>,
) -> Running {
    let (stop, stop_rx) = watch::channel(false);
    let mut state = State::new(ctx, active);
    state.suspended = suspended;
    state.recover(recovered);
    let task = tokio::spawn(state.run(channels, stop_rx));
    Running { stop, task }
}

/// Bodies kept in memory for messages waiting to start; beyond this, a
/// waiting message's body is dropped and read back from the spool when its
/// attempt starts (the spool already made it durable).
const BODY_BUDGET: usize = 64 << 20;

/// How often a paused delivery looks at the spool again.
const PAUSE_CHECK: Duration = Duration::from_secs(1);

/// How often delivery checks that outcomes can be stored while it runs.
const SPACE_CHECK: Duration = Duration::from_millis(100);

pub(super) struct State {
    pub(super) ctx: Arc<Context>,
    pub(super) waiting: HashMap<MessageId, Queued>,
    due: BinaryHeap<Reverse<(Instant, MessageId)>>,
    /// Ready to start, oldest first: a burst waits here (bounded memory)
    /// instead of as tasks each holding a body.
    pub(super) ready: VecDeque<Queued>,
    pub(super) held: HashMap<MessageId, Queued>,
    /// Holds asked for while the message was in flight.
    pub(super) hold_on_return: HashSet<MessageId>,
    pub(super) active: Active,
    inflight: JoinSet<Queued>,
    pub(super) max_inflight: usize,
    held_bytes: usize,
    /// Why delivery is paused, while it is.
    pub(super) paused: Option<String>,
    checked_space: Instant,
    /// Delivery suspended by the operator (`suspend.rs`).
    pub(super) suspended: Arc<DeliverySuspensions>,
    /// Messages whose every pending recipient is in a suspended domain.
    pub(super) parked: HashMap<MessageId, Queued>,
}

impl State {
    fn new(ctx: Arc<Context>, active: Active) -> Self {
        let max_inflight = ctx.settings.max_connections.max(1).saturating_mul(2);
        State {
            ctx,
            waiting: HashMap::new(),
            due: BinaryHeap::new(),
            ready: VecDeque::new(),
            held: HashMap::new(),
            hold_on_return: HashSet::new(),
            active,
            inflight: JoinSet::new(),
            max_inflight,
            held_bytes: 0,
            paused: None,
            checked_space: Instant::now()
                .checked_sub(SPACE_CHECK)
                .unwrap_or_else(Instant::now),
            suspended: Arc::default(),
            parked: HashMap::new(),
        }
    }

    fn recover(&mut self, recovered: Vec<QueuedMessage>) {
        if recovered.is_empty() {
            return;
        }
        let plan = plan_recovered(
            crate::outbound::unix_now(),
            Instant::now(),
            recovered,
            &self.ctx.settings.retry,
        );
        self.ctx.log.line(format_args!(
            "queue: {} message(s) recovered from the spool: {} due now, {} overdue retr(ies) spread over {}s, {} waiting for their next attempt, {} held",
            plan.total(),
            plan.now.len(),
            plan.spread.len(),
            plan.spread_over.as_secs(),
            plan.later.len(),
            plan.held.len()
        ));
        self.ready.extend(plan.now);
        for q in plan.spread.into_iter().chain(plan.later) {
            self.wait(q);
        }
        for q in plan.held {
            self.held.insert(q.id, q);
        }
    }

    /// Puts `q` in the waiting set until `q.due_at`.
    pub(super) fn wait(&mut self, q: Queued) {
        self.due.push(Reverse((q.due_at, q.id)));
        self.waiting.insert(q.id, q);
    }

    /// Whether `id` has an attempt running.
    pub(super) fn in_flight(&self, id: MessageId) -> bool {
        self.active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&id)
    }

    async fn run(mut self, mut channels: Channels, mut stop: watch::Receiver<bool>) {
        loop {
            self.promote_due();
            self.start_ready();
            let next = self.due.peek().map(|Reverse((at, _))| *at);
            let recheck = self.paused.as_ref().map(|_| Instant::now() + PAUSE_CHECK);
            let wake = match (next, recheck) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            tokio::select! {
                _ = stop.changed() => break,
                new = channels.new.recv() => match new {
                    Some(m) => self.accept(m),
                    None => break,
                },
                Some(cmd) = channels.commands.recv() => self.command(cmd).await,
                Some(done) = self.inflight.join_next(), if !self.inflight.is_empty() => {
                    if let Ok(q) = done {
                        self.returned(q);
                    }
                }
                _ = sleep_until(wake) => {}
            }
        }
        // Shutdown: deliveries in flight get the grace delay (the engine
        // bounds it); whatever is not finished stays in the spool.
        while self.inflight.join_next().await.is_some() {}
    }

    fn accept(&mut self, m: NewMessage) {
        let keep = self.held_bytes.saturating_add(m.body.len()) <= BODY_BUDGET;
        if keep {
            self.held_bytes += m.body.len();
        }
        self.ready.push_back(Queued {
            id: m.id,
            pending: (0..m.envelope.recipients.len() as u32).collect(),
            envelope: m.envelope,
            body: keep.then_some(m.body),
            schedule: Schedule::default(),
            due_at: Instant::now(),
        });
    }

    fn returned(&mut self, q: Queued) {
        self.active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&q.id);
        if q.pending.is_empty() {
            self.hold_on_return.remove(&q.id);
        } else if self.hold_on_return.remove(&q.id) {
            self.held.insert(q.id, q);
        } else if self.all_suspended(&q) {
            self.park(q);
        } else {
            self.wait(q);
        }
    }

    fn promote_due(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((at, id))) = self.due.peek().copied() {
            if at > now {
                break;
            }
            self.due.pop();
            // A heap entry whose message was retried, held or re-deferred
            // since is stale: only the entry matching its due time counts.
            if self.waiting.get(&id).is_some_and(|q| q.due_at == at)
                && let Some(q) = self.waiting.remove(&id)
            {
                self.ready.push_back(q);
            }
        }
    }

    /// Starts attempts for ready messages, unless the spool cannot store
    /// their outcomes now.
    pub(super) fn start_ready(&mut self) {
        let room = !self.ready.is_empty() && self.inflight.len() < self.max_inflight;
        // While paused, look again even with nothing ready, so the resume
        // is noticed (and logged) as soon as it happens.
        if !room && self.paused.is_none() {
            return;
        }
        // One statvfs per tenth of a second is plenty while all is well
        // (the writer keeps a reserve for outcomes); every time while paused.
        let fresh = self.checked_space.elapsed() < SPACE_CHECK;
        let storable = if fresh && self.paused.is_none() {
            Ok(())
        } else {
            self.checked_space = Instant::now();
            self.ctx.spool.outcomes_storable()
        };
        match storable {
            Err(reason) => {
                if self.paused.is_none() {
                    self.ctx.log.warn(format_args!(
                        "delivery paused: {reason}; {} message(s) wait, because a delivery whose outcome cannot be stored would be repeated after a restart",
                        self.ready.len()
                    ));
                }
                self.paused = Some(reason);
                return;
            }
            Ok(()) => {
                if self.paused.take().is_some() {
                    self.ctx.log.line(format_args!(
                        "delivery resumed: the spool can store delivery outcomes again"
                    ));
                }
            }
        }
        while self.inflight.len() < self.max_inflight
            && let Some(q) = self.ready.pop_front()
        {
            self.held_bytes = self
                .held_bytes
                .saturating_sub(q.body.as_ref().map_or(0, |b| b.len()));
            if self.all_suspended(&q) {
                self.park(q);
                continue;
            }
            self.active
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(q.id);
            self.inflight
                .spawn(attempt(self.ctx.clone(), q, self.suspended.clone()));
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
