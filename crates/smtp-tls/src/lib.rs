//! # portcullis-smtp-tls
//!
//! SMTP with STARTTLS for mail transfer agents: a codec for commands and
//! replies, and two state machines, [`ServerSession`] (receiving) and
//! [`ClientSession`] (sending), that get STARTTLS right: the TLS mode of a
//! listener, refusal before TLS, discarding of plaintext injected around the
//! upgrade, and a typed [`TlsOutcome`] for delivery code to act on.
//!
//! **No I/O, no clock.** The sessions never touch a socket or read the time:
//! bytes come in through `handle_input(now, bytes)`, go out through
//! `poll_transmit()`, decisions and requests come out of `poll_event()`, and
//! `now` is passed in (`poll_timeout` / `handle_timeout` for deadlines). So
//! every test runs byte by byte without a network, and the parsers can be
//! fuzzed. A thin tokio + tokio-rustls driver (`ServerConnection`,
//! `ClientConnection`) sits behind the `tokio` feature, with the client's
//! way to a ready connection, `establish` (greeting, EHLO, STARTTLS, EHLO,
//! REQUIRETLS check, the caller's policy asked at every TLS shortfall), and
//! `deliver`, the whole client job in one call.
//!
//! ## Byte flow and the STARTTLS boundary
//!
//! ```text
//!  socket ──read──▶ handle_input(now, bytes) ─▶ session ─▶ poll_event() ──▶ embedder
//!  socket ◀─write── poll_transmit() ◀──────────  │  ◀── accept() / reject(reply)
//!                                                │
//!  plaintext   220 greeting · EHLO · STARTTLS ─▶ "220 2.0.0 Ready to start TLS"
//!  ════════════ boundary ═══════════════════════════════════════════════════════
//!              bytes behind STARTTLS (server) or behind the 220 (client) are
//!              discarded and reported as InjectionAttempt; the driver runs the
//!              handshake and calls handle_tls_established(now, TlsInfo)
//!  TLS         state reset to before EHLO · EHLO again · STARTTLS no longer
//!              offered · REQUIRETLS offered · MAIL / RCPT / DATA
//! ```
//!
//! The server decides nothing about senders and recipients by itself: each
//! `MAIL`, `RCPT` and complete message is a [`ServerEvent`] the embedder
//! answers with [`ServerSession::accept`] or [`ServerSession::reject`]; this
//! is where a policy engine plugs in. Calls out of order return an
//! [`Error`]; once a session has failed, every later call returns the same
//! error.
//!
//! Message text reaches the embedder whole ([`ServerEvent::Message`], the
//! default) or streamed as it arrives ([`ServerConfig::stream_message_data`]:
//! [`ServerEvent::MessageStart`], [`ServerEvent::MessageData`] pieces, then
//! [`ServerEvent::MessageEnd`] or [`ServerEvent::MessageRefused`]), so an
//! MTA can write a message to disk without holding it in memory. Either way
//! it is dot-unstuffed, bare CR or LF is refused with `554 5.6.0` after the
//! real end of DATA, and nothing is accepted before the final dot. An
//! embedder adds its own EHLO keywords per TLS state with
//! [`ServerConfig::advertise`].
//!
//! Public enums are `#[non_exhaustive]`: match them with a wildcard arm
//! that takes the safe path (refuse, do not send), since a later version
//! may report something new.
//!
//! ## Non-features
//!
//! - **No silent fallback to cleartext.** The client never continues without
//!   TLS on its own: [`TlsOutcome`] says why TLS is missing and the caller
//!   decides (`establish` asks the caller at every shortfall); with
//!   `TlsRequirement::Required` nothing is sent. A failed
//!   handshake leaves the connection dead; retrying in cleartext takes a new
//!   connection and a deliberate decision.
//! - No certificate policy: verification is whatever rustls configuration the
//!   caller gives the driver (Portcullis builds them with `dane`'s verifier).
//! - No AUTH, BINARYMIME, queue, DNS or retry logic. An embedder may
//!   advertise such keywords, but the session still answers verbs and
//!   parameters it does not parse with `500`/`502`/`555`. CHUNKING (BDAT)
//!   is the session's own; DSN parameters are parsed and handed over when
//!   [`ServerConfig::dsn`] is on (what they ask for is the embedder's job).
//!
//! ## Example
//!
//! A server session answering a pipelined client, with the embedder's
//! decision on the sender:
//!
//! ```
//! use std::time::Instant;
//! use portcullis_smtp_tls::{Reply, ServerConfig, ServerEvent, ServerSession, TlsMode};
//!
//! let now = Instant::now();
//! let mut config = ServerConfig::new("mx.example.org");
//! config.tls = TlsMode::Preferred;
//! let mut server = ServerSession::new(config, now);
//! assert!(server.poll_transmit().unwrap().starts_with(b"220 mx.example.org"));
//!
//! server.handle_input(now, b"EHLO client.example\r\nMAIL FROM:<spam@blocked.example>\r\n")?;
//! let ehlo = String::from_utf8(server.poll_transmit().unwrap())?;
//! assert!(ehlo.contains("250-STARTTLS") || ehlo.contains("250 STARTTLS"));
//!
//! match server.poll_event() {
//!     Some(ServerEvent::Mail { from, .. }) if from.to_string().ends_with("@blocked.example>") => {
//!         server.reject(Reply::new(550, "5.7.1", "Sender blocked by policy")?)?
//!     }
//!     Some(ServerEvent::Mail { .. }) => server.accept()?,
//!     other => unreachable!("{other:?}"),
//! }
//! assert_eq!(server.poll_transmit().unwrap(), b"550 5.7.1 Sender blocked by policy\r\n");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The same message streamed, the way `examples/starttls-receiver.rs` writes
//! it out while it arrives:
//!
//! ```
//! use std::time::Instant;
//! use portcullis_smtp_tls::{ServerConfig, ServerEvent, ServerSession};
//!
//! let now = Instant::now();
//! let mut config = ServerConfig::new("mx.example.org");
//! config.stream_message_data = true;
//! let mut server = ServerSession::new(config, now);
//! let mut stored = Vec::new(); // a file, in a real MTA
//! let input: [&[u8]; 3] = [
//!     b"EHLO c.example\r\nMAIL FROM:<a@c.example>\r\nRCPT TO:<b@mx.example.org>\r\nDATA\r\n",
//!     b"Subject: hi\r\n\r\n..dotted\r\n",
//!     b".\r\nQUIT\r\n",
//! ];
//! for bytes in input {
//!     server.handle_input(now, bytes)?;
//!     while let Some(event) = server.poll_event() {
//!         match event {
//!             ServerEvent::Mail { .. } | ServerEvent::Rcpt { .. } => server.accept()?,
//!             ServerEvent::MessageStart { .. } => stored.clear(),
//!             ServerEvent::MessageData(text) => stored.extend_from_slice(&text),
//!             ServerEvent::MessageEnd => server.accept()?, // after an fsync
//!             ServerEvent::MessageRefused { .. } => stored.clear(),
//!             ServerEvent::Closed(_) => {}
//!             // Anything this version does not know: accept nothing.
//!             other => unreachable!("{other:?}"),
//!         }
//!     }
//! }
//! assert_eq!(stored, b"Subject: hi\r\n\r\n.dotted\r\n");
//! let replies = String::from_utf8(server.poll_transmit().unwrap())?;
//! assert!(replies.ends_with("250 2.0.0 Message accepted for delivery\r\n221 2.0.0 mx.example.org closing connection\r\n"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! With the `tokio` feature, `ServerConnection::next_event` runs the same
//! loop on a socket and performs the TLS handshake; see
//! `examples/starttls-receiver.rs` and `examples/send-one.rs` in the
//! repository.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

/// The README's examples, compiled and run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
#[derive(Debug)]
pub struct ReadmeDoctests;

mod address;
mod client;
mod command;
mod data;
#[cfg(feature = "tokio")]
mod driver;
mod ehlo;
mod envelope;
mod error;
#[cfg(feature = "tokio")]
mod establish;
mod lines;
mod reply;
mod server;
mod server_config;
mod server_event;
mod tls;

pub use address::{
    AddressError, ForwardPath, MAX_DOMAIN, MAX_LOCAL_PART, MAX_PATH, Mailbox, ReversePath,
};
pub use client::{
    Capabilities, ClientConfig, ClientEvent, ClientSession, MessageResult, dot_stuff,
};
pub use command::{Command, CommandError, MAX_COMMAND_LINE};
pub use data::{MAX_TEXT_LINE, MessageRefusal};
#[cfg(feature = "tokio")]
pub use driver::{ClientConnection, ServerConnection};
pub use ehlo::{Advertise, EhloExtension, ExtensionError, MAX_EXTENSIONS};
pub use envelope::{
    BodyType, Envelope, MailParams, Notify, OriginalRecipient, RcptParams, Ret, xtext_decode,
    xtext_encode,
};
pub use error::Error;
#[cfg(feature = "tokio")]
pub use establish::{
    Delivery, EstablishError, OnShortfall, Ready, Shortfall, StartTlsPlan, TlsRequirement, deliver,
    establish, quit, send, send_with,
};
pub use reply::{EnhancedCode, MAX_REPLY_LINE, MAX_REPLY_LINES, Reply, ReplyError};
pub use server::{
    CloseReason, MAX_PENDING_INPUT, ServerConfig, ServerEvent, ServerSession, SessionEnd,
};
pub use tls::{TlsInfo, TlsMode, TlsOutcome};
