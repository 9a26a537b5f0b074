//! The tokio + tokio-rustls driver (feature `tokio`): moves bytes between a
//! socket and a sans-IO session, runs the TLS handshake when the session asks
//! for it, and turns `poll_timeout` into a read deadline. All protocol
//! decisions stay in the sessions; this file only does I/O.

use std::time::Instant;

use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::client::{ClientEvent, ClientSession};
use crate::error::Error;
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

    async fn shutdown(&mut self) {
        let _ = match self {
            Self::Plain(io) => io.shutdown().await,
            Self::Tls(io) => io.shutdown().await,
            Self::Broken => Ok(()),
        };
    }
}

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

fn tls_info(conn: &rustls::CommonState) -> TlsInfo {
    TlsInfo {
        protocol: conn
            .protocol_version()
            .map(|v| format!("{v:?}"))
            .unwrap_or_default(),
        cipher: conn
            .negotiated_cipher_suite()
            .map(|s| format!("{:?}", s.suite()))
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
        }
    }

    /// The session, for getters.
    pub fn session(&self) -> &ServerSession {
        &self.session
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
                self.stream.write_all(&out).await?;
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
        let tls = acceptor
            .accept(io)
            .await
            .map_err(|e| Error::Handshake(e.to_string()))?;
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
        }
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
                self.stream.write_all(&out).await?;
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
        match self.connector.connect(self.server_name.clone(), io).await {
            Ok(tls) => {
                let info = tls_info(tls.get_ref().1);
                self.stream = Stream::Tls(Box::new(tls));
                if let Err(e) = self.session.handle_tls_established(Instant::now(), info) {
                    self.session.handle_tls_failed(e.to_string());
                }
            }
            Err(e) => self.session.handle_tls_failed(e.to_string()),
        }
    }
}
