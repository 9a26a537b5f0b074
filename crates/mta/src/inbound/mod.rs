//! Inbound: the listeners. Each listener binds a socket and runs as a task
//! (`listener.rs`) that, for every connection, applies the global and
//! per-host limits, matches the client against the HAT and runs an SMTP
//! session ([`session`]) in its own tokio task. Between accepts it obeys
//! the operator: new settings after a reload, suspend and resume. A reload
//! binds every new socket before it changes anything (all-or-nothing);
//! removed listeners stop accepting and their sessions get the grace delay.
//! Shutdown stops the accept loops at once, gives open sessions a grace
//! delay to finish, then closes the rest.

mod conservation;
pub(crate) mod fcrdns;
mod limits;
mod listener;
mod received;
mod refusals;
mod report_intake;
mod session;
mod session_settings;
mod storage;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

use crate::error::StartError;
use crate::maillog::MailLog;
use crate::metrics::{Metrics, SessionMetrics};
use crate::outbound::OutboundHandle;
use crate::settings::{EngineSettings, ListenerSettings};
use crate::spool::Spool;

use limits::Limits;
pub(crate) use listener::ListenerStatus;
use listener::{Command, Stopped, Task};

/// What every session of one listener shares. Each session holds its own
/// `Arc` of it, so a reload changes what new sessions get and nothing else.
#[derive(Clone)]
pub(crate) struct ListenerContext {
    pub settings: ListenerSettings,
    pub acceptor: Option<tokio_rustls::TlsAcceptor>,
    pub gateway_hostname: String,
    pub spool: Arc<Spool>,
    pub outbound: OutboundHandle,
    pub log: MailLog,
    pub limits: Arc<Limits>,
    /// Flips to true when sessions must close now (grace or suspend delay
    /// over).
    pub abort: watch::Receiver<bool>,
    /// For HATs with host-name patterns: the gateway's resolver, for the
    /// client's forward-confirmed name (its timeout is the deadline).
    pub names: Option<crate::dns::Resolver>,
    /// The listener's session counters.
    pub metrics: SessionMetrics,
    /// The TLS report inbox, once attached: mail to its addresses is
    /// stored as reports, not queued.
    pub report_inbox: crate::tlsrpt_inbox::InboxSlot,
    /// Resource conservation, and the count of open sessions.
    pub health: crate::health::Health,
}

impl ListenerContext {
    fn with_abort(mut self, abort: watch::Receiver<bool>) -> Self {
        self.abort = abort;
        self
    }
}

impl std::fmt::Debug for ListenerContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerContext")
            .field("listener", &self.settings.name)
            .finish_non_exhaustive()
    }
}

/// What every listener is built from besides its own settings.
#[derive(Clone)]
pub(crate) struct Shared {
    pub spool: Arc<Spool>,
    pub outbound: OutboundHandle,
    pub log: MailLog,
    pub dns: Option<crate::dns::Resolver>,
    pub metrics: Arc<Metrics>,
    pub report_inbox: crate::tlsrpt_inbox::InboxSlot,
    /// Resource conservation (one atomic load per connection and MAIL).
    pub health: crate::health::Health,
}

/// One running listener.
struct Entry {
    name: String,
    address: SocketAddr,
    limits: Arc<Limits>,
    max: usize,
    commands: mpsc::UnboundedSender<Command>,
    status: Arc<ListenerStatus>,
}

/// The running listeners.
pub(crate) struct Inbound {
    shared: Shared,
    listeners: Vec<Entry>,
    /// Removed listeners whose sessions are finishing.
    draining: JoinSet<()>,
}

impl std::fmt::Debug for Inbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbound")
            .field("listeners", &self.listeners.len())
            .finish_non_exhaustive()
    }
}

pub(crate) fn bind(l: &ListenerSettings) -> Result<TcpListener, StartError> {
    let err = |e: std::io::Error| StartError::Bind {
        name: l.name.clone(),
        address: l.address,
        reason: e.to_string(),
    };
    let socket = if l.address.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(err)?;
    socket.set_reuseaddr(true).map_err(err)?;
    socket.bind(l.address).map_err(err)?;
    socket.listen(l.backlog.max(1)).map_err(err)
}

/// A listener of a reload, bound (or suspended) but not started yet.
pub(crate) struct Prepared {
    settings: ListenerSettings,
    socket: Option<TcpListener>,
}

/// A reload's listener changes, every socket already bound: applying them
/// cannot fail.
pub(crate) struct InboundPlan {
    listeners: Vec<Prepared>,
    hostname: String,
}

impl Inbound {
    pub(crate) async fn start(
        settings: &EngineSettings,
        shared: Shared,
        suspended: &std::collections::BTreeMap<String, u64>,
    ) -> Result<Inbound, StartError> {
        let mut inbound = Inbound {
            shared,
            listeners: Vec::new(),
            draining: JoinSet::new(),
        };
        let plan = inbound.prepare(settings, suspended)?;
        inbound.apply(plan, Duration::ZERO);
        Ok(inbound)
    }

    /// Binds what `settings` adds (or moves) and checks everything else,
    /// changing nothing: a listener that cannot bind fails the whole plan.
    pub(crate) fn prepare(
        &self,
        settings: &EngineSettings,
        suspended: &std::collections::BTreeMap<String, u64>,
    ) -> Result<InboundPlan, StartError> {
        let mut listeners = Vec::new();
        for l in &settings.listeners {
            let running = self
                .listeners
                .iter()
                .any(|e| e.name == l.name && e.address == l.address);
            let socket = if running || suspended.contains_key(&l.name) {
                None
            } else {
                Some(bind(l)?)
            };
            listeners.push(Prepared {
                settings: l.clone(),
                socket,
            });
        }
        Ok(InboundPlan {
            listeners,
            hostname: settings.hostname.clone(),
        })
    }

    /// Applies a prepared plan: running listeners get their new settings,
    /// new ones start, removed (or moved) ones stop accepting and their
    /// sessions get `grace` to finish.
    pub(crate) fn apply(&mut self, plan: InboundPlan, grace: Duration) {
        let mut old = std::mem::take(&mut self.listeners);
        for p in plan.listeners {
            let at = old
                .iter()
                .position(|e| e.name == p.settings.name && e.address == p.settings.address);
            let kept = at.map(|i| old.remove(i));
            let entry = match kept {
                Some(mut e) => {
                    if e.max != p.settings.max_concurrency {
                        e.limits = Arc::new(Limits::new(p.settings.max_concurrency));
                        e.max = p.settings.max_concurrency;
                    }
                    e.status.max.store(
                        p.settings.max_concurrency,
                        std::sync::atomic::Ordering::Relaxed,
                    );
                    let ctx = self.context(&p.settings, &plan.hostname, e.limits.clone());
                    let _ = e.commands.send(Command::Update(Box::new(ctx)));
                    e
                }
                None => self.spawn(p, &plan.hostname),
            };
            self.listeners.push(entry);
        }
        for gone in old {
            self.shared.log.line(format_args!(
                "listener {:?} removed by the new configuration: no longer accepting; open sessions have {}s to finish",
                gone.name,
                grace.as_secs()
            ));
            let (reply, rx) = oneshot::channel();
            let _ = gone.commands.send(Command::Stop { reply });
            self.draining.spawn(async move {
                if let Ok(stopped) = rx.await {
                    drain(vec![stopped], grace).await;
                }
            });
        }
        while self.draining.try_join_next().is_some() {}
    }

    fn context(
        &self,
        l: &ListenerSettings,
        hostname: &str,
        limits: Arc<Limits>,
    ) -> ListenerContext {
        let log = &self.shared.log;
        let names = if fcrdns::needs_names(l.access.hat()) {
            if self.shared.dns.is_none() {
                log.warn(format_args!(
                    "listener {:?}: the HAT has host-name sender groups but no DNS resolver is configured; they match no client",
                    l.name
                ));
            }
            self.shared.dns.clone()
        } else {
            None
        };
        ListenerContext {
            settings: l.clone(),
            acceptor: l.tls.clone().map(tokio_rustls::TlsAcceptor::from),
            gateway_hostname: hostname.to_owned(),
            spool: self.shared.spool.clone(),
            outbound: self.shared.outbound.clone(),
            log: log.clone(),
            limits,
            // The listener task attaches its own abort signal.
            abort: watch::channel(false).1,
            names,
            metrics: self.shared.metrics.session_metrics(&l.name),
            report_inbox: self.shared.report_inbox.clone(),
            health: self.shared.health.clone(),
        }
    }

    fn spawn(&self, p: Prepared, hostname: &str) -> Entry {
        let l = &p.settings;
        let log = &self.shared.log;
        let status = Arc::new(ListenerStatus::new(&l.name, l.address, l.max_concurrency));
        match &p.socket {
            Some(socket) => {
                let addr = socket.local_addr().unwrap_or(l.address);
                *status.bound.lock().unwrap_or_else(|e| e.into_inner()) = Some(addr);
                if l.demo_certificate {
                    log.warn(format_args!(
                        "listener {:?} on {addr} presents the built-in demonstration certificate: it is for testing only; install a real certificate before receiving mail from the Internet",
                        l.name
                    ));
                }
                log.line(format_args!(
                    "listener {:?} listening on {addr} ({}, STARTTLS certificate: {})",
                    l.name,
                    match l.access.kind() {
                        portcullis_policy::ListenerKind::Public => "public",
                        portcullis_policy::ListenerKind::Private => "private",
                    },
                    match (&l.tls, l.demo_certificate) {
                        (Some(_), true) => "the built-in demonstration certificate (testing only)",
                        (Some(_), false) => "configured",
                        (None, _) => "none",
                    }
                ));
            }
            None => {
                status.suspended_since.store(
                    crate::outbound::unix_now().max(1),
                    std::sync::atomic::Ordering::Relaxed,
                );
                log.warn(format_args!(
                    "listener {:?} on {} is suspended (since before this start): not accepting; `portcullis ctl resume listener {}` accepts mail again",
                    l.name, l.address, l.name
                ));
            }
        }
        let limits = Arc::new(Limits::new(l.max_concurrency));
        let ctx = self.context(l, hostname, limits.clone());
        let (commands, rx) = mpsc::unbounded_channel();
        tokio::spawn(
            Task {
                ctx,
                socket: p.socket,
                commands: rx,
                status: status.clone(),
            }
            .run(),
        );
        Entry {
            name: l.name.clone(),
            address: l.address,
            limits,
            max: l.max_concurrency,
            commands,
            status,
        }
    }

    /// The resolver new sessions use for host-name sender groups.
    pub(crate) fn set_dns(&mut self, dns: Option<crate::dns::Resolver>) {
        self.shared.dns = dns;
    }

    /// Every listener's status, in settings order.
    pub(crate) fn statuses(&self) -> Vec<Arc<ListenerStatus>> {
        self.listeners.iter().map(|e| e.status.clone()).collect()
    }

    /// Suspends listener `name` (its sessions have `delay`), or resumes it.
    /// Returns the channel to wait on for the answer.
    pub(crate) fn command(
        &self,
        name: &str,
        suspend: Option<Duration>,
    ) -> Result<oneshot::Receiver<Result<String, String>>, String> {
        let e = self
            .listeners
            .iter()
            .find(|e| e.name == name)
            .ok_or_else(|| {
                format!(
                    "there is no listener {name:?} (listeners: {})",
                    self.listeners
                        .iter()
                        .map(|e| e.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
        let (reply, rx) = oneshot::channel();
        let cmd = match suspend {
            Some(delay) => Command::Suspend { delay, reply },
            None => Command::Resume { reply },
        };
        e.commands
            .send(cmd)
            .map_err(|_| "the gateway is shutting down".to_owned())?;
        Ok(rx)
    }

    pub(crate) fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .map(|e| e.status.bound().unwrap_or(e.address))
            .collect()
    }

    pub(crate) async fn shutdown(mut self, grace: Duration) {
        let mut stopped = Vec::new();
        for e in self.listeners.drain(..) {
            let (reply, rx) = oneshot::channel();
            if e.commands.send(Command::Stop { reply }).is_ok()
                && let Ok(s) = rx.await
            {
                stopped.push(s);
            }
        }
        for s in &mut stopped {
            while s.sessions.try_join_next().is_some() {}
        }
        let open: usize = stopped.iter().map(|s| s.sessions.len()).sum();
        self.shared.log.line(format_args!(
            "listeners stopped; {open} open session(s), waiting up to {}s for them to finish",
            grace.as_secs()
        ));
        let mut removed = std::mem::take(&mut self.draining);
        let log = self.shared.log.clone();
        if !drain(stopped, grace).await {
            log.line(format_args!(
                "grace delay over: closed the sessions still open"
            ));
        }
        // Listeners removed by a reload drain on their own clock; give
        // them the same bound.
        let _ = tokio::time::timeout(grace + Duration::from_secs(6), async {
            while removed.join_next().await.is_some() {}
        })
        .await;
        removed.abort_all();
    }
}

/// Lets the sessions finish within `grace`, then closes the rest; true
/// when they all finished in time.
async fn drain(mut stopped: Vec<Stopped>, grace: Duration) -> bool {
    let finished = tokio::time::timeout(grace, async {
        for s in &mut stopped {
            while s.sessions.join_next().await.is_some() {}
        }
    })
    .await;
    if finished.is_ok() {
        return true;
    }
    for s in &stopped {
        for a in &s.aborts {
            let _ = a.send(true);
        }
    }
    // Sessions see the abort and close within a moment; do not hang on one
    // stuck in a write.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        for s in &mut stopped {
            while s.sessions.join_next().await.is_some() {}
        }
    })
    .await;
    for s in &mut stopped {
        s.sessions.abort_all();
    }
    false
}
