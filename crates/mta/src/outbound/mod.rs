//! Outbound: the delivery scheduler and everything a delivery attempt
//! needs. New messages arrive from the listeners with their body in memory;
//! messages recovered from the spool at start are read from it. Each
//! attempt groups the pending recipients by domain and delivers every
//! domain concurrently; deferred recipients come back after the retry
//! delay, and recipients that fail for good (or outlive the queue lifetime)
//! are returned to the sender with a DSN queued through the spool before
//! the message's recipients are marked finished. Operators act on the queue
//! through [`SchedulerControl`] (`queue retry|hold|release|delete|bounce`),
//! suspend and resume delivery per domain, and reload the delivery settings
//! ([`Outbound::reload`]).

mod attempt;
mod cleartext_retry;
mod connect;
mod context;
mod counting;
mod decision_notes;
mod delivery;
mod downgrade_guard;
mod envelope;
mod hop_failure;
mod hops;
mod mta_sts;
mod notices;
mod operator;
mod outcome;
mod plan;
/// The domain check's way into delivery's code (`crate::check`).
pub(crate) mod probe;
mod queue_ops;
mod resume;
mod reuse;
mod scheduler;
mod suspend;
mod tls_alert;
mod tls_report;
mod tls_sessions;

pub(crate) use context::{Carried, Context as DeliveryContext};
pub(crate) use hops::{HopLookup, NextHops, resolve_with};
pub(crate) use operator::parse_host;
pub use operator::{ExemptionRow, StsCacheRow};
pub use queue_ops::RetryTarget;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::error::StartError;
use crate::maillog::MailLog;
use crate::settings::EngineSettings;
use crate::spool::{Envelope, MessageId, QueuedMessage, Spool};

use crate::suspension::DeliverySuspensions;
use context::Context;
use queue_ops::Command;

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

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

/// Sends operator commands to the running scheduler. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct SchedulerControl {
    tx: mpsc::UnboundedSender<Command>,
    active: scheduler::Active,
}

impl SchedulerControl {
    /// Whether `id` has a delivery attempt running now.
    pub(crate) fn delivering(&self, id: MessageId) -> bool {
        self.active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&id)
    }

    async fn ask(&self, make: impl FnOnce(queue_ops::Reply) -> Command) -> Result<String, String> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .map_err(|_| "delivery is shutting down".to_string())?;
        rx.await
            .unwrap_or_else(|_| Err("delivery is shutting down".into()))
    }

    pub(crate) async fn retry(&self, target: RetryTarget) -> Result<String, String> {
        self.ask(|reply| Command::Retry { target, reply }).await
    }

    pub(crate) async fn hold(&self, id: MessageId) -> Result<String, String> {
        self.ask(|reply| Command::Hold { id, reply }).await
    }

    pub(crate) async fn release(&self, id: MessageId) -> Result<String, String> {
        self.ask(|reply| Command::Release { id, reply }).await
    }

    pub(crate) async fn delete(&self, id: MessageId) -> Result<String, String> {
        self.ask(|reply| Command::Delete { id, reply }).await
    }

    pub(crate) async fn bounce(&self, id: MessageId) -> Result<String, String> {
        self.ask(|reply| Command::Bounce { id, reply }).await
    }

    /// Delivery to the domains `suspended` covers waits from now on;
    /// messages waiting only for domains no longer covered start at once.
    pub(crate) async fn set_suspensions(
        &self,
        suspended: DeliverySuspensions,
    ) -> Result<String, String> {
        self.ask(|reply| Command::Suspensions {
            suspended: Arc::new(suspended),
            reply,
        })
        .await
    }
}

/// The running scheduler.
#[derive(Debug)]
pub(crate) struct Outbound {
    handle: OutboundHandle,
    control: SchedulerControl,
    scheduler: scheduler::Running,
    spool: Arc<Spool>,
    log: MailLog,
    carried: Carried,
    /// The context new attempts get (for the operator's questions about
    /// exemptions and the MTA-STS cache; the scheduler has its own copy).
    current: std::sync::Mutex<Arc<Context>>,
}

impl Outbound {
    pub(crate) fn start(
        settings: &EngineSettings,
        spool: Arc<Spool>,
        log: MailLog,
        recovered: Vec<QueuedMessage>,
        dns: Option<crate::dns::Resolver>,
        carried: Carried,
        suspended: DeliverySuspensions,
    ) -> Result<Outbound, StartError> {
        let (tx, new) = mpsc::unbounded_channel();
        let (commands_tx, commands) = mpsc::unbounded_channel();
        let handle = OutboundHandle { tx };
        let control = SchedulerControl {
            tx: commands_tx,
            active: scheduler::Active::default(),
        };
        let context = Arc::new(Context::new(
            settings,
            spool.clone(),
            log.clone(),
            handle.clone(),
            dns,
            &carried,
        )?);
        let scheduler = scheduler::start(
            context.clone(),
            recovered,
            scheduler::Channels { new, commands },
            control.active.clone(),
            Arc::new(suspended),
        );
        Ok(Outbound {
            handle,
            control,
            scheduler,
            spool,
            log,
            carried,
            current: std::sync::Mutex::new(context),
        })
    }

    /// Builds the delivery context of `settings` (which can fail, and then
    /// nothing changed) for [`Outbound::commit_reload`].
    pub(crate) fn prepare_reload(
        &self,
        settings: &EngineSettings,
        dns: Option<crate::dns::Resolver>,
    ) -> Result<Arc<Context>, StartError> {
        Ok(Arc::new(Context::new(
            settings,
            self.spool.clone(),
            self.log.clone(),
            self.handle.clone(),
            dns,
            &self.carried,
        )?))
    }

    /// New attempts use `context` from now on; attempts in flight finish
    /// with the one they started with.
    pub(crate) fn commit_reload(&self, context: Arc<Context>) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = context.clone();
        let _ = self.control.tx.send(Command::Reload(context));
    }

    /// The context new attempts get.
    pub(crate) fn current(&self) -> Arc<Context> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn control(&self) -> SchedulerControl {
        self.control.clone()
    }

    pub(crate) fn handle(&self) -> OutboundHandle {
        self.handle.clone()
    }

    pub(crate) async fn shutdown(self, grace: Duration) {
        drop(self.handle);
        self.scheduler.shutdown(grace).await;
    }
}
