//! Delivery suspended by the operator, on the scheduler's side: a message
//! whose every pending recipient is in a suspended domain is *parked* — not
//! attempted, its attempt count and retry time untouched — until a resume
//! covers one of its domains again; then it is due at once. A message with
//! recipients in several domains is attempted for the others (`attempt.rs`
//! leaves the suspended ones pending). Attempts already in flight when a
//! suspension arrives finish. Also the scheduler's side of a reload.

use std::sync::Arc;

use super::attempt::domain_of;
use super::delivery::Context;
use super::scheduler::{Queued, State};
use crate::suspension::DeliverySuspensions;

impl State {
    /// Whether every pending recipient of `q` waits for a suspended domain.
    pub(super) fn all_suspended(&self, q: &Queued) -> bool {
        !self.suspended.is_empty()
            && q.pending.iter().all(|&i| {
                q.envelope
                    .recipients
                    .get(i as usize)
                    .is_some_and(|r| self.suspended.covers(&domain_of(r)))
            })
    }

    /// Keeps `q` aside until its delivery is resumed; its body is read from
    /// the spool then (a long suspension must not hold bodies in memory).
    pub(super) fn park(&mut self, mut q: Queued) {
        q.body = None;
        self.parked.insert(q.id, q);
    }

    /// Applies new suspensions: parked messages that can go now are due.
    pub(super) fn suspend(&mut self, suspended: Arc<DeliverySuspensions>) -> String {
        self.suspended = suspended;
        let free: Vec<_> = self
            .parked
            .values()
            .filter(|q| !self.all_suspended(q))
            .map(|q| q.id)
            .collect();
        for id in &free {
            if let Some(mut q) = self.parked.remove(id) {
                q.due_at = tokio::time::Instant::now();
                self.ready.push_back(q);
            }
        }
        self.start_ready();
        format!(
            "{} message(s) wait for suspended domains; {} released for delivery now",
            self.parked.len(),
            free.len()
        )
    }

    /// New delivery settings: attempts started from now on use `ctx`.
    pub(super) fn reload(&mut self, ctx: Arc<Context>) {
        self.max_inflight = ctx.settings.max_connections.max(1).saturating_mul(2);
        self.ctx = ctx;
        self.start_ready();
    }
}

/// Takes the domains whose delivery is suspended out of an attempt's
/// `by_domain`; returns their recipients (left pending) and logs them.
pub(super) fn set_aside(
    ctx: &Context,
    id: crate::spool::MessageId,
    suspended: &DeliverySuspensions,
    by_domain: &mut std::collections::BTreeMap<String, Vec<u32>>,
) -> Vec<u32> {
    if suspended.is_empty() {
        return Vec::new();
    }
    let mut waiting = Vec::new();
    by_domain.retain(|domain, rcpts| {
        if suspended.covers(domain) {
            ctx.log.line(format_args!(
                "MID {id} to {domain}: {} recipient(s) wait: delivery to {domain} is suspended",
                rcpts.len()
            ));
            waiting.append(rcpts);
            false
        } else {
            true
        }
    });
    waiting
}
