//! When the messages recovered at start are attempted.
//!
//! Each keeps its stored schedule: a message never attempted (accepted just
//! before the stop) is due at once; one whose next attempt is still ahead
//! waits for it; a held one stays held. Retries that fell due while the
//! gateway was down are not all started at once (after a long stop that
//! could be the whole queue hitting the same few destinations in the same
//! second): they are spread evenly, in the order they fell due, over
//! [`spread_window`].

use std::time::Duration;

use tokio::time::Instant;

use super::scheduler::Queued;
use crate::settings::RetrySchedule;
use crate::spool::QueuedMessage;

/// Overdue retries are started at most about this often.
const SPACING: Duration = Duration::from_millis(10);

/// What becomes of the recovered messages.
#[derive(Debug)]
pub(super) struct Plan {
    pub(super) now: Vec<Queued>,
    pub(super) spread: Vec<Queued>,
    pub(super) spread_over: Duration,
    pub(super) later: Vec<Queued>,
    pub(super) held: Vec<Queued>,
}

impl Plan {
    pub(super) fn total(&self) -> usize {
        self.now.len() + self.spread.len() + self.later.len() + self.held.len()
    }
}

/// The window overdue retries are spread over: `SPACING` per message, at
/// most the first retry delay (so none waits longer than a retry would
/// have anyway).
pub(super) fn spread_window(overdue: usize, retry: &RetrySchedule) -> Duration {
    SPACING
        .saturating_mul(u32::try_from(overdue).unwrap_or(u32::MAX))
        .min(retry.first)
}

/// Plans the recovered messages at `now_unix` (seconds) / `now`.
pub(super) fn plan_recovered(
    now_unix: u64,
    now: Instant,
    recovered: Vec<QueuedMessage>,
    retry: &RetrySchedule,
) -> Plan {
    let mut plan = Plan {
        now: Vec::new(),
        spread: Vec::new(),
        spread_over: Duration::ZERO,
        later: Vec::new(),
        held: Vec::new(),
    };
    let mut overdue = Vec::new();
    for m in recovered {
        let s = &m.schedule;
        if m.held {
            plan.held.push(Queued::recovered(m, now));
        } else if s.attempts == 0 && s.next_attempt <= now_unix {
            plan.now.push(Queued::recovered(m, now));
        } else if s.next_attempt > now_unix {
            let wait = Duration::from_secs(s.next_attempt - now_unix);
            plan.later.push(Queued::recovered(m, now + wait));
        } else {
            overdue.push(m);
        }
    }
    overdue.sort_by_key(|m| (m.schedule.next_attempt, m.id));
    let window = spread_window(overdue.len(), retry);
    let n = overdue.len().max(1) as u32;
    for (i, m) in overdue.into_iter().enumerate() {
        let offset = window.mul_f64(f64::from(i as u32) / f64::from(n));
        plan.spread.push(Queued::recovered(m, now + offset));
    }
    plan.spread_over = window;
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::{Envelope, MessageId, Schedule};
    use std::sync::Arc;

    fn message(n: u64, attempts: u32, next_attempt: u64, held: bool) -> QueuedMessage {
        let id: MessageId = format!("{n:X}").parse().unwrap();
        QueuedMessage {
            id,
            envelope: Arc::new(Envelope {
                sender: "a@example.org".into(),
                recipients: vec!["b@example.com".into()],
                received_at: 0,
                flags: Default::default(),
                dsn: Default::default(),
            }),
            pending: vec![0],
            size: 10,
            schedule: Schedule {
                attempts,
                next_attempt,
                last_error: String::new(),
            },
            held,
        }
    }

    #[tokio::test]
    async fn stored_schedules_are_kept_and_overdue_retries_spread() {
        let retry = RetrySchedule {
            first: Duration::from_secs(300),
            max: Duration::from_secs(3600),
        };
        let now = Instant::now();
        let now_unix = 1_800_000_000;
        let mut recovered = vec![
            message(1, 0, 0, false),              // never tried: now
            message(2, 3, now_unix + 600, false), // ten minutes ahead
            message(3, 1, now_unix - 50, true),   // held
        ];
        // 30,000 retries that fell due while the gateway was down.
        recovered.extend((10..30_010).map(|n| message(n, 2, now_unix - n, false)));
        let plan = plan_recovered(now_unix, now, recovered, &retry);
        assert_eq!(plan.now.len(), 1);
        assert_eq!(plan.later.len(), 1);
        assert_eq!(plan.later[0].due_at, now + Duration::from_secs(600));
        assert_eq!(plan.later[0].schedule.attempts, 3, "attempt count kept");
        assert_eq!(plan.held.len(), 1);
        assert_eq!(plan.spread.len(), 30_000);
        assert_eq!(plan.spread_over, Duration::from_secs(300));
        // Evenly spread: no second of the window gets more than its share.
        let mut per_second = std::collections::BTreeMap::new();
        for q in &plan.spread {
            *per_second.entry((q.due_at - now).as_secs()).or_insert(0) += 1;
        }
        assert_eq!(per_second.len(), 300);
        assert!(per_second.values().all(|&n| n <= 101), "{per_second:?}");
        // The one overdue longest goes first.
        assert_eq!(plan.spread[0].due_at, now);
        assert_eq!(plan.spread[0].schedule.next_attempt, now_unix - 30_009);
    }

    #[tokio::test]
    async fn a_few_overdue_retries_are_not_held_back_long() {
        let retry = RetrySchedule::default();
        let now = Instant::now();
        let recovered = (1..=3).map(|n| message(n, 1, 100, false)).collect();
        let plan = plan_recovered(1000, now, recovered, &retry);
        assert_eq!(plan.spread_over, Duration::from_millis(30));
        assert!(
            plan.spread
                .iter()
                .all(|q| q.due_at < now + Duration::from_millis(30))
        );
    }
}
