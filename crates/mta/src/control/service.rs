//! The online path: queue requests against the running gateway. Reading
//! (list, show) uses the spool's index; changing (retry, hold, release,
//! delete, bounce) goes through the scheduler, which stores the change in
//! the spool before acting on it.

use std::sync::Arc;

use super::{QueueReply, QueueRequest, RetryWhat, message_id, rows};
use crate::outbound::{RetryTarget, SchedulerControl};
use crate::spool::Spool;

/// Carries out queue requests on a running gateway
/// ([`Engine::queue_service`](crate::engine::Engine::queue_service)). Cheap
/// to clone. The control socket calls [`QueueService::handle`]; any other
/// front end (the HTTPS admin API) should call it too.
#[derive(Debug, Clone)]
pub struct QueueService {
    spool: Arc<Spool>,
    scheduler: SchedulerControl,
}

impl QueueService {
    pub(crate) fn new(spool: Arc<Spool>, scheduler: SchedulerControl) -> Self {
        QueueService { spool, scheduler }
    }

    /// Carries out one request. `Err` is a one-line reason for the
    /// operator (unknown id, message being delivered right now, ...).
    pub async fn handle(&self, request: QueueRequest) -> Result<QueueReply, String> {
        let s = &self.scheduler;
        let done = match request {
            QueueRequest::List => {
                let list = self
                    .spool
                    .messages()
                    .iter()
                    .map(|m| rows::row(m, s.delivering(m.id)))
                    .collect();
                return Ok(QueueReply::List(list));
            }
            QueueRequest::Show { id } => {
                let id = message_id(&id)?;
                let m = self
                    .spool
                    .message(id)
                    .ok_or_else(|| format!("MID {id} is not in the queue"))?;
                let body = self.spool.body(id).map_err(|e| e.to_string())?;
                let detail = rows::detail(&m, s.delivering(id), &body);
                return Ok(QueueReply::Show(Box::new(detail)));
            }
            QueueRequest::Retry { target } => s.retry(retry_target(target)?).await,
            QueueRequest::Hold { id } => s.hold(message_id(&id)?).await,
            QueueRequest::Release { id } => s.release(message_id(&id)?).await,
            QueueRequest::Delete { id } => s.delete(message_id(&id)?).await,
            QueueRequest::Bounce { id } => s.bounce(message_id(&id)?).await,
        };
        done.map(QueueReply::Done)
    }
}

pub(super) fn retry_target(what: RetryWhat) -> Result<RetryTarget, String> {
    Ok(match what {
        RetryWhat::Id(id) => RetryTarget::Id(message_id(&id)?),
        RetryWhat::Domain(d) => RetryTarget::Domain(d.trim_end_matches('.').to_ascii_lowercase()),
        RetryWhat::All => RetryTarget::All,
    })
}
