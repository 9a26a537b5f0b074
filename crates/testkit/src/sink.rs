//! The SMTP sink: a receiving MTA on loopback built on
//! `portcullis-smtp-tls`'s server session, with the behaviours outbound
//! delivery must cope with (no STARTTLS, STARTTLS refused, handshake
//! failure, no ESMTP, TLS with a chosen chain, RCPT/DATA refusals). It
//! records every accepted message with the TLS facts of its session, and
//! every session, so a test can assert what arrived and over what.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use portcullis_smtp_tls::{
    Reply, ServerConfig, ServerConnection, ServerEvent, ServerSession, TlsMode,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::Error;
use crate::pki::Leaf;
use crate::sink_shim::{self, Intercept};

/// How the sink treats TLS.
#[derive(Debug, Clone, Default)]
pub enum SinkTls {
    /// EHLO does not advertise STARTTLS.
    #[default]
    NotOffered,
    /// STARTTLS is advertised and answered with this reply line
    /// (e.g. `"454 4.7.0 TLS not available due to local problem"`).
    Refused(String),
    /// STARTTLS is advertised and answered `220`, then the connection is
    /// closed instead of a TLS handshake.
    HandshakeFails,
    /// No ESMTP at all: EHLO is refused with `502`, only HELO works (so no
    /// STARTTLS is possible).
    NoEsmtp,
    /// STARTTLS is offered and works with this certificate chain; plaintext
    /// sessions are accepted too.
    Offered(Arc<Leaf>),
    /// As `Offered`, but mail is refused (`530`) until STARTTLS.
    Required(Arc<Leaf>),
}

/// Everything about a sink.
#[derive(Debug, Clone)]
pub struct SinkOptions {
    /// Greeting and EHLO name.
    pub hostname: String,
    /// TLS behaviour.
    pub tls: SinkTls,
    /// Refuse every RCPT with this reply (e.g. `550 5.1.1 No such user`).
    pub rcpt_reply: Option<Reply>,
    /// Refuse every RCPT whose address contains the string, with the reply.
    pub rcpt_rules: Vec<(String, Reply)>,
    /// Refuse every message after its data with this reply.
    pub data_reply: Option<Reply>,
    /// Advertise DSN and record the DSN parameters (RFC 3461) it is sent.
    pub dsn: bool,
    /// The `SIZE` advertised (and enforced); `None`: the session's default.
    pub max_message_size: Option<u64>,
}

impl SinkOptions {
    /// A plaintext sink (`SinkTls::NotOffered`) named `sink.test`.
    pub fn new(tls: SinkTls) -> Self {
        Self {
            hostname: "sink.test".into(),
            tls,
            rcpt_reply: None,
            rcpt_rules: Vec::new(),
            data_reply: None,
            dsn: false,
            max_message_size: None,
        }
    }
}

/// The TLS facts of a session, as the sink saw them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFacts {
    /// e.g. `TLSv1.3`.
    pub protocol: String,
    /// e.g. `TLS_AES_256_GCM_SHA384`.
    pub cipher: String,
    /// The server name the client asked for, if any.
    pub sni: Option<String>,
}

/// One accepted message.
#[derive(Debug, Clone)]
pub struct ReceivedMessage {
    /// The client's address.
    pub peer: SocketAddr,
    /// The name from EHLO/HELO.
    pub helo: Option<String>,
    /// `MAIL FROM` path as sent, e.g. `<a@b.test>` or `<>`.
    pub mail_from: String,
    /// `RCPT TO` paths accepted, e.g. `<c@d.test>`.
    pub rcpt_to: Vec<String>,
    /// The `MAIL FROM` parameters, as they would be written back
    /// (e.g. ` BODY=8BITMIME RET=HDRS ENVID=x`).
    pub mail_params: String,
    /// The `RCPT TO` parameters of each accepted recipient, written back
    /// (e.g. ` NOTIFY=SUCCESS ORCPT=rfc822;a+40b.test`; empty when none).
    pub rcpt_params: Vec<String>,
    /// The message, dot-unstuffed, CRLF line ends.
    pub body: Vec<u8>,
    /// `None` for a cleartext session.
    pub tls: Option<TlsFacts>,
}

impl ReceivedMessage {
    /// The body as text (lossy).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The value of the first header `name` (case-insensitive), unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        let text = self.body_text();
        let mut value: Option<String> = None;
        for line in text.split("\r\n") {
            if line.is_empty() {
                break;
            }
            if let Some(v) = value.as_mut() {
                if line.starts_with([' ', '\t']) {
                    v.push(' ');
                    v.push_str(line.trim());
                    continue;
                }
                return value;
            }
            if let Some((n, v)) = line.split_once(':')
                && n.eq_ignore_ascii_case(name)
            {
                value = Some(v.trim().to_string());
            }
        }
        value
    }
}

/// How one session went.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    /// The client's address.
    pub peer: SocketAddr,
    /// TLS facts once a handshake succeeded.
    pub tls: Option<TlsFacts>,
    /// The TLS session was resumed from an earlier one.
    pub tls_resumed: bool,
    /// The client sent STARTTLS (and got 220, or the configured refusal).
    pub starttls_attempted: bool,
    /// Messages accepted in the session.
    pub messages: usize,
    /// Messages refused after data.
    pub refused_messages: usize,
    /// RCPTs refused.
    pub refused_rcpts: usize,
    /// How it ended (`quit`, `peer closed`, or the error).
    pub end: String,
}

#[derive(Debug, Default)]
struct Records {
    messages: Vec<ReceivedMessage>,
    sessions: Vec<SessionRecord>,
    /// Sessions accepted and not yet ended.
    open: usize,
}

#[derive(Debug)]
struct Shared {
    records: Mutex<Records>,
    /// TLS sessions of every connection, so clients can resume them (each
    /// connection has its own configuration, to record its SNI).
    tls_sessions: Arc<dyn rustls::server::StoresServerSessions>,
    /// Bumped on every change to `records`.
    changed: watch::Sender<u64>,
}

impl Shared {
    fn update(&self, f: impl FnOnce(&mut Records)) {
        f(&mut self.records.lock().unwrap_or_else(PoisonError::into_inner));
        self.changed.send_modify(|n| *n += 1);
    }

    fn read<T>(&self, f: impl FnOnce(&Records) -> T) -> T {
        f(&self.records.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// A running sink; stops when dropped.
#[derive(Debug)]
pub struct Sink {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Sink {
    /// Starts a sink on `127.0.0.1:0`. Must be called inside a tokio runtime.
    pub async fn start(options: SinkOptions) -> Result<Self, Error> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), options).await
    }

    /// Starts a sink on `addr` (a loopback address; port 0 picks one).
    pub async fn start_on(addr: SocketAddr, options: SinkOptions) -> Result<Self, Error> {
        if !addr.ip().is_loopback() {
            return Err(Error::Other(format!(
                "the test sink listens on loopback only, not {addr}"
            )));
        }
        let listener = TcpListener::bind(addr)
            .await
            .map_err(Error::io(format!("binding the sink to {addr}")))?;
        Self::start_with_listener(listener, options)
    }

    /// Starts a sink on an already bound listener.
    pub fn start_with_listener(listener: TcpListener, options: SinkOptions) -> Result<Self, Error> {
        let addr = listener
            .local_addr()
            .map_err(Error::io("reading the sink's address"))?;
        let (changed, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            records: Mutex::new(Records::default()),
            tls_sessions: rustls::server::ServerSessionMemoryCache::new(256),
            changed,
        });
        let options = Arc::new(options);
        let s = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            let mut sessions = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        if let Ok((socket, peer)) = accepted {
                            // Replies are small writes: without NODELAY, Nagle
                            // plus the client's delayed ACK stalls pipelined
                            // transactions by tens of milliseconds.
                            let _ = socket.set_nodelay(true);
                            s.update(|r| r.open += 1);
                            sessions.spawn(session(socket, peer, Arc::clone(&options), Arc::clone(&s)));
                        }
                    }
                    Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
                }
            }
        });
        Ok(Self { addr, shared, task })
    }

    /// Where the sink listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The messages accepted so far.
    pub fn messages(&self) -> Vec<ReceivedMessage> {
        self.shared.read(|r| r.messages.clone())
    }

    /// The sessions finished so far.
    pub fn sessions(&self) -> Vec<SessionRecord> {
        self.shared.read(|r| r.sessions.clone())
    }

    /// Waits until at least `n` messages have been accepted, then returns
    /// all of them.
    pub async fn wait_for_messages(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<ReceivedMessage>, Error> {
        self.wait_until(
            timeout,
            &format!("{n} message(s) at the sink {}", self.addr),
            |r| r.messages.len() >= n,
        )
        .await?;
        Ok(self.messages())
    }

    /// Waits until at least `n` sessions have ended, then returns all of them.
    pub async fn wait_for_sessions(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<SessionRecord>, Error> {
        self.wait_until(
            timeout,
            &format!("{n} session(s) at the sink {}", self.addr),
            |r| r.sessions.len() >= n,
        )
        .await?;
        Ok(self.sessions())
    }

    /// Waits until every session accepted so far has ended (after the
    /// client died, say, so that what it sent is all recorded), then
    /// returns the messages.
    pub async fn wait_idle(&self, timeout: Duration) -> Result<Vec<ReceivedMessage>, Error> {
        self.wait_until(timeout, "every open session to end", |r| r.open == 0)
            .await?;
        Ok(self.messages())
    }

    /// Waits until `done` holds for the messages accepted so far.
    pub async fn wait_until_messages(
        &self,
        timeout: Duration,
        what: &str,
        done: impl Fn(&[ReceivedMessage]) -> bool,
    ) -> Result<Vec<ReceivedMessage>, Error> {
        self.wait_until(timeout, what, |r| done(&r.messages))
            .await?;
        Ok(self.messages())
    }

    async fn wait_until(
        &self,
        timeout: Duration,
        what: &str,
        done: impl Fn(&Records) -> bool,
    ) -> Result<(), Error> {
        let mut rx = self.shared.changed.subscribe();
        let wait = async {
            loop {
                if self.shared.read(&done) {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.map_err(|_| {
            let (m, s) = self.shared.read(|r| (r.messages.len(), r.sessions.len()));
            Error::Timeout(
                timeout,
                format!("{what} (have {m} message(s) from {s} finished session(s))"),
            )
        })
    }
}

/// Records the SNI a client sends, by choosing the certificate itself.
#[derive(Debug)]
struct SniRecorder {
    key: Arc<rustls::sign::CertifiedKey>,
    sni: Arc<Mutex<Option<String>>>,
}

impl rustls::server::ResolvesServerCert for SniRecorder {
    fn resolve(
        &self,
        hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        *self.sni.lock().unwrap_or_else(PoisonError::into_inner) =
            hello.server_name().map(str::to_string);
        Some(Arc::clone(&self.key))
    }
}

fn acceptor(
    leaf: &Leaf,
    sni: &Arc<Mutex<Option<String>>>,
    sessions: &Arc<dyn rustls::server::StoresServerSessions>,
) -> Result<TlsAcceptor, Error> {
    let mut config = rustls::ServerConfig::builder_with_provider(crate::provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniRecorder {
            key: leaf.certified_key()?,
            sni: Arc::clone(sni),
        }));
    config.session_storage = Arc::clone(sessions);
    Ok(TlsAcceptor::from(Arc::new(config)))
}

async fn session(
    socket: TcpStream,
    peer: SocketAddr,
    options: Arc<SinkOptions>,
    shared: Arc<Shared>,
) {
    let mut config = ServerConfig::new(options.hostname.clone());
    config.dsn = options.dsn;
    if let Some(size) = options.max_message_size {
        config.max_message_size = size;
    }
    let sni = Arc::new(Mutex::new(None));
    let mut tls_acceptor = None;
    config.tls = match &options.tls {
        SinkTls::NotOffered | SinkTls::NoEsmtp => TlsMode::Off,
        SinkTls::Refused(_) | SinkTls::HandshakeFails => TlsMode::Preferred,
        SinkTls::Offered(leaf) | SinkTls::Required(leaf) => {
            tls_acceptor = acceptor(leaf, &sni, &shared.tls_sessions).ok();
            if matches!(options.tls, SinkTls::Required(_)) {
                TlsMode::Required
            } else {
                TlsMode::Preferred
            }
        }
    };
    let server = ServerSession::new(config, std::time::Instant::now());
    let record = match &options.tls {
        SinkTls::Refused(reply) => {
            let (io, seen) = sink_shim::spawn(socket, Intercept::StartTls(reply.clone()));
            let mut r = run(
                ServerConnection::new(io, server, None),
                peer,
                &options,
                &shared,
                &sni,
            )
            .await;
            // The shim answered STARTTLS; the session never saw it.
            r.starttls_attempted = seen.load(std::sync::atomic::Ordering::SeqCst);
            r
        }
        SinkTls::NoEsmtp => {
            let (io, _) = sink_shim::spawn(socket, Intercept::Ehlo);
            run(
                ServerConnection::new(io, server, None),
                peer,
                &options,
                &shared,
                &sni,
            )
            .await
        }
        _ => {
            run(
                ServerConnection::new(socket, server, tls_acceptor),
                peer,
                &options,
                &shared,
                &sni,
            )
            .await
        }
    };
    shared.update(|r| {
        r.sessions.push(record);
        r.open = r.open.saturating_sub(1);
    });
}

fn facts(
    conn_tls: Option<&portcullis_smtp_tls::TlsInfo>,
    sni: &Mutex<Option<String>>,
) -> Option<TlsFacts> {
    conn_tls.map(|info| TlsFacts {
        protocol: info.protocol.clone(),
        cipher: info.cipher.clone(),
        sni: sni.lock().unwrap_or_else(PoisonError::into_inner).clone(),
    })
}

async fn run<IO: AsyncRead + AsyncWrite + Unpin>(
    mut conn: ServerConnection<IO>,
    peer: SocketAddr,
    options: &SinkOptions,
    shared: &Shared,
    sni: &Mutex<Option<String>>,
) -> SessionRecord {
    let mut record = SessionRecord {
        peer,
        tls: None,
        tls_resumed: false,
        starttls_attempted: false,
        messages: 0,
        refused_messages: 0,
        refused_rcpts: 0,
        end: String::new(),
    };
    loop {
        let event = conn.next_event().await;
        record.tls = facts(conn.session().tls(), sni);
        record.tls_resumed = conn.tls_resumed();
        if record.tls.is_some() {
            record.starttls_attempted = true;
        }
        let decided = match event {
            Ok(ServerEvent::Mail { .. }) => conn.accept(),
            Ok(ServerEvent::Rcpt { to }) => {
                let address = to.to_string();
                let refusal = options.rcpt_reply.clone().or_else(|| {
                    options
                        .rcpt_rules
                        .iter()
                        .find(|(needle, _)| address.contains(needle.as_str()))
                        .map(|(_, r)| r.clone())
                });
                match refusal {
                    Some(reply) => {
                        record.refused_rcpts += 1;
                        conn.reject(reply)
                    }
                    None => conn.accept(),
                }
            }
            Ok(ServerEvent::Message { envelope, body }) => match &options.data_reply {
                Some(reply) => {
                    record.refused_messages += 1;
                    conn.reject(reply.clone())
                }
                None => {
                    record.messages += 1;
                    let message = ReceivedMessage {
                        peer,
                        helo: conn.session().helo().map(str::to_string),
                        mail_from: envelope.from.to_string(),
                        rcpt_to: envelope.to.iter().map(ToString::to_string).collect(),
                        mail_params: envelope.params.to_string(),
                        rcpt_params: conn
                            .session()
                            .recipient_params()
                            .iter()
                            .map(ToString::to_string)
                            .collect(),
                        body,
                        tls: record.tls.clone(),
                    };
                    // Record before the 250 goes out: a client that saw 250
                    // must find its message here.
                    shared.update(|r| r.messages.push(message));
                    conn.accept()
                }
            },
            Ok(ServerEvent::StartTls) => Ok(()),
            Ok(ServerEvent::InjectionAttempt { .. }) => Ok(()),
            // The session refused a message itself (smuggling, size, 8-bit);
            // nothing reached the sink.
            Ok(ServerEvent::MessageRefused { .. }) => Ok(()),
            // For the log; nothing to decide.
            Ok(ServerEvent::CommandRefused { .. } | ServerEvent::TlsEstablished(_)) => Ok(()),
            Ok(ServerEvent::Closed(end)) => {
                record.end = format!("{:?}", end.reason).to_lowercase();
                return record;
            }
            // The sink asks for whole messages; anything else is a bug to
            // see in the record, never a message accepted.
            Ok(other) => {
                record.end = format!("error: unexpected event {other:?}");
                return record;
            }
            Err(e) => {
                if matches!(options.tls, SinkTls::HandshakeFails) {
                    record.starttls_attempted = true;
                }
                record.end = format!("error: {e}");
                return record;
            }
        };
        if let Err(e) = decided {
            record.end = format!("error: {e}");
            return record;
        }
    }
}
