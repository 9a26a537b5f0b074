//! The crate's one error type. Variants group by who is at fault: the peer
//! misbehaved, the peer could not do what we need, or the embedder called the
//! session out of order. Errors are sticky: once a session failed, every
//! later call returns the same error. [`Error::reply`] gives the reply a
//! server sends before closing, where one applies.

use crate::reply::{EnhancedCode, Reply, ReplyError};
use crate::tls::TlsOutcome;

/// Everything that can go wrong in a session or the driver.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // --- the peer misbehaved ---
    /// The server sent bytes that are not an SMTP reply.
    #[error("malformed reply from the SMTP server: {0}")]
    MalformedReply(#[from] ReplyError),
    /// The server sent a reply when none was expected.
    #[error("the SMTP server sent a reply nobody asked for: {}", .0.to_string().trim_end())]
    UnsolicitedReply(Reply),
    /// The peer closed the connection in the middle of the conversation.
    #[error("the peer closed the connection while {0}")]
    ConnectionClosed(&'static str),
    /// The peer did not answer in time.
    #[error("timed out while {0}")]
    Timeout(&'static str),

    // --- the peer cannot do what we need ---
    /// The server refused the session in its greeting.
    #[error("the SMTP server refused the session: {}", .0.to_string().trim_end())]
    GreetingRefused(Reply),
    /// Both EHLO and HELO were refused.
    #[error("the SMTP server refused HELO: {}", .0.to_string().trim_end())]
    HeloRefused(Reply),
    /// STARTTLS cannot be attempted, or did not succeed.
    #[error("TLS is not available: {0}")]
    TlsUnavailable(TlsOutcome),
    /// The caller required TLS and did not get it; nothing was sent in cleartext.
    #[error("TLS is required but {0}; the message was not sent")]
    TlsRequired(TlsOutcome),
    /// The TLS handshake failed.
    #[error("TLS handshake failed: {0}")]
    Handshake(String),
    /// The message needs an extension the server did not advertise.
    #[error("the SMTP server does not advertise {0}, which this message needs")]
    ExtensionNotOffered(&'static str),
    /// The message is larger than the server's advertised `SIZE` (RFC 1870);
    /// nothing was sent.
    #[error("the message is {size} octets but the SMTP server accepts at most {limit} (its SIZE)")]
    MessageTooLarge {
        /// The message's size.
        size: u64,
        /// The server's limit.
        limit: u64,
    },

    // --- the embedder called out of order ---
    /// The session has ended.
    #[error("the SMTP session is closed")]
    Closed,
    /// `accept`/`reject` without a pending MAIL, RCPT or message.
    #[error("no MAIL, RCPT or message is waiting for a decision")]
    NoDecisionPending,
    /// Input or a new command while a decision is still pending.
    #[error("a MAIL, RCPT or message is waiting for accept() or reject()")]
    DecisionPending,
    /// A command that the session's state does not allow now.
    #[error("cannot {0} now: {1}")]
    InvalidState(&'static str, &'static str),
    /// A reply given to `reject` that is not 4xx/5xx, or to `accept_with` that is not 2xx.
    #[error("invalid decision reply: {0}")]
    InvalidDecision(String),

    // --- the transport (driver only) ---
    /// A socket error.
    #[error("network I/O error: {0}")]
    Io(String),
}

impl Error {
    /// The reply a server sends for this error before it closes, if any.
    pub fn reply(&self) -> Option<Reply> {
        match self {
            Self::Timeout(_) => Some(Reply::fixed(
                421,
                Some(EnhancedCode::fixed(4, 4, 2)),
                "Timeout exceeded, closing connection",
            )),
            Self::Handshake(_) | Self::Io(_) | Self::ConnectionClosed(_) => None,
            _ => Some(Reply::fixed(
                421,
                Some(EnhancedCode::fixed(4, 3, 0)),
                "Local error in processing, closing connection",
            )),
        }
    }
}

#[cfg(feature = "tokio")]
impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Self::Io(io_text(&e))
    }
}

/// An I/O or TLS error in an operator's words: no library documentation
/// URLs, and a TLS session cut short said as such.
#[cfg(feature = "tokio")]
pub(crate) fn io_text(e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        return "the peer closed the connection without ending the TLS session (no close_notify)"
            .into();
    }
    let text = e.to_string();
    match text.find(": https://") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}
