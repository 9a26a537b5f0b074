//! Untrusted client bytes against the server side of smtp-tls: every line
//! through the command parser (with a round-trip check on what parses), then
//! the whole input through two server sessions side by side, one handing
//! messages over whole and one streaming them, in every TLS mode, split at
//! input-chosen points, with decisions alternating between accept and reject
//! and a simulated TLS handshake whenever STARTTLS is accepted. Both sessions
//! must write the same bytes and report the same messages.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use portcullis_smtp_tls::{
    Advertise, Command, EhloExtension, Envelope, Reply, ServerConfig, ServerEvent, ServerSession,
    TlsInfo, TlsMode,
};

/// What the embedder learnt, with streamed messages folded into whole ones.
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
    accept: bool,
}

impl Side {
    fn new(mode: TlsMode, stream: bool, now: Instant) -> Self {
        let mut config = ServerConfig::new("mx.fuzz");
        config.tls = mode;
        config.max_message_size = 4096;
        config.stream_message_data = stream;
        config
            .advertise(EhloExtension::new("X-FUZZ a=1", Advertise::WithTls).unwrap())
            .unwrap();
        Side {
            session: ServerSession::new(config, now),
            seen: Vec::new(),
            out: Vec::new(),
            streaming: None,
            accept: true,
        }
    }

    fn decide(&mut self) {
        let r = if self.accept {
            self.session.accept()
        } else {
            self.session.reject(Reply::new(550, "5.7.1", "no").unwrap())
        };
        r.unwrap();
        self.accept = !self.accept;
    }

    /// Drains output and events, as a driver does after every input.
    fn drain(&mut self, mode: TlsMode, now: Instant) {
        loop {
            if let Some(o) = self.session.poll_transmit() {
                self.out.extend_from_slice(&o);
            }
            let Some(ev) = self.session.poll_event() else {
                break;
            };
            match ev {
                ServerEvent::Mail { .. } | ServerEvent::Rcpt { .. } => {
                    self.seen.push(Seen::Event(ev));
                    self.decide();
                }
                ServerEvent::Message { envelope, body } => {
                    self.seen.push(Seen::Message(envelope, body));
                    self.decide();
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
                    self.decide();
                }
                ServerEvent::MessageRefused { .. } => {
                    if self.session.config().stream_message_data {
                        assert!(self.streaming.take().is_some(), "refusal without start");
                    }
                    self.seen.push(Seen::Event(ev));
                }
                ServerEvent::StartTls => {
                    assert!(mode != TlsMode::Off);
                    let info = TlsInfo {
                        protocol: "TLSv1_3".into(),
                        cipher: "x".into(),
                        peer_certificates: vec![],
                    };
                    self.session.handle_tls_established(now, info).unwrap();
                    self.seen.push(Seen::Event(ServerEvent::StartTls));
                }
                ServerEvent::Closed(_) => {
                    // A message cut off by the close is never accepted.
                    self.streaming = None;
                    self.seen.push(Seen::Event(ev));
                }
                other => {
                    self.seen.push(Seen::Event(other));
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    for line in data.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match Command::parse(line) {
            Ok(cmd) => {
                let again = Command::parse(cmd.to_string().as_bytes());
                assert_eq!(
                    again.as_ref(),
                    Ok(&cmd),
                    "round trip of {:?}",
                    String::from_utf8_lossy(line)
                );
            }
            Err(e) => {
                let _ = e.reply();
            }
        }
    }

    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    let mode = match selector % 3 {
        0 => TlsMode::Off,
        1 => TlsMode::Preferred,
        _ => TlsMode::Required,
    };
    let mut now = Instant::now();
    let mut whole = Side::new(mode, false, now);
    let mut streamed = Side::new(mode, true, now);
    let chunk = usize::from(selector / 3 % 16) + 1;
    whole.drain(mode, now);
    streamed.drain(mode, now);
    for piece in input.chunks(chunk) {
        now += Duration::from_secs(1);
        let a = whole.session.handle_input(now, piece);
        let b = streamed.session.handle_input(now, piece);
        assert_eq!(a, b);
        if a.is_err() {
            assert!(whole.session.is_closed() && streamed.session.is_closed());
            break;
        }
        whole.drain(mode, now);
        streamed.drain(mode, now);
    }
    for side in [&mut whole, &mut streamed] {
        side.session.handle_timeout(now + Duration::from_secs(3600));
        assert!(side.session.is_closed());
        side.drain(mode, now);
    }
    assert_eq!(
        whole.out, streamed.out,
        "the two sessions answered differently"
    );
    assert_eq!(
        whole.seen, streamed.seen,
        "the embedder learnt different things"
    );
});
