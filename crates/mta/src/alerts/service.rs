//! The alert service: a task beside the mail path that takes the notices
//! the [`AlertSink`] lets through, logs each one, keeps the recent list,
//! and delivers each to its subscribed recipients (one mail per recipient
//! domain, or one through the smarthost) and to the webhook. Every pending
//! delivery is first written to the outbox; if that write fails (the data
//! directory's filesystem is full, say) the delivery is kept in memory,
//! said in the log, and the write is tried again with each retry. Failed
//! deliveries are retried with a doubling delay; what is still pending at
//! shutdown stays in the outbox for the next start. In a cluster
//! ([`AlertService::join_cluster`]) a notice is first claimed in the
//! cluster database so that one node delivers each event, naming itself
//! ([`crate::cluster::alerts`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use super::outbox::{Outbox, Pending, Target};
use super::recent::RecentAlerts;
use super::{AlertSettings, AlertSink, Delivery, Notice};
use crate::clock::SharedClock;
use crate::cluster::Cluster;
use crate::cluster::alerts::{Claim, claim, naming_node};
use crate::dns::Resolver;
use crate::maillog::MailLog;

/// How often held-back repeats and due retries are looked at.
const TICK: Duration = Duration::from_millis(500);

/// Most deliveries kept pending: past this the oldest are given up (and
/// said so), so an alert path that stays down cannot fill the disk.
const MAX_PENDING: usize = 500;

/// A running alert service. Dropping it stops the task.
#[derive(Debug)]
pub struct AlertService {
    sink: AlertSink,
    recent: Arc<Mutex<RecentAlerts>>,
    pending: watch::Receiver<usize>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    settings: Arc<AlertSettings>,
    /// Set once the node joins a cluster ([`AlertService::join_cluster`]).
    cluster: Arc<OnceLock<Cluster>>,
    /// Held while running: one service per alerts directory.
    _lock: std::fs::File,
}

struct Item {
    pending: Pending,
    due: Instant,
    /// Stored in the outbox (else only in memory).
    durable: bool,
    in_flight: bool,
}

struct Worker {
    settings: Arc<AlertSettings>,
    resolver: Option<Resolver>,
    log: MailLog,
    outbox: Outbox,
    recent: Arc<Mutex<RecentAlerts>>,
    items: BTreeMap<String, Item>,
    pending: watch::Sender<usize>,
    cluster: Arc<OnceLock<Cluster>>,
    /// Notices delivered without the cluster database, for its shared list.
    backlog: Vec<Notice>,
}

impl AlertService {
    /// Opens the alerts directory (recent list, outbox with what an
    /// earlier run left pending) and starts the task. Must be called
    /// inside a tokio runtime.
    pub fn start(
        settings: AlertSettings,
        clock: SharedClock,
        log: MailLog,
    ) -> Result<AlertService, String> {
        let dir = &settings.dir;
        std::fs::create_dir_all(dir).map_err(|e| {
            format!(
                "alerts: cannot create the alerts directory {}: {e}",
                dir.display()
            )
        })?;
        let lock_path = dir.join("lock");
        let lock = std::fs::File::create(&lock_path)
            .map_err(|e| format!("alerts: cannot create {}: {e}", lock_path.display()))?;
        lock.try_lock().map_err(|_| {
            format!(
                "alerts: {} is in use by another running gateway (its outbox and recent list are not shared)",
                dir.display()
            )
        })?;
        let (recent, warning) = RecentAlerts::open(dir, settings.recent);
        if let Some(w) = warning {
            log.warn(format_args!("{w}"));
        }
        let outbox_dir = dir.join("outbox");
        let (outbox, left, warnings) = Outbox::open(&outbox_dir).map_err(|e| {
            format!(
                "alerts: cannot open the alert outbox {}: {e}",
                outbox_dir.display()
            )
        })?;
        for w in warnings {
            log.warn(format_args!("{w}"));
        }
        let resolver = match &settings.dns {
            Some(d) => Some(Resolver::new(d).map_err(|e| format!("alerts: DNS resolver: {e}"))?),
            None => None,
        };
        let (sink, rx) = AlertSink::channel(clock, settings.dedup);
        let settings = Arc::new(settings);
        let recent = Arc::new(Mutex::new(recent));
        let (pending_tx, pending_rx) = watch::channel(0);
        let (stop, stop_rx) = watch::channel(false);
        let now = Instant::now();
        if !left.is_empty() {
            log.line(format_args!(
                "alerts: {} delivery(ies) left pending in the outbox by an earlier run; sending them",
                left.len()
            ));
        }
        let items = left
            .into_iter()
            .map(|p| {
                (
                    p.file_name(),
                    Item {
                        pending: p,
                        due: now,
                        durable: true,
                        in_flight: false,
                    },
                )
            })
            .collect();
        let cluster = Arc::new(OnceLock::new());
        let worker = Worker {
            cluster: cluster.clone(),
            backlog: Vec::new(),
            settings: settings.clone(),
            resolver,
            log,
            outbox,
            recent: recent.clone(),
            items,
            pending: pending_tx,
        };
        let task = tokio::spawn(worker.run(rx, sink.clone(), stop_rx));
        Ok(AlertService {
            sink,
            recent,
            pending: pending_rx,
            stop,
            task: Some(task),
            settings,
            cluster,
            _lock: lock,
        })
    }

    /// The handle to give to every source.
    pub fn sink(&self) -> AlertSink {
        self.sink.clone()
    }

    /// The recent alerts, newest last.
    pub fn recent(&self) -> Vec<Notice> {
        self.recent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .list()
    }

    /// From now on notices are claimed in `cluster` before delivery, so
    /// that one node delivers each event, and name this node (see
    /// [`crate::cluster::alerts`]). Set once; later calls are ignored.
    pub fn join_cluster(&self, cluster: Cluster) {
        let _ = self.cluster.set(cluster);
    }

    /// The settings the service runs with.
    pub fn settings(&self) -> &AlertSettings {
        &self.settings
    }

    /// Deliveries not yet done (outbox and memory).
    pub fn pending(&self) -> usize {
        *self.pending.borrow()
    }

    /// Waits until nothing is pending, at most `timeout`; true if so.
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        let mut rx = self.pending.clone();
        tokio::time::timeout(timeout, rx.wait_for(|n| *n == 0))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Stops the task; pending deliveries stay in the outbox.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for AlertService {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

type Attempt = (String, Result<String, String>);

impl Worker {
    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Notice>,
        sink: AlertSink,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(TICK);
        let mut attempts: JoinSet<Attempt> = JoinSet::new();
        self.publish();
        self.start_due(&mut attempts);
        loop {
            tokio::select! {
                notice = rx.recv() => match notice {
                    Some(n) => {
                        self.accept(n).await;
                        self.start_due(&mut attempts);
                    }
                    None => break,
                },
                _ = tick.tick() => {
                    sink.send_due();
                    self.start_due(&mut attempts);
                }
                Some(done) = attempts.join_next() => {
                    if let Ok((name, result)) = done {
                        self.finished(&name, result).await;
                    }
                }
                _ = stop.changed() => break,
            }
        }
    }

    /// A new notice: log, recent list, one pending delivery per target.
    async fn accept(&mut self, notice: Notice) {
        let notice = match self.cluster.get().cloned() {
            None => notice,
            Some(cluster) => {
                let named = naming_node(cluster.node(), notice);
                let window = self.settings.dedup.initial_wait;
                match claim(&cluster, &named, window, &mut self.backlog).await {
                    Claim::Taken { node } => {
                        self.log.line(format_args!(
                            "ALERT {} (node {node} raised it too and delivers it)",
                            named.summary()
                        ));
                        self.keep_recent(named).await;
                        return;
                    }
                    Claim::Mine | Claim::Local => named,
                }
            }
        };
        let summary = notice.summary();
        match notice.alert.severity {
            super::Severity::Info => self.log.line(format_args!("ALERT {summary}")),
            _ => self.log.warn(format_args!("ALERT {summary}")),
        }
        self.keep_recent(notice.clone()).await;
        self.deliver(notice).await;
    }

    /// Adds to the node's own recent list (file in the alerts directory).
    async fn keep_recent(&self, notice: Notice) {
        let recent = self.recent.clone();
        let kept = notice;
        // File writes (with fsync) run off the runtime's worker threads,
        // which the mail path shares.
        let saved = tokio::task::spawn_blocking(move || {
            recent
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(kept)
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        if let Err(e) = saved {
            self.log.warn(format_args!(
                "alerts: cannot save the recent-alerts list in {}: {e}",
                self.settings.dir.display()
            ));
        }
    }

    /// One pending delivery per subscribed target.
    async fn deliver(&mut self, notice: Notice) {
        let mut targets = Vec::new();
        let wanted: Vec<String> = self
            .settings
            .recipients
            .iter()
            .filter(|r| {
                r.subscription
                    .wants(notice.alert.class, notice.alert.severity)
            })
            .map(|r| r.address.clone())
            .collect();
        match &self.settings.delivery {
            Delivery::Smarthost(_) if !wanted.is_empty() => {
                targets.push(Target::Mail { recipients: wanted })
            }
            Delivery::Smarthost(_) => {}
            Delivery::DirectMx => {
                let mut by_domain: BTreeMap<String, Vec<String>> = BTreeMap::new();
                for r in wanted {
                    let domain = r
                        .rsplit_once('@')
                        .map(|(_, d)| d.to_ascii_lowercase())
                        .unwrap_or_default();
                    by_domain.entry(domain).or_default().push(r);
                }
                targets.extend(
                    by_domain
                        .into_values()
                        .map(|recipients| Target::Mail { recipients }),
                );
            }
        }
        if self.settings.webhook.is_some() {
            targets.push(Target::Webhook);
        }
        self.make_room(targets.len());
        for target in targets {
            let pending = Pending {
                notice: notice.clone(),
                target,
                attempts: 0,
                last_error: None,
            };
            let durable = self.store(&pending).await;
            self.items.insert(
                pending.file_name(),
                Item {
                    pending,
                    due: Instant::now(),
                    durable,
                    in_flight: false,
                },
            );
        }
        self.publish();
    }

    /// Gives up the oldest pending deliveries (not in flight) so that
    /// `more` fit under [`MAX_PENDING`].
    fn make_room(&mut self, more: usize) {
        let excess = (self.items.len() + more).saturating_sub(MAX_PENDING);
        let oldest: Vec<String> = self
            .items
            .iter()
            .filter(|(_, i)| !i.in_flight)
            .map(|(name, _)| name.clone())
            .take(excess)
            .collect();
        for name in oldest {
            if let Some(item) = self.items.remove(&name) {
                if item.durable {
                    let _ = self.outbox.remove(&item.pending);
                }
                self.log.warn(format_args!(
                    "alerts: more than {MAX_PENDING} alert deliveries pending; gave up the oldest, alert {} to {} ({} attempt(s), last: {})",
                    item.pending.notice.id,
                    item.pending.target.describe(),
                    item.pending.attempts,
                    item.pending.last_error.as_deref().unwrap_or("not tried yet")
                ));
            }
        }
    }

    /// Writes to the outbox; false (logged) when it cannot.
    async fn store(&self, pending: &Pending) -> bool {
        let (outbox, copy) = (self.outbox.clone(), pending.clone());
        let written = tokio::task::spawn_blocking(move || outbox.put(&copy))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        match written {
            Ok(()) => true,
            Err(e) => {
                self.log.warn(format_args!(
                    "alerts: cannot write alert {} to the outbox ({e}); it is kept in memory and retried (lost if the gateway stops before it is sent)",
                    pending.file_name()
                ));
                false
            }
        }
    }

    fn start_due(&mut self, attempts: &mut JoinSet<Attempt>) {
        let now = Instant::now();
        for (name, item) in &mut self.items {
            if item.in_flight || item.due > now {
                continue;
            }
            item.in_flight = true;
            let settings = self.settings.clone();
            let resolver = self.resolver.clone();
            let log = self.log.clone();
            let pending = item.pending.clone();
            let name = name.clone();
            attempts.spawn(async move {
                let result =
                    super::dispatch::attempt(&settings, resolver.as_ref(), &log, &pending).await;
                (name, result)
            });
        }
    }

    async fn finished(&mut self, name: &str, result: Result<String, String>) {
        let Some(item) = self.items.get_mut(name) else {
            return;
        };
        item.in_flight = false;
        let what = item.pending.target.describe();
        match result {
            Ok(how) => {
                self.log.line(format_args!(
                    "alerts: alert {} sent to {what} via {how}",
                    item.pending.notice.id
                ));
                if item.durable
                    && let Err(e) = self.outbox.remove(&item.pending)
                {
                    self.log.warn(format_args!(
                        "alerts: alert {name} was sent but its outbox file could not be removed ({e}); it may be sent again after a restart"
                    ));
                }
                self.items.remove(name);
            }
            Err(why) => {
                item.pending.attempts = item.pending.attempts.saturating_add(1);
                item.pending.last_error = Some(why.clone());
                let shift = item.pending.attempts.saturating_sub(1).min(16);
                let delay = self
                    .settings
                    .retry_first
                    .saturating_mul(1 << shift)
                    .min(self.settings.retry_max);
                item.due = Instant::now() + delay;
                self.log.warn(format_args!(
                    "alerts: alert {} to {what} not sent (attempt {}): {why}; next try in {} s",
                    item.pending.notice.id,
                    item.pending.attempts,
                    delay.as_secs()
                ));
                let pending = item.pending.clone();
                let durable = self.store(&pending).await;
                if let Some(item) = self.items.get_mut(name) {
                    item.durable = durable;
                }
            }
        }
        self.publish();
    }

    fn publish(&self) {
        self.pending.send_replace(self.items.len());
    }
}
