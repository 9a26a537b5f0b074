//! The client side of an SMTP session as a sans-IO state machine: it greets
//! with EHLO (falling back to HELO when EHLO is refused with 5xx), reads the
//! capabilities, leaves the STARTTLS decision to the caller, re-issues EHLO
//! after TLS, and sends messages with MAIL/RCPT (pipelined when the server
//! offers PIPELINING) and a dot-stuffed DATA, reporting every recipient.
//!
//! Same shape as the server: getters, `handle_*` inputs, commands
//! (`start_tls`, `send_message`, `quit`) and `poll_*` outputs. After the
//! server's `220` to STARTTLS, whatever else it sent in plaintext is thrown
//! away (STARTTLS response injection) and reported as
//! [`ClientEvent::InjectionAttempt`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::address::ForwardPath;
use crate::envelope::{BodyType, Envelope, RcptParams};
use crate::error::Error;
use crate::reply::{MAX_REPLY_LINE, Reply};
use crate::tls::{TlsInfo, TlsOutcome};

/// Settings of one client session.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The name sent in EHLO/HELO.
    pub helo_name: String,
    /// How long to wait for a reply to a command (RFC 5321 §4.5.3.2: 5 minutes).
    pub command_timeout: Duration,
    /// How long to wait for the reply to the final `.` (RFC 5321: 10 minutes).
    pub data_timeout: Duration,
    /// How long the TLS handshake after STARTTLS may take (no RFC value).
    pub tls_handshake_timeout: Duration,
    /// How long the server may take to accept each piece we send (RFC 5321
    /// §4.5.3.2.5, data block: 3 minutes).
    pub send_timeout: Duration,
}

impl ClientConfig {
    /// RFC 5321 timeouts; 60 s for a TLS handshake.
    pub fn new(helo_name: impl Into<String>) -> Self {
        Self {
            helo_name: helo_name.into(),
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(600),
            tls_handshake_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(180),
        }
    }
}

/// What the server's EHLO reply advertised.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// False when only HELO was accepted.
    pub esmtp: bool,
    /// `STARTTLS`
    pub starttls: bool,
    /// `PIPELINING`
    pub pipelining: bool,
    /// `SIZE [n]`; `Some(0)` means no fixed limit.
    pub size: Option<u64>,
    /// `8BITMIME`
    pub eight_bit_mime: bool,
    /// `SMTPUTF8`
    pub smtputf8: bool,
    /// `ENHANCEDSTATUSCODES`
    pub enhanced_status_codes: bool,
    /// `REQUIRETLS` (only meaningful over TLS)
    pub requiretls: bool,
    /// `DSN` (RFC 3461): the server takes NOTIFY, ORCPT, RET and ENVID.
    pub dsn: bool,
    /// `CHUNKING` (RFC 3030): the server takes BDAT.
    pub chunking: bool,
    /// Every advertised line after the greeting line, as sent.
    pub keywords: Vec<String>,
}

impl Capabilities {
    /// Reads the lines of a 250 reply to EHLO.
    pub fn from_ehlo(reply: &Reply) -> Self {
        let mut caps = Self {
            esmtp: true,
            ..Self::default()
        };
        for line in reply.lines().iter().skip(1) {
            let mut words = line.split_ascii_whitespace();
            let keyword = words.next().unwrap_or_default().to_ascii_uppercase();
            match keyword.as_str() {
                "STARTTLS" => caps.starttls = true,
                "PIPELINING" => caps.pipelining = true,
                "SIZE" => caps.size = Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0)),
                "8BITMIME" => caps.eight_bit_mime = true,
                "SMTPUTF8" => caps.smtputf8 = true,
                "ENHANCEDSTATUSCODES" => caps.enhanced_status_codes = true,
                "REQUIRETLS" => caps.requiretls = true,
                "DSN" => caps.dsn = true,
                "CHUNKING" => caps.chunking = true,
                _ => {}
            }
            caps.keywords.push(line.clone());
        }
        caps
    }
}

/// The result of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageResult {
    /// The reply to MAIL FROM.
    pub mail: Reply,
    /// Each recipient with the reply to its RCPT (`None`: not sent, because
    /// MAIL was refused).
    pub recipients: Vec<(ForwardPath, Option<Reply>)>,
    /// The reply to DATA when it was refused, or to the final `.`;
    /// `None` when DATA was not sent.
    pub data: Option<Reply>,
}

impl MessageResult {
    /// True when the server took responsibility for the message.
    pub fn is_accepted(&self) -> bool {
        self.data.as_ref().is_some_and(Reply::is_positive)
    }

    /// Recipients the message was delivered to.
    pub fn delivered_to(&self) -> impl Iterator<Item = &ForwardPath> {
        let ok = self.is_accepted();
        self.recipients
            .iter()
            .filter(move |(_, r)| ok && r.as_ref().is_some_and(Reply::is_positive))
            .map(|(p, _)| p)
    }
}

/// Something the caller must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// EHLO (or HELO) succeeded; the session is idle. Call `start_tls`,
    /// `send_message` or `quit`. Sent again after TLS is up, and after a
    /// refused STARTTLS.
    Ready(Capabilities),
    /// The server said `220` to STARTTLS: write out `poll_transmit`, run the
    /// handshake, then call `handle_tls_established` or `handle_tls_failed`.
    StartTls,
    /// The server sent plaintext behind its `220` to STARTTLS; it was
    /// discarded. Log this as an attack.
    InjectionAttempt {
        /// How many bytes were thrown away.
        discarded: usize,
    },
    /// A message finished (accepted or not); the session is idle again.
    MessageDone(MessageResult),
    /// The session is over; `error` says why when it did not end with QUIT.
    Closed {
        /// The failure, if any.
        error: Option<Error>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    Mail,
    Rcpt(usize),
    Data,
    DataEnd,
    DiscardDot,
    Rset,
    Quit,
}

#[derive(Debug)]
struct Transaction {
    pipelined: bool,
    body: Vec<u8>,
    /// `RCPT TO:<…> params`, one per recipient.
    rcpt_lines: Vec<String>,
    result: MessageResult,
}

/// One SMTP client session. See the module docs.
#[derive(Debug)]
pub struct ClientSession {
    config: ClientConfig,
    inbuf: Vec<u8>,
    /// Bytes at the end of `inbuf` after its last LF: while no LF arrives
    /// and this stays under `MAX_REPLY_LINE`, no new line is complete and
    /// re-parsing would only repeat the last `Ok(None)`.
    unterminated: usize,
    /// How many times `Reply::parse` ran (tests check it stays linear).
    #[cfg(test)]
    parses: usize,
    outbuf: Vec<u8>,
    events: VecDeque<ClientEvent>,
    expect: VecDeque<Expect>,
    idle: bool,
    awaiting_tls: bool,
    closed: bool,
    error: Option<Error>,
    caps: Option<Capabilities>,
    /// The server's `220` greeting.
    greeting: Option<Reply>,
    /// The capabilities of the first EHLO, before any TLS.
    plaintext_caps: Option<Capabilities>,
    helo_only: bool,
    starttls_refused: Option<Reply>,
    tls: Option<TlsInfo>,
    tx: Option<Transaction>,
    last_activity: Instant,
    /// TLS records the server sent before our ClientHello, described.
    early_tls: Option<String>,
}

impl ClientSession {
    /// Starts a session; it waits for the server's greeting.
    pub fn new(config: ClientConfig, now: Instant) -> Self {
        Self {
            config,
            inbuf: Vec::new(),
            unterminated: 0,
            #[cfg(test)]
            parses: 0,
            outbuf: Vec::new(),
            events: VecDeque::new(),
            expect: VecDeque::from([Expect::Greeting]),
            idle: false,
            awaiting_tls: false,
            closed: false,
            error: None,
            caps: None,
            greeting: None,
            plaintext_caps: None,
            helo_only: false,
            starttls_refused: None,
            tls: None,
            tx: None,
            last_activity: now,
            early_tls: None,
        }
    }

    // ----- getters -----

    /// The session's settings.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// When the server answered STARTTLS with `220` and then sent TLS
    /// records itself (an alert, typically) before our ClientHello: what
    /// it sent. That is a failed handshake, not a plaintext injection.
    pub fn tls_records_before_handshake(&self) -> Option<String> {
        self.early_tls.clone()
    }

    /// The capabilities of the latest EHLO/HELO.
    pub fn capabilities(&self) -> Option<&Capabilities> {
        self.caps.as_ref()
    }

    /// The server's greeting (its `220` banner), once received.
    pub fn greeting(&self) -> Option<&Reply> {
        self.greeting.as_ref()
    }

    /// The capabilities advertised before STARTTLS (the first EHLO/HELO).
    pub fn capabilities_before_tls(&self) -> Option<&Capabilities> {
        self.plaintext_caps.as_ref()
    }

    /// TLS facts once the handshake is done.
    pub fn tls(&self) -> Option<&TlsInfo> {
        self.tls.as_ref()
    }

    /// Whether `start_tls`, `send_message` or `quit` may be called now.
    pub fn is_idle(&self) -> bool {
        self.idle && !self.closed
    }

    /// True once the session has ended.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// True between the server's `220` to STARTTLS and the handshake result.
    pub fn is_awaiting_tls(&self) -> bool {
        self.awaiting_tls
    }

    /// How STARTTLS went so far, as a value delivery code can act on.
    pub fn tls_outcome(&self) -> TlsOutcome {
        if let Some(info) = &self.tls {
            TlsOutcome::Established(info.clone())
        } else if let Some(Error::Handshake(e)) = &self.error {
            TlsOutcome::HandshakeFailed(e.clone())
        } else if let Some(r) = &self.starttls_refused {
            TlsOutcome::StartTlsRefused(r.clone())
        } else if self.helo_only {
            TlsOutcome::NoEsmtp
        } else if self.caps.as_ref().is_some_and(|c| !c.starttls) {
            TlsOutcome::StartTlsNotOffered
        } else {
            TlsOutcome::NotAttempted
        }
    }

    // ----- inputs -----

    /// Bytes received from the server.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) -> Result<(), Error> {
        self.check_open()?;
        self.last_activity = now;
        if self.awaiting_tls {
            self.discard_plaintext(bytes);
            return Ok(());
        }
        self.inbuf.extend_from_slice(bytes);
        // A server dribbling a long multiline reply one byte per read would
        // otherwise make every read re-parse everything buffered so far
        // (quadratic CPU): parse only when a line may have completed.
        self.unterminated = match bytes.iter().rposition(|&b| b == b'\n') {
            Some(lf) => bytes.len() - lf - 1,
            None => self.unterminated.saturating_add(bytes.len()),
        };
        if !bytes.contains(&b'\n') && self.unterminated < MAX_REPLY_LINE {
            return Ok(());
        }
        let mut pos = 0;
        let result = loop {
            let rest = self.inbuf.get(pos..).unwrap_or_default();
            #[cfg(test)]
            {
                self.parses += 1;
            }
            match Reply::parse(rest) {
                Ok(None) => break Ok(()),
                Err(e) => break Err(self.fail(Error::MalformedReply(e))),
                Ok(Some((reply, used))) => {
                    pos += used;
                    if let Err(e) = self.on_reply(reply) {
                        break Err(e);
                    }
                    if self.awaiting_tls {
                        // Response injection: plaintext after the 220 must
                        // not be read as if it came over TLS.
                        let rest = self.inbuf.split_off(pos.min(self.inbuf.len()));
                        pos = self.inbuf.len();
                        self.unterminated = 0;
                        self.discard_plaintext(&rest);
                        break Ok(());
                    }
                    if self.closed {
                        break Ok(());
                    }
                }
            }
        };
        if self.closed {
            self.inbuf = Vec::new();
            self.unterminated = 0;
        } else {
            self.inbuf.drain(..pos.min(self.inbuf.len()));
        }
        result
    }

    /// The server closed the connection.
    pub fn handle_eof(&mut self) {
        if self.closed {
            return;
        }
        if self.expect.front() == Some(&Expect::Quit) || (self.expect.is_empty() && self.idle) {
            // After QUIT, or while idle: an orderly end.
            self.close(None);
        } else {
            let _ = self.fail(Error::ConnectionClosed("waiting for an SMTP reply"));
        }
    }

    /// The TLS handshake succeeded: EHLO is sent again (RFC 3207 §4.2).
    pub fn handle_tls_established(&mut self, now: Instant, info: TlsInfo) -> Result<(), Error> {
        self.check_open()?;
        if !self.awaiting_tls {
            return Err(Error::InvalidState(
                "finish TLS",
                "the server did not accept STARTTLS",
            ));
        }
        self.awaiting_tls = false;
        self.tls = Some(info);
        self.caps = None;
        self.inbuf.clear();
        self.unterminated = 0;
        self.last_activity = now;
        self.send_line(&format!("EHLO {}", self.config.helo_name), Expect::Ehlo);
        Ok(())
    }

    /// The TLS handshake failed; the connection cannot be used any more.
    pub fn handle_tls_failed(&mut self, error: impl Into<String>) {
        if !self.closed {
            let _ = self.fail(Error::Handshake(error.into()));
        }
    }

    /// Call when `poll_timeout`'s instant has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(deadline) = self.poll_timeout()
            && now >= deadline
        {
            let _ = self.fail(Error::Timeout("waiting for an SMTP reply"));
        }
    }

    // ----- commands -----

    /// Sends STARTTLS, if the server offers it.
    pub fn start_tls(&mut self) -> Result<(), Error> {
        self.check_idle("start TLS")?;
        match self.tls_outcome() {
            TlsOutcome::NotAttempted => {}
            TlsOutcome::Established(_) => {
                return Err(Error::InvalidState("start TLS", "TLS is already active"));
            }
            other => return Err(Error::TlsUnavailable(other)),
        }
        self.idle = false;
        self.send_line("STARTTLS", Expect::StartTls);
        Ok(())
    }

    /// Sends one message. `body` is the message as lines; line endings are
    /// normalised to CRLF and dot-stuffing is applied here. `BODY=8BITMIME`,
    /// `SMTPUTF8` and `SIZE` are added when the message needs them and the
    /// server offers them; when it does not, nothing is sent and the error
    /// names the missing extension.
    pub fn send_message(&mut self, envelope: Envelope, body: &[u8]) -> Result<(), Error> {
        self.send_message_with(envelope, Vec::new(), body)
    }

    /// [`ClientSession::send_message`] with `RCPT TO` parameters (DSN), one
    /// per recipient in the order of `envelope.to` (missing entries: none).
    /// With DSN parameters and a server that does not advertise DSN,
    /// nothing is sent ([`Error::ExtensionNotOffered`]).
    pub fn send_message_with(
        &mut self,
        mut envelope: Envelope,
        rcpt_params: Vec<RcptParams>,
        body: &[u8],
    ) -> Result<(), Error> {
        self.check_idle("send a message")?;
        if envelope.to.is_empty() {
            return Err(Error::InvalidState(
                "send a message",
                "it has no recipients",
            ));
        }
        let caps = self.caps.clone().unwrap_or_default();
        let params = &mut envelope.params;
        let utf8_addresses =
            envelope.from.is_utf8() || envelope.to.iter().any(ForwardPath::is_utf8);
        if utf8_addresses && !params.smtputf8 {
            params.smtputf8 = true;
        }
        if params.smtputf8 && !caps.smtputf8 {
            return Err(Error::ExtensionNotOffered("SMTPUTF8"));
        }
        if body.iter().any(|&b| b >= 0x80) && params.body.is_none() && !params.smtputf8 {
            params.body = Some(BodyType::EightBitMime);
        }
        if params.body == Some(BodyType::EightBitMime) && !caps.eight_bit_mime {
            return Err(Error::ExtensionNotOffered("8BITMIME"));
        }
        if params.requiretls && !caps.requiretls {
            return Err(Error::ExtensionNotOffered("REQUIRETLS"));
        }
        let rcpt_dsn = rcpt_params.iter().any(|p| !p.is_empty());
        if (params.has_dsn() || rcpt_dsn) && !caps.dsn {
            return Err(Error::ExtensionNotOffered("DSN"));
        }
        let body = dot_stuff(body);
        // Content size without the terminator (RFC 1870 estimate).
        let size = body.len().saturating_sub(3) as u64;
        if let Some(limit) = caps.size.filter(|&l| l > 0)
            && size > limit
        {
            return Err(Error::MessageTooLarge { size, limit });
        }
        if caps.size.is_some() && params.size.is_none() {
            params.size = Some(size);
        }
        if !caps.esmtp && *params != Default::default() {
            return Err(Error::ExtensionNotOffered(
                "EHLO (the server only accepts HELO)",
            ));
        }
        self.idle = false;
        let pipelined = caps.pipelining;
        self.send_line(
            &format!("MAIL FROM:{}{}", envelope.from, envelope.params),
            Expect::Mail,
        );
        let rcpt_lines: Vec<String> = envelope
            .to
            .iter()
            .enumerate()
            .map(|(i, to)| {
                let params = rcpt_params.get(i).cloned().unwrap_or_default();
                format!("RCPT TO:{to}{params}")
            })
            .collect();
        if pipelined {
            for (i, line) in rcpt_lines.iter().enumerate() {
                self.send_line(line, Expect::Rcpt(i));
            }
            self.send_line("DATA", Expect::Data);
        }
        self.tx = Some(Transaction {
            pipelined,
            body,
            rcpt_lines,
            result: MessageResult {
                mail: Reply::fixed(421, None, "no reply yet"),
                recipients: envelope.to.into_iter().map(|to| (to, None)).collect(),
                data: None,
            },
        });
        Ok(())
    }

    /// Sends QUIT. Allowed whenever the session is open and not in the
    /// middle of STARTTLS.
    pub fn quit(&mut self) -> Result<(), Error> {
        self.check_open()?;
        if self.awaiting_tls {
            return Err(Error::InvalidState(
                "quit",
                "the TLS handshake must finish first",
            ));
        }
        self.idle = false;
        self.send_line("QUIT", Expect::Quit);
        Ok(())
    }

    // ----- outputs -----

    /// Bytes to write to the server, if any.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        (!self.outbuf.is_empty()).then(|| std::mem::take(&mut self.outbuf))
    }

    /// The next event, if any.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// When to call `handle_timeout`: only while a reply is awaited.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let waiting = self.expect.front()?;
        if self.closed || self.awaiting_tls {
            return None;
        }
        let t = if *waiting == Expect::DataEnd {
            self.config.data_timeout
        } else {
            self.config.command_timeout
        };
        Some(self.last_activity + t)
    }

    // ----- internals -----

    fn check_open(&self) -> Result<(), Error> {
        match (&self.error, self.closed) {
            (Some(e), _) => Err(e.clone()),
            (None, true) => Err(Error::Closed),
            _ => Ok(()),
        }
    }

    fn check_idle(&self, what: &'static str) -> Result<(), Error> {
        self.check_open()?;
        if self.idle {
            Ok(())
        } else {
            Err(Error::InvalidState(
                what,
                "the session is busy (wait for Ready or MessageDone)",
            ))
        }
    }

    fn send_line(&mut self, line: &str, expect: Expect) {
        self.outbuf.extend_from_slice(line.as_bytes());
        self.outbuf.extend_from_slice(b"\r\n");
        self.expect.push_back(expect);
    }

    /// Bytes after the server's `220` to STARTTLS and before the handshake:
    /// TLS records mean the server's TLS side already failed (a failed
    /// handshake); anything else is plaintext injection.
    fn discard_plaintext(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if let Some(record) = describe_tls_record(bytes) {
            if self.early_tls.is_none() {
                self.early_tls = Some(format!(
                    "the server sent {record} right after its 220 to STARTTLS, before our ClientHello"
                ));
            }
            return;
        }
        self.events.push_back(ClientEvent::InjectionAttempt {
            discarded: bytes.len(),
        });
    }

    fn fail(&mut self, e: Error) -> Error {
        if self.error.is_none() {
            self.error = Some(e.clone());
            self.close(Some(e.clone()));
        }
        e
    }

    fn close(&mut self, error: Option<Error>) {
        self.closed = true;
        self.idle = false;
        self.awaiting_tls = false;
        self.expect.clear();
        self.events.push_back(ClientEvent::Closed { error });
    }

    fn ready(&mut self, caps: Capabilities) {
        if self.tls.is_none() && self.plaintext_caps.is_none() {
            self.plaintext_caps = Some(caps.clone());
        }
        self.caps = Some(caps.clone());
        self.idle = true;
        self.events.push_back(ClientEvent::Ready(caps));
    }

    fn finish(&mut self) {
        if let Some(tx) = self.tx.take() {
            self.events.push_back(ClientEvent::MessageDone(tx.result));
        }
        self.idle = true;
    }

    fn on_reply(&mut self, r: Reply) -> Result<(), Error> {
        let Some(expect) = self.expect.pop_front() else {
            if r.code() == 421 {
                // A server may announce its shutdown at any time.
                return Err(self.fail(Error::GreetingRefused(r)));
            }
            return Err(self.fail(Error::UnsolicitedReply(r)));
        };
        match expect {
            Expect::Greeting if r.code() == 220 => {
                self.greeting = Some(r.clone());
                self.send_line(&format!("EHLO {}", self.config.helo_name), Expect::Ehlo);
            }
            Expect::Greeting => return Err(self.fail(Error::GreetingRefused(r))),
            Expect::Ehlo if r.is_positive() => self.ready(Capabilities::from_ehlo(&r)),
            Expect::Ehlo if r.is_permanent() && self.tls.is_none() => {
                self.send_line(&format!("HELO {}", self.config.helo_name), Expect::Helo);
            }
            Expect::Ehlo => return Err(self.fail(Error::HeloRefused(r))),
            Expect::Helo if !r.is_positive() => return Err(self.fail(Error::HeloRefused(r))),
            Expect::Helo => {
                self.helo_only = true;
                self.ready(Capabilities::default());
            }
            Expect::StartTls if r.code() == 220 => {
                self.awaiting_tls = true;
                self.events.push_back(ClientEvent::StartTls);
            }
            Expect::StartTls => {
                self.starttls_refused = Some(r);
                let caps = self.caps.clone().unwrap_or_default();
                self.ready(caps);
            }
            Expect::Mail => self.on_mail(r),
            Expect::Rcpt(i) => self.on_rcpt(i, r),
            Expect::Data => self.on_data(r),
            Expect::DataEnd => {
                if let Some(tx) = self.tx.as_mut() {
                    tx.result.data = Some(r);
                }
                self.finish();
            }
            Expect::DiscardDot => self.finish(),
            Expect::Rset => self.finish(),
            Expect::Quit => self.close(None),
        }
        Ok(())
    }

    fn on_mail(&mut self, r: Reply) {
        let Some(tx) = self.tx.as_mut() else { return };
        let ok = r.is_positive();
        tx.result.mail = r;
        if tx.pipelined {
            return;
        }
        if ok {
            if let Some(line) = tx.rcpt_lines.first().cloned() {
                self.send_line(&line, Expect::Rcpt(0));
            }
        } else {
            self.finish();
        }
    }

    fn on_rcpt(&mut self, i: usize, r: Reply) {
        let Some(tx) = self.tx.as_mut() else { return };
        if let Some(slot) = tx.result.recipients.get_mut(i) {
            slot.1 = Some(r);
        }
        if tx.pipelined {
            return;
        }
        let next = tx.rcpt_lines.get(i + 1).cloned();
        let any_ok = tx
            .result
            .recipients
            .iter()
            .any(|(_, r)| r.as_ref().is_some_and(Reply::is_positive));
        match next {
            Some(line) => self.send_line(&line, Expect::Rcpt(i + 1)),
            None if any_ok => self.send_line("DATA", Expect::Data),
            None => self.send_line("RSET", Expect::Rset),
        }
    }

    fn on_data(&mut self, r: Reply) {
        let Some(tx) = self.tx.as_mut() else { return };
        let mail_ok = tx.result.mail.is_positive();
        let any_ok = tx
            .result
            .recipients
            .iter()
            .any(|(_, r)| r.as_ref().is_some_and(Reply::is_positive));
        if r.code() == 354 {
            if mail_ok && any_ok {
                let body = std::mem::take(&mut tx.body);
                self.outbuf.extend_from_slice(&body);
                self.expect.push_back(Expect::DataEnd);
            } else {
                // RFC 2920 §3.1: DATA got 354 though no recipient was
                // accepted; end it with an empty message that we ignore.
                self.outbuf.extend_from_slice(b".\r\n");
                self.expect.push_back(Expect::DiscardDot);
            }
        } else {
            tx.result.data = Some(r);
            if mail_ok {
                self.send_line("RSET", Expect::Rset);
            } else {
                self.finish();
            }
        }
    }
}

/// What `bytes` is, when it starts with a TLS record header (content type
/// 20–24, version 3.x): `a TLS alert (fatal, handshake_failure)` and the
/// like. `None` for anything else (plaintext).
fn describe_tls_record(bytes: &[u8]) -> Option<String> {
    let (&kind, &major, &minor) = (bytes.first()?, bytes.get(1)?, bytes.get(2)?);
    if !(20..=24).contains(&kind) || major != 3 || minor > 4 {
        return None;
    }
    if kind != 21 {
        let what = match kind {
            20 => "change_cipher_spec",
            22 => "handshake",
            23 => "application_data",
            _ => "heartbeat",
        };
        return Some(format!("a TLS {what} record"));
    }
    let level = match bytes.get(5) {
        Some(1) => "warning",
        Some(2) => "fatal",
        _ => "unknown level",
    };
    let description = match bytes.get(6) {
        Some(&d) => match d {
            0 => "close_notify".to_owned(),
            10 => "unexpected_message".to_owned(),
            20 => "bad_record_mac".to_owned(),
            40 => "handshake_failure".to_owned(),
            42 => "bad_certificate".to_owned(),
            47 => "illegal_parameter".to_owned(),
            50 => "decode_error".to_owned(),
            70 => "protocol_version".to_owned(),
            71 => "insufficient_security".to_owned(),
            80 => "internal_error".to_owned(),
            112 => "unrecognized_name".to_owned(),
            other => format!("alert {other}"),
        },
        None => "truncated".to_owned(),
    };
    Some(format!("a TLS alert ({level}, {description})"))
}

/// Normalises line endings to CRLF, doubles leading dots (RFC 5321
/// §4.5.2), and appends the `<CRLF>.<CRLF>` terminator.
pub fn dot_stuff(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / 64 + 5);
    let mut at_line_start = true;
    let mut i = 0;
    while let Some(&b) = body.get(i) {
        i += 1;
        match b {
            b'\r' => {
                if body.get(i) == Some(&b'\n') {
                    i += 1;
                }
                out.extend_from_slice(b"\r\n");
                at_line_start = true;
            }
            b'\n' => {
                out.extend_from_slice(b"\r\n");
                at_line_start = true;
            }
            _ => {
                if at_line_start && b == b'.' {
                    out.push(b'.');
                }
                out.push(b);
                at_line_start = false;
            }
        }
    }
    if !at_line_start {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
