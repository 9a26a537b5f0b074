//! Outbound: the delivery scheduler and everything a delivery attempt
//! needs. New messages arrive from the listeners with their body in memory;
//! messages recovered from the spool at start are read from it. Each
//! attempt groups the pending recipients by domain and delivers every
//! domain concurrently; deferred recipients come back after the retry
//! delay, and recipients that fail for good (or outlive the queue lifetime)
//! are returned to the sender with a DSN queued through the spool before
//! the message's recipients are marked finished.

mod cleartext_retry;
mod connect;
mod context;
mod delivery;
mod envelope;
mod hop_failure;
mod hops;
mod mta_sts;
mod notices;
mod outcome;
mod plan;
mod reuse;
mod scheduler;
mod tls_sessions;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::error::StartError;
use crate::maillog::MailLog;
use crate::settings::EngineSettings;
use crate::spool::{Envelope, MessageId, QueuedMessage, Spool};

/// A message just accepted, its body still in memory.
#[derive(Debug)]
pub(crate) struct NewMessage {
    pub id: MessageId,
    pub envelope: Arc<Envelope>,
    pub body: Arc<Vec<u8>>,
}

/// Hands messages to the scheduler. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct OutboundHandle {
    tx: mpsc::UnboundedSender<NewMessage>,
}

impl OutboundHandle {
    /// Schedules a message for immediate delivery. If the scheduler has
    /// stopped (shutdown), the message simply stays in the spool.
    pub(crate) fn submit(&self, message: NewMessage) {
        let _ = self.tx.send(message);
    }
}

/// The running scheduler.
#[derive(Debug)]
pub(crate) struct Outbound {
    handle: OutboundHandle,
    scheduler: scheduler::Running,
}

impl Outbound {
    pub(crate) fn start(
        settings: &EngineSettings,
        spool: Arc<Spool>,
        log: MailLog,
        recovered: Vec<QueuedMessage>,
        dns: Option<crate::dns::Resolver>,
    ) -> Result<Outbound, StartError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let handle = OutboundHandle { tx };
        let scheduler = scheduler::start(settings, spool, log, recovered, rx, handle.clone(), dns)?;
        Ok(Outbound { handle, scheduler })
    }

    pub(crate) fn handle(&self) -> OutboundHandle {
        self.handle.clone()
    }

    pub(crate) async fn shutdown(self, grace: Duration) {
        drop(self.handle);
        self.scheduler.shutdown(grace).await;
    }
}
