//! The control socket: `control.sock` in the data directory, a Unix socket
//! only its owner can use (mode 0600, and the peer's uid is checked: the
//! gateway's own user or root). One request per connection: the client
//! writes a [`QueueRequest`] as one JSON line, the gateway answers one JSON
//! line, `{"Ok": <QueueReply>}` or `{"Err": "<reason>"}`, and closes.
//!
//! The socket exists only while the gateway runs; a stale one left by a
//! crash is replaced at the next start (the spool's lock, taken first, says
//! no other gateway uses this data directory).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

use super::{QueueReply, QueueRequest, QueueService};
use crate::maillog::MailLog;

/// Longest request line accepted.
const MAX_REQUEST: u64 = 64 << 10;

/// A client waits this long for the gateway's answer (a bounce may need a
/// spool write; nothing takes longer).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// The running control socket.
#[derive(Debug)]
pub(crate) struct ControlSocket {
    path: PathBuf,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl ControlSocket {
    /// Binds `path` and serves `service` until [`ControlSocket::shutdown`].
    pub(crate) fn start(
        path: &Path,
        service: QueueService,
        log: MailLog,
    ) -> std::io::Result<ControlSocket> {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stopped.changed() => break,
                    accepted = listener.accept() => {
                        if let Ok((stream, _)) = accepted {
                            tokio::spawn(serve(stream, service.clone(), log.clone()));
                        }
                    }
                }
            }
        });
        Ok(ControlSocket {
            path: path.to_path_buf(),
            stop,
            task,
        })
    }

    pub(crate) async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Whether the peer may control the queue: the gateway's own user or root.
fn allowed(stream: &UnixStream) -> Result<u32, String> {
    let cred = stream
        .peer_cred()
        .map_err(|e| format!("cannot tell who is asking: {e}"))?;
    let uid = cred.uid();
    let own = rustix::process::geteuid().as_raw();
    if uid == own || uid == 0 {
        Ok(uid)
    } else {
        Err(format!(
            "uid {uid} may not control this gateway (only uid {own} and root)"
        ))
    }
}

async fn serve(stream: UnixStream, service: QueueService, log: MailLog) {
    let peer = allowed(&stream);
    let (read, mut write) = stream.into_split();
    let reply: Result<QueueReply, String> = match peer {
        Err(why) => {
            log.warn(format_args!("control socket: refused a request: {why}"));
            Err(why)
        }
        Ok(_) => {
            use tokio::io::AsyncReadExt;
            let mut line = String::new();
            let mut reader = tokio::io::BufReader::new(read.take(MAX_REQUEST));
            match reader.read_line(&mut line).await {
                Ok(_) => match serde_json::from_str::<QueueRequest>(&line) {
                    Ok(request) => service.handle(request).await,
                    Err(e) => Err(format!("not a queue request: {e}")),
                },
                Err(e) => Err(format!("cannot read the request: {e}")),
            }
        }
    };
    if let Ok(mut text) = serde_json::to_string(&reply) {
        text.push('\n');
        let _ = write.write_all(text.as_bytes()).await;
        let _ = write.shutdown().await;
    }
}

/// Why a request did not reach a gateway.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No gateway listens on the socket (not running, or a stale socket).
    #[error("no gateway answers on {0}")]
    NotRunning(PathBuf),
    #[error("control socket {path}: {reason}")]
    Failed { path: PathBuf, reason: String },
}

/// Sends `request` to the gateway listening on `path` and returns its
/// answer (blocking; for the command line).
pub fn call(path: &Path, request: &QueueRequest) -> Result<Result<QueueReply, String>, CallError> {
    use std::os::unix::net::UnixStream;
    let failed = |reason: String| CallError::Failed {
        path: path.to_path_buf(),
        reason,
    };
    let mut stream = match UnixStream::connect(path) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Err(CallError::NotRunning(path.to_path_buf()));
        }
        Err(e) => return Err(failed(e.to_string())),
    };
    let _ = stream.set_read_timeout(Some(CLIENT_TIMEOUT));
    let mut line = serde_json::to_string(request).map_err(|e| failed(e.to_string()))?;
    line.push('\n');
    stream
        .write_all(line.as_bytes())
        .map_err(|e| failed(e.to_string()))?;
    let mut answer = String::new();
    BufReader::new(stream)
        .read_line(&mut answer)
        .map_err(|e| failed(format!("no answer: {e}")))?;
    serde_json::from_str(&answer).map_err(|e| failed(format!("unreadable answer: {e}")))
}
