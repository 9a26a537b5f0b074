//! Operator commands the scheduler carries out on the running queue: retry
//! now, hold, release, delete without a bounce, return to the sender. Each
//! is stored in the spool before the scheduler acts on it (a hold survives
//! a restart; a deleted message does not come back), answers with one line
//! saying exactly what was done, and writes it to the mail log.
//!
//! A message with an attempt in flight cannot be deleted or bounced (the
//! attempt may be delivering it this very moment); the command says so and
//! can be repeated a moment later. A hold asked for during an attempt takes
//! effect when it ends.

use std::sync::Arc;

use tokio::sync::oneshot;

use super::attempt::{domain_of, send_bounce};
use super::scheduler::{Queued, State};
use crate::dsn::RecipientFailure;
use crate::spool::MessageId;

/// Which messages `queue retry` makes due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryTarget {
    Id(MessageId),
    /// Every message with a pending recipient in this domain.
    Domain(String),
    All,
}

/// What the operator wants done; the reply is the line to show.
pub(crate) type Reply = oneshot::Sender<Result<String, String>>;

#[derive(Debug)]
pub(crate) enum Command {
    Retry {
        target: RetryTarget,
        reply: Reply,
    },
    Hold {
        id: MessageId,
        reply: Reply,
    },
    Release {
        id: MessageId,
        reply: Reply,
    },
    Delete {
        id: MessageId,
        reply: Reply,
    },
    Bounce {
        id: MessageId,
        reply: Reply,
    },
    /// New delivery settings (a reload): new attempts use this context.
    Reload(Arc<super::delivery::Context>),
    /// The delivery suspensions in force from now on.
    Suspensions {
        suspended: Arc<crate::suspension::DeliverySuspensions>,
        reply: Reply,
    },
}

impl State {
    pub(super) async fn command(&mut self, cmd: Command) {
        let (result, reply) = match cmd {
            Command::Retry { target, reply } => (self.retry(&target), reply),
            Command::Hold { id, reply } => (self.hold(id).await, reply),
            Command::Release { id, reply } => (self.release(id).await, reply),
            Command::Delete { id, reply } => (self.delete(id).await, reply),
            Command::Bounce { id, reply } => (self.bounce(id).await, reply),
            Command::Reload(ctx) => {
                self.reload(ctx);
                return;
            }
            Command::Suspensions { suspended, reply } => (Ok(self.suspend(suspended)), reply),
        };
        let _ = reply.send(result);
    }

    fn unknown(&self, id: MessageId) -> String {
        if self.ctx.spool.message(id).is_some() {
            format!("MID {id} was accepted a moment ago and is not scheduled yet; try again")
        } else {
            format!("MID {id} is not in the queue")
        }
    }

    fn paused_note(&self) -> String {
        match &self.paused {
            Some(why) => format!("; delivery is paused ({why}) and resumes by itself"),
            None => String::new(),
        }
    }

    fn retry(&mut self, target: &RetryTarget) -> Result<String, String> {
        if let RetryTarget::Id(id) = target {
            let id = *id;
            if self.in_flight(id) {
                return Ok(format!("MID {id} is being delivered right now"));
            }
            if self.held.contains_key(&id) {
                return Err(format!(
                    "MID {id} is held; `portcullis queue release {id}` delivers it"
                ));
            }
            if self.ready.iter().any(|q| q.id == id) {
                return Ok(format!("MID {id} is already due{}", self.paused_note()));
            }
            if self.parked.contains_key(&id) {
                return Err(format!(
                    "MID {id} waits because delivery to its domain is suspended; `portcullis ctl resume delivery` delivers it"
                ));
            }
            if !self.waiting.contains_key(&id) {
                return Err(self.unknown(id));
            }
        }
        let chosen: Vec<MessageId> = self
            .waiting
            .values()
            .filter(|q| match target {
                RetryTarget::All => true,
                RetryTarget::Id(id) => q.id == *id,
                RetryTarget::Domain(d) => q.pending.iter().any(|&i| {
                    q.envelope
                        .recipients
                        .get(i as usize)
                        .is_some_and(|r| domain_of(r) == d.to_ascii_lowercase())
                }),
            })
            .map(|q| q.id)
            .collect();
        for id in &chosen {
            if let Some(q) = self.waiting.remove(id) {
                self.ready.push_back(q);
            }
        }
        self.start_ready();
        let held = match target {
            RetryTarget::Id(_) => String::new(),
            _ if self.held.is_empty() => String::new(),
            _ => format!(
                "; {} held message(s) left alone (release them to deliver)",
                self.held.len()
            ),
        };
        let line = format!(
            "{} message(s) scheduled for delivery now{held}{}",
            chosen.len(),
            self.paused_note()
        );
        self.ctx.log.line(format_args!("queue retry: {line}"));
        Ok(line)
    }

    /// Takes `id` out of the waiting, ready, held and parked sets.
    fn take(&mut self, id: MessageId) -> Option<Queued> {
        if let Some(q) = self
            .waiting
            .remove(&id)
            .or_else(|| self.held.remove(&id))
            .or_else(|| self.parked.remove(&id))
        {
            return Some(q);
        }
        let at = self.ready.iter().position(|q| q.id == id)?;
        self.ready.remove(at)
    }

    /// Puts a message taken out for a command that failed back where it can
    /// be delivered.
    fn put_back(&mut self, q: Queued, held: bool) {
        if held {
            self.held.insert(q.id, q);
        } else {
            self.ready.push_back(q);
        }
    }

    async fn hold(&mut self, id: MessageId) -> Result<String, String> {
        if self.held.contains_key(&id) || self.hold_on_return.contains(&id) {
            return Ok(format!("MID {id} is already held"));
        }
        let in_flight = self.in_flight(id);
        let known = in_flight
            || self.waiting.contains_key(&id)
            || self.parked.contains_key(&id)
            || self.ready.iter().any(|q| q.id == id);
        if !known {
            return Err(self.unknown(id));
        }
        self.ctx
            .spool
            .set_held(id, true)
            .await
            .map_err(|e| format!("MID {id} not held: {e}"))?;
        self.ctx
            .log
            .line(format_args!("MID {id} held by the operator"));
        if in_flight {
            self.hold_on_return.insert(id);
            return Ok(format!(
                "MID {id} held: it is being delivered right now; what is not delivered by this attempt stays held"
            ));
        }
        if let Some(q) = self.take(id) {
            self.held.insert(id, q);
        }
        Ok(format!(
            "MID {id} held: not delivered until `portcullis queue release {id}`"
        ))
    }

    async fn release(&mut self, id: MessageId) -> Result<String, String> {
        let on_return = self.hold_on_return.contains(&id);
        if !on_return && !self.held.contains_key(&id) {
            return match self.ctx.spool.message(id) {
                Some(_) => Err(format!("MID {id} is not held")),
                None => Err(self.unknown(id)),
            };
        }
        self.ctx
            .spool
            .set_held(id, false)
            .await
            .map_err(|e| format!("MID {id} not released: {e}"))?;
        self.ctx
            .log
            .line(format_args!("MID {id} released by the operator"));
        if on_return {
            self.hold_on_return.remove(&id);
            return Ok(format!(
                "MID {id} released (it is being delivered right now)"
            ));
        }
        if let Some(q) = self.held.remove(&id) {
            self.ready.push_back(q);
        }
        self.start_ready();
        Ok(format!(
            "MID {id} released and scheduled for delivery now{}",
            self.paused_note()
        ))
    }

    fn busy(&self, id: MessageId) -> Result<(), String> {
        if self.in_flight(id) {
            return Err(format!(
                "MID {id} is being delivered right now; try again in a few seconds"
            ));
        }
        Ok(())
    }

    async fn delete(&mut self, id: MessageId) -> Result<String, String> {
        self.busy(id)?;
        let held = self.held.contains_key(&id);
        let q = self.take(id).ok_or_else(|| self.unknown(id))?;
        if let Err(e) = self.ctx.spool.finish(id, &q.pending).await {
            self.put_back(q, held);
            return Err(format!("MID {id} not deleted: {e}"));
        }
        let line = format!(
            "MID {id} deleted: {} recipient(s) dropped without a bounce",
            q.pending.len()
        );
        self.ctx.log.line(format_args!("{line} (by the operator)"));
        Ok(line)
    }

    async fn bounce(&mut self, id: MessageId) -> Result<String, String> {
        self.busy(id)?;
        let held = self.held.contains_key(&id);
        let q = self.take(id).ok_or_else(|| self.unknown(id))?;
        let body = match &q.body {
            Some(b) => b.clone(),
            None => match self.ctx.spool.body(id) {
                Ok(b) => Arc::new(b),
                Err(e) => {
                    self.put_back(q, held);
                    return Err(format!("MID {id} not bounced: {e}"));
                }
            },
        };
        let diagnostic = format!(
            "returned to the sender by the postmaster of {} (portcullis queue bounce)",
            self.ctx.hostname
        );
        let failures: Vec<RecipientFailure> = q
            .pending
            .iter()
            .filter_map(|&i| q.envelope.recipients.get(i as usize))
            .map(|r| RecipientFailure {
                recipient: r.clone(),
                status: "5.0.0".into(),
                remote_mta: None,
                diagnostic: diagnostic.clone(),
                last_attempt: None,
            })
            .collect();
        if !send_bounce(&self.ctx, &q, &body, &failures).await {
            self.put_back(q, held);
            return Err(format!(
                "MID {id} not bounced: the bounce could not be queued (see the mail log)"
            ));
        }
        if let Err(e) = self.ctx.spool.finish(id, &q.pending).await {
            self.put_back(q, held);
            return Err(format!(
                "MID {id}: the bounce is queued but the message could not be removed ({e}); it stays queued"
            ));
        }
        let line = format!(
            "MID {id} returned to <{}>: {} recipient(s) bounced",
            q.envelope.sender,
            q.pending.len()
        );
        self.ctx.log.line(format_args!("{line} (by the operator)"));
        Ok(line)
    }
}
