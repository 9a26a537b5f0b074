//! What a server session tells its embedder: the events to act on or
//! decide (MAIL, RCPT, messages whole or streamed, STARTTLS, attacks) and,
//! at the end, why and how the session ended, for the mail log.

use crate::address::{ForwardPath, ReversePath};
use crate::data::MessageRefusal;
use crate::envelope::{Envelope, MailParams};
use crate::reply::Reply;
#[cfg(doc)]
use crate::server::{MAX_PENDING_INPUT, ServerSession};
use crate::tls::TlsInfo;

/// Something the embedder must know or decide.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// `MAIL FROM` passed the syntax and session checks. Decide with
    /// `accept` or `reject`; no further input is processed until then.
    Mail {
        /// The sender.
        from: ReversePath,
        /// Its parameters.
        params: MailParams,
    },
    /// `RCPT TO` passed the checks. Decide with `accept` or `reject`;
    /// [`ServerSession::envelope`] has the sender and earlier recipients.
    /// Its parameters (DSN) join the envelope when accepted.
    Rcpt {
        /// The recipient.
        to: ForwardPath,
    },
    /// A complete message (whole delivery, the default). `accept` once it
    /// is stored durably (the client gets `250` only then), or `reject`.
    Message {
        /// Sender, parameters and accepted recipients.
        envelope: Envelope,
        /// The message, dot-unstuffed, lines ending in CRLF.
        body: Vec<u8>,
    },
    /// Streamed delivery: `DATA` was accepted and `354` queued, or the first
    /// BDAT chunk of a message arrives. The text
    /// follows in [`ServerEvent::MessageData`]; the message ends with
    /// [`ServerEvent::MessageEnd`], [`ServerEvent::MessageRefused`] or, if
    /// the connection ends first, [`ServerEvent::Closed`] (discard it then).
    MessageStart {
        /// Sender, parameters and accepted recipients.
        envelope: Envelope,
    },
    /// Streamed delivery: the next piece of message text, dot-unstuffed,
    /// whole lines ending in CRLF. Nothing is accepted yet: keep it
    /// provisional until `MessageEnd` and your `accept`.
    MessageData(Vec<u8>),
    /// Streamed delivery: the text is complete and passed every check.
    /// `accept` once it is stored durably, or `reject`;
    /// [`ServerSession::envelope`] still has the envelope.
    MessageEnd,
    /// The session refused the message itself after its final dot; the
    /// reply ([`MessageRefusal::reply`]) is queued. With streamed delivery,
    /// discard what `MessageData` handed over. Log it: a bare line ending is
    /// a possible SMTP smuggling attempt.
    MessageRefused {
        /// Why.
        reason: MessageRefusal,
    },
    /// Streamed delivery: the client abandoned a message sent in BDAT
    /// chunks before its last chunk (RSET, a new EHLO, DATA, a refused
    /// chunk). Discard what `MessageData` handed over; nothing was accepted.
    MessageAbandoned,
    /// The session refused a command by itself (syntax, sequence, TLS
    /// required, a limit); the reply is queued. Nothing to decide: log it.
    CommandRefused {
        /// The command as the client sent it (shortened, control
        /// characters shown as `?`).
        command: String,
        /// The reply it got.
        reply: Reply,
    },
    /// The TLS handshake after STARTTLS completed (reported at once, before
    /// the client's next command).
    TlsEstablished(TlsInfo),
    /// The `220` to STARTTLS has been queued: write out
    /// [`ServerSession::poll_transmit`], run the TLS handshake on the raw
    /// connection, then call [`ServerSession::handle_tls_established`]. Do
    /// not pass any more plaintext to the session.
    StartTls,
    /// The client sent plaintext behind STARTTLS (CVE-2011-0411). The bytes
    /// were discarded; log this as an attack.
    InjectionAttempt {
        /// How many bytes were thrown away.
        discarded: usize,
    },
    /// The session is over: flush output and close the connection.
    Closed(SessionEnd),
}

/// Why and how a session ended, for the mail log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEnd {
    /// Why it ended.
    pub reason: CloseReason,
    /// Messages accepted during the session.
    pub messages_accepted: u32,
    /// Commands refused with 530 because TLS was required and not active.
    /// Non-zero with no message accepted means "the client never started
    /// TLS", which the mail log must say (SPEC §1).
    pub refused_without_tls: u32,
    /// Whether TLS was active at the end.
    pub tls_active: bool,
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The client sent QUIT.
    Quit,
    /// The client closed the connection without QUIT.
    PeerClosed,
    /// Too many errors (`421 4.7.0`).
    TooManyErrors,
    /// More than [`MAX_PENDING_INPUT`] bytes sent while a decision was
    /// pending (`421 4.7.0`).
    TooMuchPendingInput,
    /// No input for the idle timeout (`421 4.4.2`).
    Timeout,
    /// The TLS handshake after STARTTLS did not finish in time (closed
    /// without a reply).
    TlsHandshakeTimeout,
    /// A DATA or BDAT transfer took longer than its deadline (`421 4.4.2`).
    DataTimeout,
    /// The session reached its time limit (`421 4.4.2`).
    SessionTimeout,
    /// A BDAT command whose chunk size could not be read: the end of the
    /// chunk cannot be found, so the session cannot go on (`421 4.5.4`).
    UnframedChunk,
}
