//! The server side of an SMTP session as a sans-IO state machine: bytes in
//! ([`ServerSession::handle_input`]), replies out
//! ([`ServerSession::poll_transmit`]), and [`ServerEvent`]s for the embedder,
//! who decides on every MAIL, RCPT and message with
//! [`ServerSession::accept`] or [`ServerSession::reject`].
//!
//! Methods come in four groups, as in quinn-proto: getters, `handle_*`
//! inputs, commands (`accept`, `reject`), and `poll_*` outputs. After every
//! input or command, drain [`ServerSession::poll_transmit`] to the socket,
//! then [`ServerSession::poll_event`] until it returns `None`.
//!
//! Message text reaches the embedder in one of two ways, chosen by
//! [`ServerConfig::stream_message_data`]: whole, as one
//! [`ServerEvent::Message`] (the convenience path), or streamed, as
//! [`ServerEvent::MessageStart`], a [`ServerEvent::MessageData`] per piece of
//! input, then [`ServerEvent::MessageEnd`] or [`ServerEvent::MessageRefused`].
//! Either way nothing is accepted before the final dot and the embedder's
//! `accept`, and the same checks apply.
//!
//! Choices where the RFCs leave room, all deliberate:
//! - A message with a bare CR or bare LF is read to the real `<CRLF>.<CRLF>`
//!   and refused with `554 5.6.0` (SMTP smuggling protection); the session
//!   continues, since framing was never lost.
//! - 8-bit octets in a message whose MAIL had neither `BODY=8BITMIME` nor
//!   `SMTPUTF8` are refused with `554 5.6.1` (RFC 5321 §2.4 lets a server
//!   refuse undeclared 8-bit data; a gateway should not guess the charset).
//! - A non-ASCII address without the `SMTPUTF8` parameter gets `553 5.6.7`
//!   (RFC 6531 §3.7.4.1).
//! - Syntax errors, out-of-sequence commands and 530 refusals count as
//!   errors; at `max_errors` the session answers `421 4.7.0` and closes.
//!   Refusals decided by the embedder do not count. Every command the
//!   session refuses by itself is also a [`ServerEvent::CommandRefused`],
//!   so the embedder can log it.
//! - A NUL octet in message data is refused like a bare line ending
//!   (`554 5.6.0`): a next hop that strips NUL would find a terminator in
//!   `<CRLF>.<NUL><CRLF>`.
//! - With TLS required, everything but EHLO, HELO, NOOP, STARTTLS and QUIT
//!   gets `530 5.7.0`, commands this session does not know included.
//! - BDAT (RFC 3030) is offered as CHUNKING. A refused BDAT still has its
//!   chunk read and discarded, so chunk octets are never taken for
//!   commands; a BDAT whose size cannot be read ends the session, since
//!   the end of its chunk cannot be found.
//! - Every wait has a deadline ([`ServerConfig`]): the TLS handshake, the
//!   next input (idle), a whole DATA or BDAT transfer however busy the
//!   client keeps the line, and the whole session.

use std::time::Instant;

use crate::address::{ForwardPath, ReversePath};
use crate::command::{Command, CommandError, MAX_COMMAND_LINE};
use crate::data::{BdatReceiver, DataReceiver, MessageRefusal, MessageText};
use crate::envelope::{Envelope, MailParams, RcptParams};
use crate::error::Error;
use crate::lines::{Line, take_line};
use crate::reply::{EnhancedCode, Reply};
use crate::tls::{TlsInfo, TlsMode};

pub use crate::server_config::ServerConfig;
pub use crate::server_event::{CloseReason, ServerEvent, SessionEnd};

/// Most unprocessed input kept while a MAIL, RCPT or message awaits the
/// embedder's decision. A whole pipelined group (RFC 2920) of 100 RCPT
/// commands is about 50 KiB; a client that sends far more without reading
/// our replies is flooding, and buffering it would grow memory without
/// bound, so the session is closed with `421 4.7.0` instead.
pub const MAX_PENDING_INPUT: usize = 1024 * 1024;

#[derive(Debug)]
enum Mode {
    Command,
    Data(DataReceiver),
    /// Reading a BDAT chunk: octets left, whether it is the last, its size.
    Chunk {
        remaining: u64,
        last: bool,
        size: u64,
    },
    /// Discarding the chunk of a refused BDAT: octets left.
    Skip(u64),
    AwaitingTls,
    Closed,
}

#[derive(Debug)]
enum Pending {
    Mail(ReversePath, MailParams),
    Rcpt(ForwardPath, RcptParams),
    Message,
}

/// The longest command text a [`ServerEvent::CommandRefused`] carries.
const MAX_COMMAND_TEXT: usize = 80;

/// A refused command as text for a log: at most [`MAX_COMMAND_TEXT`]
/// characters, control characters shown as `?`.
fn command_text(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let mut out: String = text
        .trim_end_matches(['\r', '\n'])
        .chars()
        .take(MAX_COMMAND_TEXT)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if text.chars().count() > MAX_COMMAND_TEXT {
        out.push('…');
    }
    out
}

/// One SMTP server session. See the module docs for how to drive it.
#[derive(Debug)]
pub struct ServerSession {
    config: ServerConfig,
    mode: Mode,
    inbuf: Vec<u8>,
    inpos: usize,
    skipping_long_line: bool,
    outbuf: Vec<u8>,
    events: std::collections::VecDeque<ServerEvent>,
    helo: Option<String>,
    esmtp: bool,
    tls: Option<TlsInfo>,
    transaction: Option<Envelope>,
    /// The `RCPT TO` parameters of the transaction's recipients.
    rcpt_params: Vec<RcptParams>,
    /// Text of the message being received (DATA, or BDAT chunks).
    message: Option<MessageText>,
    /// The BDAT receiver while a message arrives in chunks.
    bdat: Option<BdatReceiver>,
    pending: Option<Pending>,
    errors: u32,
    refused_without_tls: u32,
    messages_accepted: u32,
    last_activity: Instant,
    started: Instant,
    /// When the current DATA or first BDAT arrived.
    data_started: Option<Instant>,
    /// The command being handled, for [`ServerEvent::CommandRefused`].
    command: String,
}

fn reply(code: u16, e: (u8, u16, u16), text: &str) -> Reply {
    Reply::fixed(code, Some(EnhancedCode::fixed(e.0, e.1, e.2)), text)
}

impl ServerSession {
    /// Starts a session; the greeting is queued for `poll_transmit`.
    pub fn new(config: ServerConfig, now: Instant) -> Self {
        let greeting = Reply::fixed(220, None, &format!("{} ESMTP Portcullis", config.hostname));
        Self {
            config,
            mode: Mode::Command,
            inbuf: Vec::new(),
            inpos: 0,
            skipping_long_line: false,
            outbuf: greeting.encode(),
            events: Default::default(),
            helo: None,
            esmtp: false,
            tls: None,
            transaction: None,
            rcpt_params: Vec::new(),
            message: None,
            bdat: None,
            pending: None,
            errors: 0,
            refused_without_tls: 0,
            messages_accepted: 0,
            last_activity: now,
            started: now,
            data_started: None,
            command: String::new(),
        }
    }

    // ----- getters -----

    /// The session's settings.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// TLS facts once STARTTLS has succeeded.
    pub fn tls(&self) -> Option<&TlsInfo> {
        self.tls.as_ref()
    }

    /// The name from the current EHLO/HELO.
    pub fn helo(&self) -> Option<&str> {
        self.helo.as_deref()
    }

    /// Whether the client greeted with EHLO (ESMTP) rather than HELO.
    pub fn is_esmtp(&self) -> bool {
        self.esmtp
    }

    /// The transaction in progress: sender and recipients accepted so far.
    pub fn envelope(&self) -> Option<&Envelope> {
        self.transaction.as_ref()
    }

    /// The `RCPT TO` parameters (DSN) of the transaction's recipients, in
    /// the order of [`Envelope::to`]; still there while a message awaits
    /// its decision.
    pub fn recipient_params(&self) -> &[RcptParams] {
        if self.transaction.is_some() {
            &self.rcpt_params
        } else {
            &[]
        }
    }

    /// True once the session has ended.
    pub fn is_closed(&self) -> bool {
        matches!(self.mode, Mode::Closed)
    }

    /// True between the `220` to STARTTLS and `handle_tls_established`.
    pub fn is_awaiting_tls(&self) -> bool {
        matches!(self.mode, Mode::AwaitingTls)
    }

    /// True when a MAIL, RCPT or message waits for `accept`/`reject`.
    pub fn is_decision_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// True when the driver should read from the connection: the session
    /// is open, not waiting for a decision and not between STARTTLS and
    /// the handshake.
    pub fn wants_input(&self) -> bool {
        matches!(
            self.mode,
            Mode::Command | Mode::Data(_) | Mode::Chunk { .. } | Mode::Skip(_)
        ) && self.pending.is_none()
    }

    // ----- inputs -----

    /// Bytes received from the client. Input that arrives while a decision
    /// is pending is kept and processed after it, up to
    /// [`MAX_PENDING_INPUT`] bytes; beyond that the session answers
    /// `421 4.7.0` and closes.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) -> Result<(), Error> {
        match self.mode {
            Mode::Closed => return Err(Error::Closed),
            Mode::AwaitingTls => {
                self.discard_plaintext(bytes.len());
                return Ok(());
            }
            _ => {}
        }
        self.last_activity = now;
        let buffered = self.inbuf.len().saturating_sub(self.inpos);
        if self.pending.is_some() && buffered.saturating_add(bytes.len()) > MAX_PENDING_INPUT {
            self.send(&reply(
                421,
                (4, 7, 0),
                &format!(
                    "{} Too much input sent without waiting for replies, closing connection",
                    self.config.hostname
                ),
            ));
            self.close(CloseReason::TooMuchPendingInput);
            return Ok(());
        }
        self.inbuf.extend_from_slice(bytes);
        self.process();
        Ok(())
    }

    /// The client closed its side of the connection.
    pub fn handle_eof(&mut self) {
        if !self.is_closed() {
            self.close(CloseReason::PeerClosed);
        }
    }

    /// The TLS handshake after STARTTLS succeeded. The session forgets the
    /// EHLO and any transaction (RFC 3207 §4.2), stops offering STARTTLS and
    /// starts offering REQUIRETLS.
    pub fn handle_tls_established(&mut self, now: Instant, info: TlsInfo) -> Result<(), Error> {
        match self.mode {
            Mode::AwaitingTls => {}
            Mode::Closed => return Err(Error::Closed),
            _ => return Err(Error::InvalidState("start TLS", "no STARTTLS was accepted")),
        }
        self.events
            .push_back(ServerEvent::TlsEstablished(info.clone()));
        self.tls = Some(info);
        self.helo = None;
        self.esmtp = false;
        self.transaction = None;
        self.inbuf.clear();
        self.inpos = 0;
        self.mode = Mode::Command;
        self.last_activity = now;
        Ok(())
    }

    // ----- commands -----

    /// Accepts the pending MAIL, RCPT or message with the standard reply.
    pub fn accept(&mut self) -> Result<(), Error> {
        let text = match &self.pending {
            Some(Pending::Mail(from, _)) => reply(250, (2, 1, 0), &format!("Sender {from} OK")),
            Some(Pending::Rcpt(to, _)) => reply(250, (2, 1, 5), &format!("Recipient {to} OK")),
            Some(Pending::Message) => reply(250, (2, 0, 0), "Message accepted for delivery"),
            None => return Err(self.misuse(Error::NoDecisionPending)),
        };
        self.decide(true, text)
    }

    /// Accepts with a reply of your own (e.g. `250 2.0.0 Queued as 1A2B`).
    pub fn accept_with(&mut self, reply: Reply) -> Result<(), Error> {
        if !reply.is_positive() {
            return Err(Error::InvalidDecision(format!(
                "accept_with needs a 2xx reply, got {}",
                reply.code()
            )));
        }
        self.decide(true, reply)
    }

    /// Refuses the pending MAIL, RCPT or message with a 4xx or 5xx reply.
    pub fn reject(&mut self, reply: Reply) -> Result<(), Error> {
        if !(reply.is_transient() || reply.is_permanent()) {
            return Err(Error::InvalidDecision(format!(
                "reject needs a 4xx or 5xx reply, got {}",
                reply.code()
            )));
        }
        self.decide(false, reply)
    }

    // ----- outputs -----

    /// Bytes to write to the client, if any.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        (!self.outbuf.is_empty()).then(|| std::mem::take(&mut self.outbuf))
    }

    /// The next event, if any.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// When to call `handle_timeout`: the nearest of the idle (or, after
    /// STARTTLS, handshake) deadline, the DATA/BDAT deadline and the
    /// session deadline.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline().map(|(at, _)| at)
    }

    // ----- internals -----

    fn misuse(&self, e: Error) -> Error {
        if self.is_closed() { Error::Closed } else { e }
    }

    fn decide(&mut self, accepted: bool, answer: Reply) -> Result<(), Error> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let pending = self.pending.take().ok_or(Error::NoDecisionPending)?;
        match pending {
            Pending::Mail(from, params) if accepted => {
                self.transaction = Some(Envelope {
                    from,
                    params,
                    to: Vec::new(),
                });
                self.rcpt_params.clear();
            }
            Pending::Rcpt(to, params) if accepted => {
                if let Some(tx) = self.transaction.as_mut() {
                    tx.to.push(to);
                    self.rcpt_params.push(params);
                }
            }
            Pending::Message => {
                self.transaction = None;
                if accepted {
                    self.messages_accepted += 1;
                }
            }
            _ => {}
        }
        self.send(&answer);
        self.process();
        Ok(())
    }

    fn send(&mut self, r: &Reply) {
        self.outbuf.extend_from_slice(&r.encode());
    }

    /// A refusal of the current command that does not count as an error.
    fn refuse(&mut self, r: Reply) {
        self.send(&r);
        self.events.push_back(ServerEvent::CommandRefused {
            command: self.command.clone(),
            reply: r,
        });
    }

    /// A reply that counts towards `max_errors`.
    fn error(&mut self, r: Reply) {
        self.errors += 1;
        if self.errors >= self.config.max_errors {
            self.events.push_back(ServerEvent::CommandRefused {
                command: self.command.clone(),
                reply: r,
            });
            self.too_many_errors();
        } else {
            self.refuse(r);
        }
    }

    fn too_many_errors(&mut self) {
        self.send(&reply(
            421,
            (4, 7, 0),
            &format!(
                "{} Too many errors, closing connection",
                self.config.hostname
            ),
        ));
        self.close(CloseReason::TooManyErrors);
    }

    fn close(&mut self, reason: CloseReason) {
        self.mode = Mode::Closed;
        self.pending = None;
        self.message = None;
        self.bdat = None;
        self.data_started = None;
        self.inbuf = Vec::new();
        self.inpos = 0;
        self.events.push_back(ServerEvent::Closed(SessionEnd {
            reason,
            messages_accepted: self.messages_accepted,
            refused_without_tls: self.refused_without_tls,
            tls_active: self.tls.is_some(),
        }));
    }

    fn discard_plaintext(&mut self, n: usize) {
        if n > 0 {
            self.events
                .push_back(ServerEvent::InjectionAttempt { discarded: n });
        }
    }

    fn process(&mut self) {
        while self.pending.is_none() {
            let input = self.inbuf.get(self.inpos..).unwrap_or_default();
            if input.is_empty() {
                break;
            }
            match &mut self.mode {
                Mode::Closed | Mode::AwaitingTls => break,
                Mode::Data(rx) => {
                    let text = self
                        .message
                        .get_or_insert_with(|| MessageText::new(self.config.max_message_size));
                    let end = rx.receive(input, text);
                    if self.config.stream_message_data {
                        let piece = text.take();
                        if !piece.is_empty() {
                            self.events.push_back(ServerEvent::MessageData(piece));
                        }
                    }
                    match end {
                        None => self.inpos = self.inbuf.len(),
                        Some(used) => {
                            let refusal = rx.refusal(text);
                            self.inpos += used;
                            self.mode = Mode::Command;
                            self.finish_message(refusal);
                        }
                    }
                }
                Mode::Chunk {
                    remaining,
                    last,
                    size,
                } => {
                    let take = usize::try_from(*remaining)
                        .unwrap_or(usize::MAX)
                        .min(input.len());
                    *remaining -= take as u64;
                    let (done, last, size) = (*remaining == 0, *last, *size);
                    if let (Some(rx), Some(text)) = (self.bdat.as_mut(), self.message.as_mut()) {
                        rx.receive(input.get(..take).unwrap_or_default(), text);
                        if self.config.stream_message_data {
                            let piece = text.take();
                            if !piece.is_empty() {
                                self.events.push_back(ServerEvent::MessageData(piece));
                            }
                        }
                    }
                    self.inpos += take;
                    if done {
                        self.mode = Mode::Command;
                        self.chunk_received(last, size);
                    }
                }
                Mode::Skip(remaining) => {
                    let take = usize::try_from(*remaining)
                        .unwrap_or(usize::MAX)
                        .min(input.len());
                    *remaining -= take as u64;
                    if *remaining == 0 {
                        self.mode = Mode::Command;
                    }
                    self.inpos += take;
                }
                Mode::Command if self.skipping_long_line => {
                    match input.iter().position(|&b| b == b'\n') {
                        Some(lf) => {
                            self.inpos += lf + 1;
                            self.skipping_long_line = false;
                        }
                        None => self.inpos = self.inbuf.len(),
                    }
                }
                Mode::Command => match take_line(input, MAX_COMMAND_LINE) {
                    Line::Incomplete => break,
                    Line::TooLong => {
                        self.command =
                            command_text(input.get(..MAX_COMMAND_TEXT + 1).unwrap_or(input));
                        self.inpos += MAX_COMMAND_LINE;
                        self.skipping_long_line = true;
                        self.error(CommandError::LineTooLong.reply());
                    }
                    Line::Complete { line, used, crlf } => {
                        let line = line.strip_suffix(b"\r").unwrap_or(line);
                        self.command = command_text(line);
                        let parsed = if crlf {
                            Command::parse(line)
                        } else {
                            Err(CommandError::BareLf)
                        };
                        let verb = line
                            .split(|&b| b == b' ')
                            .next()
                            .unwrap_or_default()
                            .to_ascii_uppercase();
                        self.inpos += used;
                        match parsed {
                            Ok(cmd) => self.handle_command(cmd),
                            Err(e) => self.command_failed(&verb, e),
                        }
                    }
                },
            }
        }
        if self.inpos > 0 {
            self.inbuf.drain(..self.inpos.min(self.inbuf.len()));
            self.inpos = 0;
        }
    }

    fn tls_missing(&self) -> bool {
        self.config.tls == TlsMode::Required && self.tls.is_none()
    }

    fn refuse_without_tls(&mut self) {
        self.refused_without_tls += 1;
        self.error(reply(530, (5, 7, 0), "Must issue a STARTTLS command first"));
    }

    /// A command line that does not parse. With TLS required and missing,
    /// only the verbs allowed before TLS get their syntax error; the rest
    /// (unknown verbs included) get `530`. A BDAT whose chunk size cannot
    /// be read ends the session: its chunk cannot be skipped.
    fn command_failed(&mut self, verb: &[u8], e: CommandError) {
        const BEFORE_TLS: [&[u8]; 5] = [b"EHLO", b"HELO", b"NOOP", b"STARTTLS", b"QUIT"];
        if verb == b"BDAT" && !matches!(e, CommandError::BareLf) {
            self.refuse(e.reply());
            let text = format!(
                "{} Cannot find the end of the BDAT chunk, closing connection",
                self.config.hostname
            );
            self.send(&reply(421, (4, 5, 4), &text));
            return self.close(CloseReason::UnframedChunk);
        }
        if self.tls_missing() && !BEFORE_TLS.contains(&verb) {
            return self.refuse_without_tls();
        }
        self.error(e.reply());
    }

    fn handle_command(&mut self, cmd: Command) {
        if self.tls_missing()
            && !matches!(
                cmd,
                Command::Ehlo(_)
                    | Command::Helo(_)
                    | Command::Noop
                    | Command::StartTls
                    | Command::Quit
            )
        {
            if let Command::Bdat { size, .. } = cmd {
                self.skip_chunk(size);
            }
            return self.refuse_without_tls();
        }
        match cmd {
            Command::Ehlo(name) => {
                let mut lines = vec![
                    format!("{} greets {name}", self.config.hostname),
                    "PIPELINING".into(),
                    format!("SIZE {}", self.config.max_message_size),
                    "8BITMIME".into(),
                    "ENHANCEDSTATUSCODES".into(),
                    "SMTPUTF8".into(),
                ];
                if self.config.chunking {
                    lines.push("CHUNKING".into());
                }
                let tls_active = self.tls.is_some();
                let embedder_dsn = self
                    .config
                    .extensions()
                    .iter()
                    .any(|e| e.keyword() == "DSN" && e.offered(tls_active));
                if self.config.dsn && !embedder_dsn {
                    lines.push("DSN".into());
                }
                lines.extend(
                    self.config
                        .extensions()
                        .iter()
                        .filter(|e| e.offered(tls_active))
                        .map(ToString::to_string),
                );
                if tls_active {
                    lines.push("REQUIRETLS".into());
                } else if self.config.tls != TlsMode::Off {
                    lines.push("STARTTLS".into());
                }
                self.greeted(name, true);
                self.send(&Reply::multiline(250, lines));
            }
            Command::Helo(name) => {
                let hello = Reply::fixed(250, None, &self.config.hostname.clone());
                self.greeted(name, false);
                self.send(&hello);
            }
            Command::Mail { from, params } => self.handle_mail(from, params),
            // The envelope is fixed once the message text has begun: a
            // streaming embedder already has it (MessageStart).
            Command::Rcpt { .. } if self.bdat.is_some() => self.error(reply(
                503,
                (5, 5, 1),
                "RCPT not allowed after BDAT; send the rest of the message or RSET",
            )),
            Command::Rcpt { to, params } => self.handle_rcpt(to, params),
            Command::Bdat { size, last } => self.handle_bdat(size, last),
            Command::Data if self.bdat.is_some() => {
                // RFC 3030 §2: DATA and BDAT do not mix in one transaction.
                self.abandon_message();
                self.transaction = None;
                self.error(reply(
                    503,
                    (5, 5, 1),
                    "DATA not allowed after BDAT; transaction reset",
                ))
            }
            Command::Data => match &self.transaction {
                None => self.error(reply(503, (5, 5, 1), "Need MAIL and RCPT before DATA")),
                Some(tx) if tx.to.is_empty() => self.error(reply(554, (5, 5, 1), "No valid recipients")),
                Some(tx) => {
                    let start = self
                        .config
                        .stream_message_data
                        .then(|| ServerEvent::MessageStart { envelope: tx.clone() });
                    self.send(&Reply::fixed(354, None, "End data with <CR><LF>.<CR><LF>"));
                    self.events.extend(start);
                    self.message = Some(MessageText::new(self.config.max_message_size));
                    self.data_started = Some(self.last_activity);
                    self.mode = Mode::Data(DataReceiver::new());
                }
            },
            Command::Rset => {
                self.abandon_message();
                self.transaction = None;
                self.send(&reply(250, (2, 0, 0), "OK"));
            }
            Command::Noop => self.send(&reply(250, (2, 0, 0), "OK")),
            Command::Quit => {
                self.send(&reply(221, (2, 0, 0), &format!("{} closing connection", self.config.hostname)));
                self.close(CloseReason::Quit);
            }
            Command::Vrfy(_) => self.send(&reply(
                252,
                (2, 5, 0),
                "Cannot VRFY user, but will accept message and attempt delivery",
            )),
            Command::Help(_) => self.send(&reply(
                214,
                (2, 0, 0),
                "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS; see RFC 5321",
            )),
            Command::StartTls => self.handle_starttls(),
        }
    }

    fn greeted(&mut self, name: String, esmtp: bool) {
        self.abandon_message();
        self.helo = Some(name);
        self.esmtp = esmtp;
        self.transaction = None;
    }

    fn handle_mail(&mut self, from: ReversePath, params: MailParams) {
        if self.helo.is_none() {
            return self.error(reply(503, (5, 5, 1), "Send EHLO or HELO first"));
        }
        if self.transaction.is_some() {
            return self.error(reply(
                503,
                (5, 5, 1),
                "Sender already specified; send RSET first",
            ));
        }
        if !self.esmtp && params != MailParams::default() {
            return self.error(reply(555, (5, 5, 4), "MAIL parameters need EHLO, not HELO"));
        }
        if params.has_dsn() && !self.config.dsn {
            return self.error(reply(555, (5, 5, 4), "DSN parameters are not supported"));
        }
        if params.requiretls && self.tls.is_none() {
            return self.error(reply(
                530,
                (5, 7, 10),
                "REQUIRETLS needs a TLS session; issue STARTTLS first",
            ));
        }
        if from.is_utf8() && !params.smtputf8 {
            return self.error(reply(
                553,
                (5, 6, 7),
                "Non-ASCII sender address needs the SMTPUTF8 parameter",
            ));
        }
        if params
            .size
            .is_some_and(|s| s > self.config.max_message_size)
        {
            return self.refuse(reply(
                552,
                (5, 3, 4),
                "Message size exceeds fixed maximum message size",
            ));
        }
        self.pending = Some(Pending::Mail(from.clone(), params.clone()));
        self.events.push_back(ServerEvent::Mail { from, params });
    }

    fn handle_rcpt(&mut self, to: ForwardPath, params: RcptParams) {
        let Some(tx) = &self.transaction else {
            return self.error(reply(503, (5, 5, 1), "Need MAIL before RCPT"));
        };
        if !params.is_empty() && !self.config.dsn {
            return self.error(reply(555, (5, 5, 4), "DSN parameters are not supported"));
        }
        if !params.is_empty() && !self.esmtp {
            return self.error(reply(555, (5, 5, 4), "RCPT parameters need EHLO, not HELO"));
        }
        if to.is_utf8() && !tx.params.smtputf8 {
            return self.error(reply(
                553,
                (5, 6, 7),
                "Non-ASCII recipient address needs SMTPUTF8 in MAIL FROM",
            ));
        }
        if tx.to.len() >= self.config.max_recipients {
            return self.refuse(reply(452, (4, 5, 3), "Too many recipients"));
        }
        self.pending = Some(Pending::Rcpt(to.clone(), params));
        self.events.push_back(ServerEvent::Rcpt { to });
    }

    fn handle_starttls(&mut self) {
        if self.config.tls == TlsMode::Off {
            return self.error(reply(502, (5, 5, 1), "STARTTLS not offered"));
        }
        if self.tls.is_some() {
            return self.error(reply(503, (5, 5, 1), "TLS already active"));
        }
        if self.transaction.is_some() {
            return self.error(reply(
                503,
                (5, 5, 1),
                "STARTTLS not allowed during a mail transaction",
            ));
        }
        self.send(&reply(220, (2, 0, 0), "Ready to start TLS"));
        self.mode = Mode::AwaitingTls;
        // Anything the client sent behind STARTTLS was sent in plaintext
        // before the handshake: it must never reach the TLS session.
        let pipelined = self.inbuf.len().saturating_sub(self.inpos);
        self.inpos = self.inbuf.len();
        self.discard_plaintext(pipelined);
        self.events.push_back(ServerEvent::StartTls);
    }

    /// The final dot arrived: refuse the message, or hand it to the
    /// embedder for a decision.
    fn finish_message(&mut self, refusal: Option<MessageRefusal>) {
        self.data_started = None;
        let Some(mut text) = self.message.take() else {
            return;
        };
        let Some(tx) = &self.transaction else {
            return;
        };
        let refusal = refusal.or_else(|| {
            (text.has_8bit() && !tx.params.allows_8bit()).then_some(MessageRefusal::Undeclared8Bit)
        });
        match refusal {
            Some(reason) => {
                if matches!(
                    reason,
                    MessageRefusal::BareLineEnding | MessageRefusal::NulCharacter
                ) {
                    self.errors += 1;
                }
                self.transaction = None;
                self.send(&reason.reply());
                self.events
                    .push_back(ServerEvent::MessageRefused { reason });
                if self.errors >= self.config.max_errors {
                    self.too_many_errors();
                }
            }
            None if self.config.stream_message_data => {
                self.pending = Some(Pending::Message);
                self.events.push_back(ServerEvent::MessageEnd);
            }
            None => {
                let envelope = tx.clone();
                self.pending = Some(Pending::Message);
                self.events.push_back(ServerEvent::Message {
                    envelope,
                    body: text.take(),
                });
            }
        }
    }
}

#[path = "server_bdat.rs"]
mod bdat;
#[path = "server_deadline.rs"]
mod deadline;

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
