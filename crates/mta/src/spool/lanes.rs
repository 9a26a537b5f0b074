//! The writer's input: three lanes of requests and how a batch is taken
//! from them. Compaction copies first (at most [`COPY_BUDGET`] bytes),
//! then every outcome (finished recipients, retry times, holds: small, and
//! the sooner on disk the fewer deliveries a crash repeats), then new
//! messages up to [`BATCH_BYTES`] and what still fits in the segment.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};

use tokio::sync::oneshot;

use super::record::{HEADER_LEN, StoredState};
use super::{Envelope, Schedule, SpoolError};

/// A batch's new messages stop growing past this many bytes, so one burst
/// does not hold every earlier sender (and every outcome) behind a single
/// enormous write.
const BATCH_BYTES: usize = 4 << 20;

/// Most compaction bytes in one batch.
pub(super) const COPY_BUDGET: usize = 1 << 20;

/// What a request does to the index once it is durable.
#[derive(Debug)]
pub(super) enum Job {
    Message {
        id: u64,
        envelope: Arc<Envelope>,
        body_len: u64,
    },
    Finished {
        id: u64,
        recipients: Vec<u32>,
    },
    Schedule {
        id: u64,
        schedule: Schedule,
    },
    Hold {
        id: u64,
        held: bool,
    },
}

#[derive(Debug)]
pub(super) struct Request {
    pub(super) job: Job,
    /// The framed record, encoded by the caller's thread.
    pub(super) bytes: Vec<u8>,
    pub(super) reply: oneshot::Sender<Result<(), SpoolError>>,
}

/// A live message re-written by compaction, valid only if the message has
/// not changed since `version`.
#[derive(Debug)]
pub(super) struct Copy {
    pub(super) id: u64,
    pub(super) from: u64,
    pub(super) version: u64,
    pub(super) envelope: Arc<Envelope>,
    pub(super) state: StoredState,
    pub(super) body_len: u64,
    pub(super) bytes: Vec<u8>,
    pub(super) reply: oneshot::Sender<CopyOutcome>,
}

#[derive(Debug)]
pub(super) enum CopyOutcome {
    Written,
    /// The message changed or left meanwhile; nothing was written.
    Stale,
    Failed(SpoolError),
}

/// The writer's three lanes.
#[derive(Debug, Default)]
pub(super) struct Inbox {
    lanes: Mutex<Lanes>,
    wake: Condvar,
}

#[derive(Debug, Default)]
struct Lanes {
    copies: VecDeque<Copy>,
    outcomes: VecDeque<Request>,
    messages: VecDeque<Request>,
    closed: bool,
}

pub(super) struct Batch {
    pub(super) copies: Vec<Copy>,
    pub(super) outcomes: Vec<Request>,
    pub(super) messages: Vec<Request>,
}

impl Inbox {
    fn lanes(&self) -> std::sync::MutexGuard<'_, Lanes> {
        self.lanes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a request; gives it back once the writer has stopped.
    pub(super) fn push(&self, request: Request) -> Result<(), Request> {
        let mut lanes = self.lanes();
        if lanes.closed {
            return Err(request);
        }
        match request.job {
            Job::Message { .. } => lanes.messages.push_back(request),
            _ => lanes.outcomes.push_back(request),
        }
        self.wake.notify_one();
        Ok(())
    }

    /// Queues a compaction copy; false (and the copy dropped) once the
    /// writer has stopped.
    pub(super) fn push_copy(&self, copy: Copy) -> bool {
        let mut lanes = self.lanes();
        if lanes.closed {
            return false;
        }
        lanes.copies.push_back(copy);
        self.wake.notify_one();
        true
    }

    /// The writer finishes what is queued, then stops.
    pub(super) fn close(&self) {
        self.lanes().closed = true;
        self.wake.notify_all();
    }

    /// The next batch; `None` once closed and drained.
    pub(super) fn take(&self, segment_bytes: usize) -> Option<Batch> {
        let mut lanes = self.lanes();
        while lanes.copies.is_empty() && lanes.outcomes.is_empty() && lanes.messages.is_empty() {
            if lanes.closed {
                return None;
            }
            lanes = self.wake.wait(lanes).unwrap_or_else(|p| p.into_inner());
        }
        let mut used = 0;
        let mut copies = Vec::new();
        let copy_budget = COPY_BUDGET.min(segment_bytes / 4).max(1);
        while let Some(c) = lanes.copies.front() {
            if !copies.is_empty() && used + c.bytes.len() > copy_budget {
                break;
            }
            used += c.bytes.len();
            copies.extend(lanes.copies.pop_front());
        }
        let outcomes: Vec<Request> = lanes.outcomes.drain(..).collect();
        used += outcomes.iter().map(|r| r.bytes.len()).sum::<usize>();
        let budget = BATCH_BYTES.min(segment_bytes.saturating_sub(HEADER_LEN + used));
        let mut messages = Vec::new();
        let mut taken = 0;
        while let Some(m) = lanes.messages.front() {
            if !messages.is_empty() && taken + m.bytes.len() > budget {
                break;
            }
            taken += m.bytes.len();
            messages.extend(lanes.messages.pop_front());
        }
        Some(Batch {
            copies,
            outcomes,
            messages,
        })
    }
}
