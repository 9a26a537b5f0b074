//! The offline path: queue requests while the gateway is stopped.
//!
//! Reading (list, show) uses [`Spool::check`]: nothing is locked or
//! changed, and damage is reported beside what could be read, never hidden
//! behind a shorter list. Changing opens the spool, taking its lock (a
//! gateway started meanwhile refuses to start: there is never more than one
//! writer), and stores exactly what the online path would; the next start
//! acts on it.

use std::path::Path;

use super::service::retry_target;
use super::{QueueReply, QueueRequest, message_id, rows};
use crate::dsn::{FailedMessage, RecipientFailure, bounce};
use crate::outbound::{RetryTarget, unix_now};
use crate::spool::{Damage, MessageId, QueuedMessage, Schedule, Spool, SpoolError, SpoolOptions};

/// What an offline request returned, and the damage the spool has (reads
/// only; a changing request fails on damage that stops the gateway).
#[derive(Debug)]
pub struct Offline {
    pub reply: QueueReply,
    pub damage: Vec<Damage>,
}

/// Carries out `request` on the spool in `spool_dir`. `hostname` is the
/// reporting MTA of bounces.
pub fn handle(
    spool_dir: &Path,
    options: &SpoolOptions,
    hostname: &str,
    request: QueueRequest,
) -> Result<Offline, String> {
    let read = |request| -> Result<Offline, String> {
        let check = if spool_dir.exists() {
            Spool::check(spool_dir).map_err(|e| e.to_string())?
        } else {
            return Ok(Offline {
                reply: QueueReply::List(Vec::new()),
                damage: Vec::new(),
            });
        };
        let reply = match request {
            QueueRequest::Show { id } => {
                let id = message_id(&id)?;
                let m = find(&check.messages, id)?;
                let body = check.body(id).map_err(|e| e.to_string())?;
                QueueReply::Show(Box::new(rows::detail(m, false, &body)))
            }
            _ => QueueReply::List(check.messages.iter().map(|m| rows::row(m, false)).collect()),
        };
        Ok(Offline {
            reply,
            damage: check.damage,
        })
    };
    if matches!(request, QueueRequest::List | QueueRequest::Show { .. }) {
        return read(request);
    }
    let (spool, queued) = Spool::open(spool_dir, options.clone()).map_err(|e| match e {
        SpoolError::Locked(_) => format!(
            "the gateway is running (it holds the lock of {}) but its control socket did not \
             answer; queue commands go through the socket while it runs",
            spool_dir.display()
        ),
        other => other.to_string(),
    })?;
    let line = change(&spool, &queued, hostname, request)?;
    Ok(Offline {
        reply: QueueReply::Done(line),
        damage: Vec::new(),
    })
}

fn find(messages: &[QueuedMessage], id: MessageId) -> Result<&QueuedMessage, String> {
    messages
        .iter()
        .find(|m| m.id == id)
        .ok_or_else(|| format!("MID {id} is not in the queue"))
}

fn change(
    spool: &Spool,
    queued: &[QueuedMessage],
    hostname: &str,
    request: QueueRequest,
) -> Result<String, String> {
    let stored = |e: SpoolError| e.to_string();
    match request {
        QueueRequest::List | QueueRequest::Show { .. } => Err("not a change".into()),
        QueueRequest::Retry { target } => {
            let target = retry_target(target)?;
            if let RetryTarget::Id(id) = &target {
                find(queued, *id)?;
            }
            let mut n = 0;
            for m in queued.iter().filter(|m| !m.held && matches(m, &target)) {
                let schedule = Schedule {
                    next_attempt: 0,
                    ..m.schedule.clone()
                };
                spool.set_schedule(m.id, schedule).wait().map_err(stored)?;
                n += 1;
            }
            Ok(format!(
                "{n} message(s) will be attempted as soon as the gateway starts"
            ))
        }
        QueueRequest::Hold { id } => {
            let id = message_id(&id)?;
            find(queued, id)?;
            spool.set_held(id, true).wait().map_err(stored)?;
            Ok(format!(
                "MID {id} held: not delivered until `portcullis queue release {id}`"
            ))
        }
        QueueRequest::Release { id } => {
            let id = message_id(&id)?;
            let m = find(queued, id)?;
            if !m.held {
                return Err(format!("MID {id} is not held"));
            }
            spool.set_held(id, false).wait().map_err(stored)?;
            let now = Schedule {
                next_attempt: 0,
                ..m.schedule.clone()
            };
            spool.set_schedule(id, now).wait().map_err(stored)?;
            Ok(format!(
                "MID {id} released: attempted as soon as the gateway starts"
            ))
        }
        QueueRequest::Delete { id } => {
            let id = message_id(&id)?;
            let m = find(queued, id)?;
            spool.finish(id, &m.pending).wait().map_err(stored)?;
            Ok(format!(
                "MID {id} deleted: {} recipient(s) dropped without a bounce",
                m.pending.len()
            ))
        }
        QueueRequest::Bounce { id } => {
            let id = message_id(&id)?;
            let m = find(queued, id)?;
            let body = spool.body(id).map_err(stored)?;
            let failures: Vec<RecipientFailure> = m
                .pending
                .iter()
                .filter_map(|&i| m.envelope.recipients.get(i as usize))
                .map(|r| RecipientFailure {
                    recipient: r.clone(),
                    status: "5.0.0".into(),
                    remote_mta: None,
                    diagnostic: format!(
                        "returned to the sender by the postmaster of {hostname} (portcullis queue bounce)"
                    ),
                    last_attempt: None,
                })
                .collect();
            let failed = FailedMessage {
                envelope: &m.envelope,
                message: &body,
                queue_id: id.to_string(),
            };
            if let Some((envelope, dsn)) = bounce(hostname, &failed, &failures, unix_now()) {
                spool.enqueue(envelope, &dsn).1.wait().map_err(stored)?;
            }
            spool.finish(id, &m.pending).wait().map_err(stored)?;
            Ok(format!(
                "MID {id} returned to <{}>: {} recipient(s) bounced (the bounce goes out when the gateway starts)",
                m.envelope.sender,
                m.pending.len()
            ))
        }
    }
}

fn matches(m: &QueuedMessage, target: &RetryTarget) -> bool {
    match target {
        RetryTarget::All => true,
        RetryTarget::Id(id) => m.id == *id,
        RetryTarget::Domain(d) => m.pending.iter().any(|&i| {
            m.envelope.recipients.get(i as usize).is_some_and(|r| {
                r.rsplit_once('@')
                    .is_some_and(|(_, dom)| dom.eq_ignore_ascii_case(d))
            })
        }),
    }
}
