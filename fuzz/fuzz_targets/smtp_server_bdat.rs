//! BDAT (RFC 3030) against the server side of smtp-tls: the input is read
//! as a script of BDAT chunks (sizes and LAST flags chosen by the input,
//! payload bytes from it), raw command lines, new transactions and DATA,
//! fed to two sessions with CHUNKING on, one handing messages over whole
//! and one streaming them, split at an input-chosen size. Senders are
//! accepted, a recipient is refused when its address says `reject`, and
//! messages are accepted and refused in turn. Both must write the same bytes
//! and report the same messages; no text of a refused or abandoned chunk
//! may turn up as a command, and nothing panics.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use portcullis_smtp_tls::{Envelope, Reply, ServerConfig, ServerEvent, ServerSession, TlsMode};

#[derive(Debug, PartialEq)]
enum Seen {
    Event(ServerEvent),
    Message(Envelope, Vec<u8>),
}

struct Side {
    session: ServerSession,
    seen: Vec<Seen>,
    out: Vec<u8>,
    streaming: Option<(Envelope, Vec<u8>)>,
    accept_message: bool,
}

impl Side {
    fn new(stream: bool, max: u64, now: Instant) -> Self {
        let mut config = ServerConfig::new("mx.fuzz");
        config.tls = TlsMode::Off;
        config.max_message_size = max;
        config.chunking = true;
        config.dsn = true;
        config.stream_message_data = stream;
        Side {
            session: ServerSession::new(config, now),
            seen: Vec::new(),
            out: Vec::new(),
            streaming: None,
            accept_message: true,
        }
    }

    fn decide(&mut self, accept: bool) {
        let r = if accept {
            self.session.accept()
        } else {
            self.session.reject(Reply::new(550, "5.7.1", "no").unwrap())
        };
        r.unwrap();
    }

    /// Messages are accepted and refused in turn.
    fn decide_message(&mut self) {
        self.decide(self.accept_message);
        self.accept_message = !self.accept_message;
    }

    fn drain(&mut self) {
        loop {
            if let Some(o) = self.session.poll_transmit() {
                self.out.extend_from_slice(&o);
            }
            let Some(ev) = self.session.poll_event() else {
                break;
            };
            match ev {
                ServerEvent::Mail { .. } => {
                    self.seen.push(Seen::Event(ev));
                    self.decide(true);
                }
                ServerEvent::Rcpt { ref to } => {
                    let accept = !format!("{to:?}").to_ascii_lowercase().contains("reject");
                    self.seen.push(Seen::Event(ev));
                    self.decide(accept);
                }
                ServerEvent::Message { envelope, body } => {
                    self.seen.push(Seen::Message(envelope, body));
                    self.decide_message();
                }
                ServerEvent::MessageStart { envelope } => {
                    assert!(self.streaming.is_none(), "nested MessageStart");
                    self.streaming = Some((envelope, Vec::new()));
                }
                ServerEvent::MessageData(piece) => {
                    assert!(piece.ends_with(b"\r\n"), "a piece of text is whole lines");
                    self.streaming
                        .as_mut()
                        .expect("data outside a message")
                        .1
                        .extend(piece);
                }
                ServerEvent::MessageEnd => {
                    let (envelope, body) = self.streaming.take().expect("end without start");
                    self.seen.push(Seen::Message(envelope, body));
                    self.decide_message();
                }
                ServerEvent::MessageAbandoned => {
                    assert!(self.streaming.take().is_some(), "abandoned without start");
                }
                ServerEvent::MessageRefused { .. } => {
                    if self.session.config().stream_message_data {
                        assert!(self.streaming.take().is_some(), "refusal without start");
                    }
                    self.seen.push(Seen::Event(ev));
                }
                ServerEvent::Closed(_) => {
                    self.streaming = None;
                    self.seen.push(Seen::Event(ev));
                }
                other => self.seen.push(Seen::Event(other)),
            }
        }
    }
}

/// The script: each step takes an opcode byte and what it needs.
fn script(data: &[u8]) -> Vec<u8> {
    let mut out =
        b"EHLO c.fuzz\r\nMAIL FROM:<a@c.fuzz> RET=HDRS\r\nRCPT TO:<b@mx.fuzz> NOTIFY=SUCCESS\r\n"
            .to_vec();
    let mut rest = data;
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        match op % 6 {
            // A chunk: size from the next byte, payload from the input
            // (possibly shorter than announced: the session waits).
            0 | 1 => {
                let Some((&n, tail)) = rest.split_first() else {
                    break;
                };
                let size = usize::from(n);
                let take = size.min(tail.len());
                let last = op & 0x40 != 0;
                out.extend_from_slice(
                    format!("BDAT {size}{}\r\n", if last { " LAST" } else { "" }).as_bytes(),
                );
                out.extend_from_slice(&tail[..take]);
                rest = &tail[take..];
            }
            // A raw line.
            2 => {
                let end = rest
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(rest.len(), |i| i + 1);
                out.extend_from_slice(&rest[..end]);
                rest = &rest[end..];
            }
            3 => out.extend_from_slice(b"RSET\r\nMAIL FROM:<a@c.fuzz>\r\nRCPT TO:<b@mx.fuzz>\r\n"),
            4 => out.extend_from_slice(b"DATA\r\nx\r\n.\r\n"),
            _ => out.extend_from_slice(b"BDAT 0 LAST\r\n"),
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let input = script(body);
    let max = 64 + u64::from(selector) * 4;
    let mut now = Instant::now();
    let mut whole = Side::new(false, max, now);
    let mut streamed = Side::new(true, max, now);
    let chunk = usize::from(selector % 32) + 1;
    whole.drain();
    streamed.drain();
    for piece in input.chunks(chunk) {
        now += Duration::from_millis(10);
        let a = whole.session.handle_input(now, piece);
        let b = streamed.session.handle_input(now, piece);
        assert_eq!(a, b);
        if a.is_err() {
            break;
        }
        whole.drain();
        streamed.drain();
    }
    for side in [&mut whole, &mut streamed] {
        side.session.handle_timeout(now + Duration::from_secs(7200));
        assert!(side.session.is_closed());
        side.drain();
    }
    assert_eq!(
        whole.out, streamed.out,
        "the two sessions answered differently"
    );
    assert_eq!(
        whole.seen, streamed.seen,
        "the embedder learnt different things"
    );
    // Every accepted message is whole lines.
    for s in &whole.seen {
        if let Seen::Message(_, body) = s {
            assert!(body.is_empty() || body.ends_with(b"\r\n"));
            assert!(!body.contains(&0), "NUL reached the embedder");
        }
    }
});
