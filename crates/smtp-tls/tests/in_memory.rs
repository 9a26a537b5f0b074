//! A client session and a server session talking to each other in memory
//! with a simulated clock, as quinn-proto's tests do: no sockets, and every
//! byte that crosses is produced by one state machine and parsed by the other.

use std::time::{Duration, Instant};

use portcullis_smtp_tls::*;
use proptest::prelude::*;

struct Pair {
    client: ClientSession,
    server: ServerSession,
    now: Instant,
    received: Vec<(Envelope, Vec<u8>)>,
    client_events: Vec<ClientEvent>,
    injections: usize,
}

fn tls() -> TlsInfo {
    TlsInfo {
        protocol: "TLSv1.3".into(),
        cipher: "TLS_AES_256_GCM_SHA384".into(),
        peer_certificates: vec![],
    }
}

impl Pair {
    fn new(mode: TlsMode) -> Self {
        let now = Instant::now();
        let mut config = ServerConfig::new("mx.test");
        config.tls = mode;
        Self {
            client: ClientSession::new(ClientConfig::new("client.test"), now),
            server: ServerSession::new(config, now),
            now,
            received: Vec::new(),
            client_events: Vec::new(),
            injections: 0,
        }
    }

    /// Moves bytes both ways and handles events until nothing moves. The
    /// "handshake" is simulated by telling both sides TLS is up.
    fn pump(&mut self) {
        loop {
            self.now += Duration::from_millis(10);
            let mut moved = false;
            if let Some(b) = self.server.poll_transmit() {
                moved = true;
                self.client.handle_input(self.now, &b).unwrap();
            }
            if let Some(b) = self.client.poll_transmit() {
                moved = true;
                self.server.handle_input(self.now, &b).unwrap();
            }
            while let Some(ev) = self.server.poll_event() {
                moved = true;
                match ev {
                    ServerEvent::Mail { .. } | ServerEvent::Rcpt { .. } => {
                        self.server.accept().unwrap()
                    }
                    ServerEvent::Message { envelope, body } => {
                        self.received.push((envelope, body));
                        self.server.accept().unwrap();
                    }
                    ServerEvent::StartTls => {
                        // Deliver the 220 first, as a driver would flush it.
                        let b = self.server.poll_transmit().unwrap();
                        self.client.handle_input(self.now, &b).unwrap();
                        self.server.handle_tls_established(self.now, tls()).unwrap();
                    }
                    ServerEvent::InjectionAttempt { discarded } => self.injections += discarded,
                    ServerEvent::Closed(_)
                    | ServerEvent::MessageRefused { .. }
                    | ServerEvent::CommandRefused { .. }
                    | ServerEvent::TlsEstablished(_) => {}
                    other => panic!("unexpected server event {other:?}"),
                }
            }
            while let Some(ev) = self.client.poll_event() {
                moved = true;
                if ev == ClientEvent::StartTls {
                    self.client.handle_tls_established(self.now, tls()).unwrap();
                }
                self.client_events.push(ev);
            }
            if !moved {
                break;
            }
        }
    }
}

fn envelope() -> Envelope {
    Envelope {
        from: ReversePath::parse("<sender@client.test>").unwrap(),
        params: MailParams::default(),
        to: vec![
            ForwardPath::parse("<rcpt@mx.test>").unwrap(),
            ForwardPath::parse("<postmaster>").unwrap(),
        ],
    }
}

fn expect_done(p: &Pair) -> &MessageResult {
    p.client_events
        .iter()
        .find_map(|e| match e {
            ClientEvent::MessageDone(r) => Some(r),
            _ => None,
        })
        .expect("message finished")
}

#[test]
fn client_and_server_exchange_a_message_over_starttls() {
    let mut p = Pair::new(TlsMode::Required);
    p.pump();
    assert!(p.client.is_idle());
    p.client.start_tls().unwrap();
    p.pump();
    assert!(p.client.tls_outcome().is_established());
    assert!(p.server.tls().is_some());
    assert!(p.client.capabilities().unwrap().requiretls);
    let mut env = envelope();
    env.params.requiretls = true;
    p.client
        .send_message(env, b"Subject: hi\n\n.hidden dot\n")
        .unwrap();
    p.pump();
    assert!(expect_done(&p).is_accepted());
    assert_eq!(p.received.len(), 1);
    assert_eq!(p.received[0].1, b"Subject: hi\r\n\r\n.hidden dot\r\n");
    assert!(p.received[0].0.params.requiretls);
    assert_eq!(p.received[0].0.to.len(), 2);
    p.client.quit().unwrap();
    p.pump();
    assert!(p.client.is_closed() && p.server.is_closed());
    assert_eq!(p.injections, 0);
}

#[test]
fn required_server_and_cleartext_client_exchange_no_mail() {
    let mut p = Pair::new(TlsMode::Required);
    p.pump();
    p.client.send_message(envelope(), b"secret\n").unwrap();
    p.pump();
    let r = expect_done(&p);
    assert_eq!(r.mail.code(), 530);
    assert!(!r.is_accepted());
    assert!(p.received.is_empty());
}

#[test]
fn helo_only_peer() {
    // A server session answers EHLO; to see the fallback, the client talks to
    // a scripted peer that only knows HELO.
    let now = Instant::now();
    let mut c = ClientSession::new(ClientConfig::new("client.test"), now);
    c.handle_input(now, b"220 old\r\n").unwrap();
    assert_eq!(c.poll_transmit().unwrap(), b"EHLO client.test\r\n");
    c.handle_input(now, b"500 5.5.1 unknown\r\n").unwrap();
    assert_eq!(c.poll_transmit().unwrap(), b"HELO client.test\r\n");
    c.handle_input(now, b"250 old\r\n").unwrap();
    assert_eq!(c.tls_outcome(), TlsOutcome::NoEsmtp);
}

/// `default` cases unless `PROPTEST_CASES` asks for another number (a long
/// run before a release).
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(64)))]
    /// Any body (line endings normalised to CRLF by the client) arrives
    /// unchanged after dot-stuffing and unstuffing.
    #[test]
    fn bodies_survive_the_trip(lines in proptest::collection::vec("[ -~]{0,80}", 0..20), dots in any::<bool>()) {
        let body: String = lines.iter().map(|l| if dots { format!(".{l}\r\n") } else { format!("{l}\r\n") }).collect();
        let mut p = Pair::new(TlsMode::Off);
        p.pump();
        p.client.send_message(envelope(), body.as_bytes()).unwrap();
        p.pump();
        prop_assert!(expect_done(&p).is_accepted());
        prop_assert_eq!(&p.received[0].1, body.as_bytes());
    }
}
