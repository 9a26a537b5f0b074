//! The tokio + tokio-rustls driver (feature `tokio`): moves bytes between a
//! socket and a sans-IO session, runs the TLS handshake when the session asks
//! for it, and turns `poll_timeout` into a read deadline. Every wait has a
//! deadline: reads and the server's handshake the session's, the client's
//! handshake its configured one, and each write a per-write deadline (a peer
//! that stops reading cannot hold a connection open). All protocol
//! decisions stay in the sessions; this file only does I/O.

use std::time::{Duration, Instant};

use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::client::{ClientEvent, ClientSession};
use crate::error::{Error, io_text};
use crate::reply::Reply;
use crate::server::{ServerEvent, ServerSession};
use crate::tls::TlsInfo;

/// The connection before and after STARTTLS.
enum Stream<IO, T> {
    Plain(IO),
    Tls(Box<T>),
    Broken,
}

impl<IO, T> Stream<IO, T>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        Ok(match self {
            Self::Plain(io) => io.read(buf).await?,
            Self::Tls(io) => io.read(buf).await?,
            Self::Broken => return Err(Error::Closed),
        })
    }

    async fn write_all(&mut self, bytes: &[u8]) -> Result<(), Error> {
        match self {
            Self::Plain(io) => io.write_all(bytes).await?,
            Self::Tls(io) => io.write_all(bytes).await?,
            Self::Broken => return Err(Error::Closed),
        }
        Ok(())
    }

    /// Writes `bytes` in pieces, each of which must be taken by the peer
    /// within `per_write` (RFC 5321 §4.5.3.2.5: 3 minutes per data block).
    /// A peer that stops reading fails the connection instead of holding it.
    async fn write_within(&mut self, bytes: &[u8], per_write: Duration) -> Result<(), Error> {
        for piece in bytes.chunks(WRITE_PIECE) {
            if tokio::time::timeout(per_write, self.write_all(piece))
                .await
                .is_err()
            {
                *self = Self::Broken;
                return Err(Error::Timeout("sending to the peer, which stopped reading"));
            }
        }
        Ok(())
    }

    async fn shutdown(&mut self) {
        let closing = async {
            match self {
                Self::Plain(io) => io.shutdown().await,
                Self::Tls(io) => io.shutdown().await,
                Self::Broken => Ok(()),
            }
        };
        let _ = tokio::time::timeout(CLOSING, closing).await;
    }
}

/// The largest piece handed to one write with its own deadline.
const WRITE_PIECE: usize = 64 * 1024;

/// How long a closing connection may take to flush its last bytes.
const CLOSING: Duration = Duration::from_secs(10);

/// Reads once, honouring the session's deadline. `Ok(None)` means the deadline passed.
async fn read_until<IO, T>(
    stream: &mut Stream<IO, T>,
    buf: &mut [u8],
    deadline: Option<Instant>,
) -> Result<Option<usize>, Error>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    match deadline {
        Some(d) => match tokio::time::timeout_at(d.into(), stream.read(buf)).await {
            Ok(n) => n.map(Some),
            Err(_) => Ok(None),
        },
        None => stream.read(buf).await.map(Some),
    }
}

/// `TLSv1.3`, as Postfix and OpenSSL write it (rustls says `TLSv1_3`).
fn protocol_name(v: rustls::ProtocolVersion) -> String {
    match v {
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_owned(),
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_owned(),
        other => format!("{other:?}").replace('_', "."),
    }
}

/// The IANA name of a cipher suite (`TLS_AES_256_GCM_SHA384`); rustls
/// names the TLS 1.3 suites `TLS13_…` and the TLS 1.2 ones as IANA does.
fn cipher_name(s: rustls::CipherSuite) -> String {
    let name = format!("{s:?}");
    match name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => name,
    }
}

fn tls_info(conn: &rustls::CommonState) -> TlsInfo {
    TlsInfo {
        protocol: conn
            .protocol_version()
            .map(protocol_name)
            .unwrap_or_default(),
        cipher: conn
            .negotiated_cipher_suite()
            .map(|s| cipher_name(s.suite()))
            .unwrap_or_default(),
        peer_certificates: conn
            .peer_certificates()
            .map(<[_]>::to_vec)
            .unwrap_or_default(),
    }
}

/// A [`ServerSession`] on a connection. Call [`ServerConnection::next_event`]
/// in a loop; answer `Mail`, `Rcpt` and `Message` (or, streamed,
/// `MessageEnd`) with `accept`/`reject`. Streamed text is read from the
/// socket only as fast as the loop asks for the next event, so a slow disk
/// slows the client down instead of filling memory.
pub struct ServerConnection<IO> {
    session: ServerSession,
    stream: Stream<IO, tokio_rustls::server::TlsStream<IO>>,
    acceptor: Option<TlsAcceptor>,
    buf: Vec<u8>,
    resumed: bool,
}

impl<IO> std::fmt::Debug for ServerConnection<IO> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConnection")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> ServerConnection<IO> {
    /// `acceptor` is needed when the session's TLS mode is not `Off`.
    pub fn new(io: IO, session: ServerSession, acceptor: Option<TlsAcceptor>) -> Self {
        Self {
            session,
            stream: Stream::Plain(io),
            acceptor,
            buf: vec![0; 16 * 1024],
            resumed: false,
        }
    }

    /// The session, for getters.
    pub fn session(&self) -> &ServerSession {
        &self.session
    }

    /// Whether the TLS session was resumed (no certificate was sent).
    pub fn tls_resumed(&self) -> bool {
        self.resumed
    }

    /// Accepts the pending MAIL, RCPT or message.
    pub fn accept(&mut self) -> Result<(), Error> {
        self.session.accept()
    }

    /// Accepts with a reply of your own.
    pub fn accept_with(&mut self, reply: Reply) -> Result<(), Error> {
        self.session.accept_with(reply)
    }

    /// Refuses the pending MAIL, RCPT or message.
    pub fn reject(&mut self, reply: Reply) -> Result<(), Error> {
        self.session.reject(reply)
    }

    /// Runs the connection until the next event the embedder must see.
    /// STARTTLS is handled here. Returns `Closed` once, then errors.
    pub async fn next_event(&mut self) -> Result<ServerEvent, Error> {
        loop {
            if let Some(out) = self.session.poll_transmit() {
                let per_write = self.session.config().idle_timeout;
                self.stream.write_within(&out, per_write).await?;
            }
            match self.session.poll_event() {
                Some(ServerEvent::StartTls) => self.upgrade().await?,
                Some(ev @ ServerEvent::Closed(_)) => {
                    self.stream.shutdown().await;
                    return Ok(ev);
                }
                Some(ev) => return Ok(ev),
                None if self.session.is_closed() => return Err(Error::Closed),
                None if self.session.is_decision_pending() => return Err(Error::DecisionPending),
                None => {
                    match read_until(&mut self.stream, &mut self.buf, self.session.poll_timeout())
                        .await?
                    {
                        None => self.session.handle_timeout(Instant::now()),
                        Some(0) => self.session.handle_eof(),
                        Some(n) => self
                            .session
                            .handle_input(Instant::now(), self.buf.get(..n).unwrap_or_default())?,
                    }
                }
            }
        }
    }

    /// Ends the session from this side at once, whatever state it is in:
    /// writes what the session still had to send, then `reply` (such as
    /// `421 4.3.2` when the server shuts down, RFC 5321 §3.8), and closes the
    /// connection. Later calls report [`Error::Closed`].
    pub async fn close_with(&mut self, reply: &Reply) {
        if let Some(out) = self.session.poll_transmit() {
            let _ = self.stream.write_all(&out).await;
        }
        let _ = self.stream.write_all(&reply.encode()).await;
        self.stream.shutdown().await;
        self.stream = Stream::Broken;
    }

    async fn upgrade(&mut self) -> Result<(), Error> {
        let acceptor = self.acceptor.clone().ok_or_else(|| {
            Error::Handshake("STARTTLS was offered but no TLS certificate is configured".into())
        })?;
        let Stream::Plain(io) = std::mem::replace(&mut self.stream, Stream::Broken) else {
            return Err(Error::InvalidState("start TLS", "TLS is already active"));
        };
        // A client that stops in the middle of the handshake must not hold
        // the connection (and a place of the listener) beyond the deadline.
        let accept = acceptor.accept(io);
        let accepted = match self.session.poll_timeout() {
            Some(deadline) => match tokio::time::timeout_at(deadline.into(), accept).await {
                Ok(accepted) => accepted,
                Err(_) => {
                    self.session.handle_timeout(Instant::now().max(deadline));
                    return Ok(());
                }
            },
            None => accept.await,
        };
        let tls = accepted.map_err(|e| Error::Handshake(io_text(&e)))?;
        self.resumed = tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
        let info = tls_info(tls.get_ref().1);
        self.stream = Stream::Tls(Box::new(tls));
        self.session.handle_tls_established(Instant::now(), info)
    }
}

/// A [`ClientSession`] on a connection; STARTTLS handshakes happen inside
/// [`ClientConnection::next_event`].
pub struct ClientConnection<IO> {
    session: ClientSession,
    stream: Stream<IO, tokio_rustls::client::TlsStream<IO>>,
    connector: TlsConnector,
    server_name: ServerName<'static>,
    buf: Vec<u8>,
    injected_bytes: usize,
    resumed: bool,
}

impl<IO> std::fmt::Debug for ClientConnection<IO> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConnection")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> ClientConnection<IO> {
    /// `server_name` is what the certificate verifier in `connector` checks.
    pub fn new(
        io: IO,
        session: ClientSession,
        connector: TlsConnector,
        server_name: ServerName<'static>,
    ) -> Self {
        Self {
            session,
            stream: Stream::Plain(io),
            connector,
            server_name,
            buf: vec![0; 16 * 1024],
            injected_bytes: 0,
            resumed: false,
        }
    }

    /// Whether the TLS session was resumed from an earlier one (the server
    /// sent no certificate, so no certificate was verified this time).
    pub fn tls_resumed(&self) -> bool {
        self.resumed
    }

    /// Bytes of plaintext the server sent behind its `220` to STARTTLS,
    /// discarded (each time also a [`ClientEvent::InjectionAttempt`]).
    pub fn injected_bytes(&self) -> usize {
        self.injected_bytes
    }

    /// The session: call its commands when `next_event` says it is idle.
    pub fn session_mut(&mut self) -> &mut ClientSession {
        &mut self.session
    }

    /// Runs the connection until the next event the caller must see.
    pub async fn next_event(&mut self) -> Result<ClientEvent, Error> {
        loop {
            if let Some(out) = self.session.poll_transmit() {
                let per_write = self.session.config().send_timeout;
                self.stream.write_within(&out, per_write).await?;
            }
            match self.session.poll_event() {
                Some(ClientEvent::StartTls) => self.upgrade().await,
                Some(ev @ ClientEvent::InjectionAttempt { discarded }) => {
                    self.injected_bytes = self.injected_bytes.saturating_add(discarded);
                    return Ok(ev);
                }
                Some(ev @ ClientEvent::Closed { .. }) => {
                    self.stream.shutdown().await;
                    return Ok(ev);
                }
                Some(ev) => return Ok(ev),
                None if self.session.is_closed() => return Err(Error::Closed),
                None if self.session.is_idle() => {
                    return Err(Error::InvalidState(
                        "wait for the server",
                        "the session is idle; send a command",
                    ));
                }
                None => {
                    match read_until(&mut self.stream, &mut self.buf, self.session.poll_timeout())
                        .await?
                    {
                        None => self.session.handle_timeout(Instant::now()),
                        Some(0) => self.session.handle_eof(),
                        Some(n) => self
                            .session
                            .handle_input(Instant::now(), self.buf.get(..n).unwrap_or_default())?,
                    }
                }
            }
        }
    }

    async fn upgrade(&mut self) {
        let Stream::Plain(io) = std::mem::replace(&mut self.stream, Stream::Broken) else {
            return self.session.handle_tls_failed("TLS is already active");
        };
        if let Some(why) = self.session.tls_records_before_handshake() {
            // The server already spoke TLS (an alert, typically) before our
            // ClientHello: the handshake cannot succeed.
            return self.session.handle_tls_failed(why);
        }
        let limit = self.session.config().tls_handshake_timeout;
        let connect = self.connector.connect(self.server_name.clone(), io);
        let Ok(connected) = tokio::time::timeout(limit, connect).await else {
            let within = if limit.subsec_millis() == 0 {
                format!("{} s", limit.as_secs())
            } else {
                format!("{} ms", limit.as_millis())
            };
            return self.session.handle_tls_failed(format!(
                "the server did not complete the TLS handshake within {within}"
            ));
        };
        match connected {
            Ok(tls) => {
                self.resumed =
                    tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
                let info = tls_info(tls.get_ref().1);
                self.stream = Stream::Tls(Box::new(tls));
                if let Err(e) = self.session.handle_tls_established(Instant::now(), info) {
                    self.session.handle_tls_failed(e.to_string());
                }
            }
            Err(e) => self.session.handle_tls_failed(io_text(&e)),
        }
    }
}
