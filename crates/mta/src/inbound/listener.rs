//! One listener as a task: it accepts connections and starts a session for
//! each, and obeys the operator's commands between two accepts — new
//! settings after a reload (sessions already open keep the settings they
//! started with: each holds its own `Arc` of the context), suspend (close
//! the socket so clients try their next MX, and give the open sessions a
//! delay before they are closed with `421`), resume (bind again), stop.
//!
//! Sessions of one *generation* share an abort signal. Suspending starts a
//! new generation and schedules the old one's abort at the end of the
//! delay, so sessions opened after a resume are not cut by an older
//! suspension's timer.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{ListenerContext, bind, session};

/// What the listener's status shows.
#[derive(Debug)]
pub(crate) struct ListenerStatus {
    pub(crate) name: String,
    /// The configured address (port 0 until bound).
    pub(crate) configured: Mutex<SocketAddr>,
    /// The address bound now or last (a port-0 listener keeps its port
    /// across suspend and resume).
    pub(crate) bound: Mutex<Option<SocketAddr>>,
    /// Unix seconds when it was suspended; 0 while it accepts.
    pub(crate) suspended_since: AtomicU64,
    /// Open sessions now.
    pub(crate) open: AtomicUsize,
    /// Its `max-concurrency`.
    pub(crate) max: AtomicUsize,
}

impl ListenerStatus {
    pub(crate) fn new(name: &str, configured: SocketAddr, max: usize) -> Self {
        ListenerStatus {
            name: name.to_owned(),
            configured: Mutex::new(configured),
            bound: Mutex::new(None),
            suspended_since: AtomicU64::new(0),
            open: AtomicUsize::new(0),
            max: AtomicUsize::new(max),
        }
    }

    pub(crate) fn bound(&self) -> Option<SocketAddr> {
        *self.bound.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn configured(&self) -> SocketAddr {
        *self.configured.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// An operator command for one listener.
pub(crate) enum Command {
    /// New settings from a reload (the task attaches its abort signal).
    Update(Box<ListenerContext>),
    /// Stop accepting; open sessions have `delay` to finish.
    Suspend {
        delay: Duration,
        reply: oneshot::Sender<Result<String, String>>,
    },
    /// Accept again.
    Resume {
        reply: oneshot::Sender<Result<String, String>>,
    },
    /// Stop accepting for good; hands over the open sessions.
    Stop { reply: oneshot::Sender<Stopped> },
}

/// What a stopped listener leaves: its open sessions and the signals that
/// close them.
pub(crate) struct Stopped {
    pub(crate) sessions: JoinSet<()>,
    pub(crate) aborts: Vec<watch::Sender<bool>>,
}

/// Counts a session as open while it runs.
struct OpenGuard(Arc<ListenerStatus>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

fn now_unix() -> u64 {
    crate::outbound::unix_now().max(1)
}

pub(crate) struct Task {
    pub(crate) ctx: ListenerContext,
    pub(crate) socket: Option<TcpListener>,
    pub(crate) commands: mpsc::UnboundedReceiver<Command>,
    pub(crate) status: Arc<ListenerStatus>,
}

impl Task {
    pub(crate) async fn run(self) {
        let Task {
            ctx,
            mut socket,
            mut commands,
            status,
        } = self;
        let (mut abort, abort_rx) = watch::channel(false);
        let mut ctx = Arc::new(ctx.with_abort(abort_rx));
        let mut sessions = JoinSet::new();
        // Older generations, each closed at its deadline.
        let mut draining: Vec<(Instant, watch::Sender<bool>)> = Vec::new();
        loop {
            let next_cut = draining.iter().map(|(at, _)| *at).min();
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(Command::Update(new)) => {
                        ctx = Arc::new((*new).with_abort(abort.subscribe()));
                    }
                    Some(Command::Suspend { delay, reply }) => {
                        let answer = if socket.is_none() {
                            Ok(format!("listener {:?} is already suspended", status.name))
                        } else {
                            socket = None;
                            status.suspended_since.store(now_unix(), Ordering::Relaxed);
                            let (fresh, fresh_rx) = watch::channel(false);
                            let old = std::mem::replace(&mut abort, fresh);
                            ctx = Arc::new(ctx.as_ref().clone().with_abort(fresh_rx));
                            draining.push((Instant::now() + delay, old));
                            let open = status.open.load(Ordering::Relaxed);
                            ctx.log.line(format_args!(
                                "listener {:?} suspended: no longer accepting connections; {open} open session(s) have {}s to finish",
                                status.name,
                                delay.as_secs()
                            ));
                            Ok(format!(
                                "listener {:?} suspended: no longer accepting; {open} open session(s) have {}s to finish",
                                status.name,
                                delay.as_secs()
                            ))
                        };
                        let _ = reply.send(answer);
                    }
                    Some(Command::Resume { reply }) => {
                        let answer = if socket.is_some() {
                            Ok(format!("listener {:?} is already accepting", status.name))
                        } else {
                            resume(&ctx, &status).map(|(l, text)| {
                                socket = Some(l);
                                text
                            })
                        };
                        let _ = reply.send(answer);
                    }
                    Some(Command::Stop { reply }) => {
                        drop(socket);
                        let mut aborts: Vec<watch::Sender<bool>> =
                            draining.into_iter().map(|(_, s)| s).collect();
                        aborts.push(abort);
                        let _ = reply.send(Stopped { sessions, aborts });
                        return;
                    }
                    None => return,
                },
                accepted = accept(socket.as_ref()) => match accepted {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        status.open.fetch_add(1, Ordering::Relaxed);
                        let guard = OpenGuard(status.clone());
                        let counted = ctx.health.session_opened();
                        let ctx = ctx.clone();
                        sessions.spawn(async move {
                            let _open = (guard, counted);
                            session::run(ctx, stream, peer).await;
                        });
                    }
                    Err(e) => {
                        // EMFILE and friends: back off briefly instead of spinning.
                        ctx.log.warn(format_args!(
                            "listener {:?}: accept failed: {e}",
                            status.name
                        ));
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                () = sleep_until(next_cut) => {
                    let now = Instant::now();
                    let mut closed = false;
                    draining.retain(|(at, signal)| {
                        if *at <= now {
                            closed |= signal.receiver_count() > 0;
                            let _ = signal.send(true);
                            false
                        } else {
                            true
                        }
                    });
                    if closed {
                        ctx.log.line(format_args!(
                            "listener {:?}: suspend delay over: closing the sessions still open (421 4.3.2)",
                            status.name
                        ));
                    }
                }
            }
            while sessions.try_join_next().is_some() {}
        }
    }
}

/// Binds the listener again at the address it had.
fn resume(ctx: &ListenerContext, status: &ListenerStatus) -> Result<(TcpListener, String), String> {
    let mut settings = ctx.settings.clone();
    if settings.address.port() == 0
        && let Some(previous) = status.bound()
    {
        settings.address = previous;
    }
    let l = bind(&settings).map_err(|e| e.to_string())?;
    let addr = l.local_addr().map_err(|e| e.to_string())?;
    *status.bound.lock().unwrap_or_else(|p| p.into_inner()) = Some(addr);
    status.suspended_since.store(0, Ordering::Relaxed);
    ctx.log.line(format_args!(
        "listener {:?} resumed: accepting connections on {addr}",
        status.name
    ));
    Ok((l, format!("listener {:?} resumed on {addr}", status.name)))
}

async fn accept(
    socket: Option<&TcpListener>,
) -> std::io::Result<(tokio::net::TcpStream, SocketAddr)> {
    match socket {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
