//! Inbound: the listeners. Each listener binds a socket, and for every
//! connection applies the global and per-host limits, matches the client
//! against the HAT and runs an SMTP session ([`session`]) in its own tokio
//! task. Shutdown stops the accept loops at once, gives open sessions a
//! grace delay to finish, then closes the rest.

pub(crate) mod fcrdns;
mod limits;
mod received;
mod refusals;
mod session;
mod session_settings;
mod storage;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::error::StartError;
use crate::maillog::MailLog;
use crate::outbound::OutboundHandle;
use crate::settings::{EngineSettings, ListenerSettings};
use crate::spool::Spool;

use limits::Limits;

/// What every session of one listener shares.
pub(crate) struct ListenerContext {
    pub settings: ListenerSettings,
    pub acceptor: Option<tokio_rustls::TlsAcceptor>,
    pub gateway_hostname: String,
    pub spool: Arc<Spool>,
    pub outbound: OutboundHandle,
    pub log: MailLog,
    pub limits: Limits,
    /// Flips to true when sessions must close now (grace delay over).
    pub abort: watch::Receiver<bool>,
    /// For HATs with host-name patterns: the gateway's resolver, for the
    /// client's forward-confirmed name (its timeout is the deadline).
    pub names: Option<crate::dns::Resolver>,
}

impl std::fmt::Debug for ListenerContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerContext")
            .field("listener", &self.settings.name)
            .finish_non_exhaustive()
    }
}

/// The running listeners.
#[derive(Debug)]
pub(crate) struct Inbound {
    addrs: Vec<SocketAddr>,
    stop: watch::Sender<bool>,
    abort: watch::Sender<bool>,
    loops: JoinSet<JoinSet<()>>,
    log: MailLog,
}

fn bind(l: &ListenerSettings) -> Result<TcpListener, StartError> {
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

impl Inbound {
    pub(crate) async fn start(
        settings: &EngineSettings,
        spool: Arc<Spool>,
        outbound: OutboundHandle,
        log: MailLog,
        dns: Option<crate::dns::Resolver>,
    ) -> Result<Inbound, StartError> {
        let (stop, _) = watch::channel(false);
        let (abort, abort_rx) = watch::channel(false);
        let mut bound = Vec::new();
        for l in &settings.listeners {
            bound.push((l, bind(l)?));
        }
        let mut addrs = Vec::new();
        let mut loops = JoinSet::new();
        for (l, listener) in bound {
            let addr = listener.local_addr().map_err(|e| StartError::Bind {
                name: l.name.clone(),
                address: l.address,
                reason: e.to_string(),
            })?;
            addrs.push(addr);
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
            let names = if fcrdns::needs_names(l.access.hat()) {
                if dns.is_none() {
                    log.warn(format_args!(
                        "listener {:?}: the HAT has host-name sender groups but no DNS resolver is configured; they match no client",
                        l.name
                    ));
                }
                dns.clone()
            } else {
                None
            };
            let ctx = Arc::new(ListenerContext {
                settings: l.clone(),
                acceptor: l.tls.clone().map(tokio_rustls::TlsAcceptor::from),
                gateway_hostname: settings.hostname.clone(),
                spool: spool.clone(),
                outbound: outbound.clone(),
                log: log.clone(),
                limits: Limits::new(l.max_concurrency),
                abort: abort_rx.clone(),
                names,
            });
            loops.spawn(accept_loop(ctx, listener, stop.subscribe()));
        }
        Ok(Inbound {
            addrs,
            stop,
            abort,
            loops,
            log,
        })
    }

    pub(crate) fn local_addrs(&self) -> Vec<SocketAddr> {
        self.addrs.clone()
    }

    pub(crate) async fn shutdown(mut self, grace: Duration) {
        let _ = self.stop.send(true);
        let mut all: Vec<JoinSet<()>> = Vec::new();
        while let Some(done) = self.loops.join_next().await {
            if let Ok(set) = done {
                all.push(set);
            }
        }
        for set in &mut all {
            while set.try_join_next().is_some() {}
        }
        let open: usize = all.iter().map(JoinSet::len).sum();
        self.log.line(format_args!(
            "listeners stopped; {open} open session(s), waiting up to {}s for them to finish",
            grace.as_secs()
        ));
        let finished = tokio::time::timeout(grace, async {
            for set in &mut all {
                while set.join_next().await.is_some() {}
            }
        })
        .await;
        if finished.is_err() {
            let _ = self.abort.send(true);
            // Sessions see the abort and close within a moment; do not hang
            // on one stuck in a write.
            let _ = tokio::time::timeout(Duration::from_secs(5), async {
                for set in &mut all {
                    while set.join_next().await.is_some() {}
                }
            })
            .await;
            for set in &mut all {
                set.abort_all();
            }
            self.log.line(format_args!(
                "grace delay over: closed the sessions still open"
            ));
        }
    }
}

/// Accepts until told to stop; returns the sessions still running.
async fn accept_loop(
    ctx: Arc<ListenerContext>,
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
) -> JoinSet<()> {
    let mut sessions = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    sessions.spawn(session::run(ctx.clone(), stream, peer));
                }
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    ctx.log.warn(format_args!(
                        "listener {:?}: accept failed: {e}",
                        ctx.settings.name
                    ));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
        while sessions.try_join_next().is_some() {}
    }
    sessions
}
