//! The client's way to a connection ready for mail (feature `tokio`):
//! greeting, EHLO, STARTTLS when the caller asks for it, EHLO again, and the
//! REQUIRETLS check — with the caller's policy consulted at every TLS
//! shortfall, so the decision to go on in cleartext is always the caller's
//! ([`establish`]). [`deliver`] is the whole client job in one call on top
//! of it, for embedders with a simple none / preferred / required policy.

use tokio::io::{AsyncRead, AsyncWrite};

use crate::client::{Capabilities, ClientEvent, MessageResult};
use crate::driver::ClientConnection;
use crate::envelope::{Envelope, RcptParams};
use crate::error::Error;
use crate::reply::Reply;
use crate::tls::TlsOutcome;

/// What the caller wants of TLS on one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartTlsPlan {
    /// Send STARTTLS (when the server offers it; when it does not, that is a
    /// [`Shortfall`] for the caller's policy).
    pub starttls: bool,
    /// Once TLS is up, the server must advertise REQUIRETLS (RFC 8689).
    pub require_requiretls: bool,
}

/// A way the server fell short of the plan. The caller's policy decides
/// whether the conversation goes on ([`OnShortfall`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Shortfall {
    /// The server does not speak ESMTP, or did not advertise STARTTLS; the
    /// outcome says which.
    NotOffered(TlsOutcome),
    /// The server answered STARTTLS with this reply.
    Refused(Reply),
    /// The handshake failed after `220`, or the TLS session failed before
    /// the EHLO that follows it (with TLS 1.3 a server's verdict on the
    /// handshake, e.g. a demanded client certificate, arrives only then).
    /// The connection is dead: going on needs a new connection.
    HandshakeFailed(String),
    /// TLS is up but the server does not advertise REQUIRETLS.
    RequireTlsNotOffered,
}

impl std::fmt::Display for Shortfall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Shortfall::NotOffered(outcome) => outcome.fmt(f),
            Shortfall::Refused(r) => write!(
                f,
                "the server answered STARTTLS with {}",
                r.to_string().trim_end()
            ),
            Shortfall::HandshakeFailed(e) => write!(f, "the TLS handshake failed: {e}"),
            Shortfall::RequireTlsNotOffered => {
                f.write_str("the server does not advertise REQUIRETLS after STARTTLS")
            }
        }
    }
}

/// The caller's answer to a [`Shortfall`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnShortfall {
    /// Go on as things are (in cleartext, or encrypted without REQUIRETLS).
    Continue,
    /// Send nothing more: QUIT and report the shortfall.
    Quit,
}

/// A connection ready for `send_message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    /// How STARTTLS went.
    pub tls: TlsOutcome,
    /// The capabilities of the last EHLO (after TLS, when TLS is up).
    pub capabilities: Capabilities,
}

/// Why [`establish`] did not reach [`Ready`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EstablishError {
    /// The caller's policy said [`OnShortfall::Quit`], or the handshake
    /// failed. Nothing was sent; the connection is closed.
    #[error("{0}")]
    Shortfall(Shortfall),
    /// The connection or the SMTP session failed (greeting refused, timeout,
    /// reset, …).
    #[error("{0}")]
    Connection(Error),
}

/// Runs greeting, EHLO and STARTTLS as `plan` says, asking `on_shortfall`
/// at every point where the server falls short of it. Plaintext the server
/// sends behind its `220` to STARTTLS is discarded and counted in
/// [`ClientConnection::injected_bytes`].
pub async fn establish<IO: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut ClientConnection<IO>,
    plan: StartTlsPlan,
    mut on_shortfall: impl FnMut(&Shortfall) -> OnShortfall,
) -> Result<Ready, EstablishError> {
    let mut tls_tried = !plan.starttls;
    loop {
        let event = match conn.next_event().await {
            Ok(ev) => ev,
            Err(e) => return Err(failed(conn, e)),
        };
        match event {
            ClientEvent::Ready(capabilities) => {
                if !tls_tried {
                    tls_tried = true;
                    match conn.session_mut().start_tls() {
                        Ok(()) => continue,
                        Err(Error::TlsUnavailable(_)) => {}
                        Err(e) => return Err(EstablishError::Connection(e)),
                    }
                }
                let tls = conn.session_mut().tls_outcome();
                let shortfall = match &tls {
                    TlsOutcome::Established(_)
                        if plan.require_requiretls && !capabilities.requiretls =>
                    {
                        Some(Shortfall::RequireTlsNotOffered)
                    }
                    TlsOutcome::Established(_) | TlsOutcome::NotAttempted => None,
                    TlsOutcome::StartTlsRefused(reply) => Some(Shortfall::Refused(reply.clone())),
                    TlsOutcome::HandshakeFailed(e) => Some(Shortfall::HandshakeFailed(e.clone())),
                    other => Some(Shortfall::NotOffered(other.clone())),
                };
                if let Some(s) = shortfall
                    && on_shortfall(&s) == OnShortfall::Quit
                {
                    quit(conn).await;
                    return Err(EstablishError::Shortfall(s));
                }
                return Ok(Ready { tls, capabilities });
            }
            ClientEvent::InjectionAttempt { .. }
            | ClientEvent::StartTls
            | ClientEvent::MessageDone(_) => {}
            ClientEvent::Closed { error } => {
                let error = error.unwrap_or(Error::ConnectionClosed("opening the session"));
                return Err(match error {
                    Error::Handshake(e) => {
                        let s = Shortfall::HandshakeFailed(e);
                        // The connection is gone; the caller only learns why.
                        let _ = on_shortfall(&s);
                        EstablishError::Shortfall(s)
                    }
                    e => failed(conn, e),
                });
            }
        }
    }
}

/// A failure while opening. Once TLS is up, `establish` returns at the
/// first post-TLS EHLO; a failure before that is the TLS session failing
/// as it starts, so it is a handshake failure.
fn failed<IO: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut ClientConnection<IO>,
    e: Error,
) -> EstablishError {
    if conn.session_mut().tls_outcome().is_established() {
        EstablishError::Shortfall(Shortfall::HandshakeFailed(format!(
            "the TLS session failed as it started: {e}"
        )))
    } else {
        EstablishError::Connection(e)
    }
}

/// Says QUIT and waits for the server to close (or the session to fail).
pub async fn quit<IO: AsyncRead + AsyncWrite + Unpin>(conn: &mut ClientConnection<IO>) {
    if conn.session_mut().quit().is_ok() {
        while let Ok(ev) = conn.next_event().await {
            if matches!(ev, ClientEvent::Closed { .. }) {
                break;
            }
        }
    }
}

/// Sends one message on a [`Ready`] connection and waits for its result.
pub async fn send<IO: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut ClientConnection<IO>,
    envelope: Envelope,
    body: &[u8],
) -> Result<MessageResult, Error> {
    send_with(conn, envelope, Vec::new(), body).await
}

/// [`send`] with `RCPT TO` parameters (DSN), one per recipient.
pub async fn send_with<IO: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut ClientConnection<IO>,
    envelope: Envelope,
    rcpt_params: Vec<RcptParams>,
    body: &[u8],
) -> Result<MessageResult, Error> {
    conn.session_mut()
        .send_message_with(envelope, rcpt_params, body)?;
    loop {
        match conn.next_event().await? {
            ClientEvent::MessageDone(result) => return Ok(result),
            ClientEvent::Closed { error } => {
                return Err(error.unwrap_or(Error::ConnectionClosed("sending a message")));
            }
            _ => {}
        }
    }
}

/// What the caller demands of TLS for one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsRequirement {
    /// Never send STARTTLS.
    None,
    /// Use STARTTLS when offered; continue in cleartext if it is not offered
    /// or refused. A failed handshake is still an error: retrying in
    /// cleartext needs a new connection, and that is the caller's decision.
    Preferred,
    /// Without TLS, send nothing: QUIT and return [`Error::TlsRequired`].
    Required,
}

impl std::str::FromStr for TlsRequirement {
    type Err = String;

    /// `none`, `preferred` or `required`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Self::None),
            "preferred" => Ok(Self::Preferred),
            "required" => Ok(Self::Required),
            other => Err(format!(
                "unknown TLS requirement {other:?}: expected none, preferred or required"
            )),
        }
    }
}

/// The result of [`deliver`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// How STARTTLS went.
    pub tls: TlsOutcome,
    /// Per-recipient results.
    pub result: MessageResult,
    /// Bytes of plaintext the server sent behind its 220 to STARTTLS.
    pub injected_bytes: usize,
}

/// Sends one message over `conn` (a connected socket) and QUITs: the whole
/// client job in one call.
pub async fn deliver<IO: AsyncRead + AsyncWrite + Unpin>(
    mut conn: ClientConnection<IO>,
    requirement: TlsRequirement,
    envelope: Envelope,
    body: &[u8],
) -> Result<Delivery, Error> {
    let plan = StartTlsPlan {
        starttls: requirement != TlsRequirement::None,
        require_requiretls: false,
    };
    let on_shortfall = |_: &Shortfall| match requirement {
        TlsRequirement::Required => OnShortfall::Quit,
        TlsRequirement::None | TlsRequirement::Preferred => OnShortfall::Continue,
    };
    let ready = match establish(&mut conn, plan, on_shortfall).await {
        Ok(ready) => ready,
        Err(EstablishError::Shortfall(Shortfall::HandshakeFailed(e)))
            if requirement != TlsRequirement::Required =>
        {
            return Err(Error::Handshake(e));
        }
        Err(EstablishError::Shortfall(s)) => {
            return Err(Error::TlsRequired(match s {
                Shortfall::NotOffered(outcome) => outcome,
                Shortfall::Refused(reply) => TlsOutcome::StartTlsRefused(reply),
                Shortfall::HandshakeFailed(e) => TlsOutcome::HandshakeFailed(e),
                Shortfall::RequireTlsNotOffered => conn.session_mut().tls_outcome(),
            }));
        }
        Err(EstablishError::Connection(e)) => return Err(e),
    };
    let result = send(&mut conn, envelope, body).await?;
    quit(&mut conn).await;
    Ok(Delivery {
        tls: ready.tls,
        result,
        injected_bytes: conn.injected_bytes(),
    })
}
