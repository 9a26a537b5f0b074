//! Every wait of a server session has a deadline (issue 10, items 1 and 2):
//! a TLS handshake that stalls after `220 Ready to start TLS`, a DATA phase
//! a client keeps alive with one byte a second, and a whole session. The
//! sans-IO tests move a simulated clock; the socket tests use real
//! connections with short configured deadlines (and waits bounded far
//! above them, so they are no timing assertions).

use std::time::{Duration, Instant};

use portcullis_smtp_tls::{
    CloseReason, ServerConfig, ServerConnection, ServerEvent, ServerSession, TlsMode,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

mod common;

fn config() -> ServerConfig {
    let mut c = ServerConfig::new("mx.test");
    c.tls = TlsMode::Preferred;
    c.idle_timeout = Duration::from_secs(300);
    c.tls_handshake_timeout = Duration::from_secs(20);
    c.data_timeout = Duration::from_secs(60);
    c.session_timeout = Duration::from_secs(3600);
    c
}

fn drain(s: &mut ServerSession) -> (String, Vec<ServerEvent>) {
    let mut out = Vec::new();
    let mut events = Vec::new();
    loop {
        if let Some(o) = s.poll_transmit() {
            out.extend_from_slice(&o);
        }
        let Some(ev) = s.poll_event() else { break };
        if matches!(
            ev,
            ServerEvent::Mail { .. } | ServerEvent::Rcpt { .. } | ServerEvent::Message { .. }
        ) {
            s.accept().unwrap();
        }
        events.push(ev);
    }
    (String::from_utf8_lossy(&out).into_owned(), events)
}

fn closed_by(events: &[ServerEvent]) -> Option<CloseReason> {
    events.iter().find_map(|e| match e {
        ServerEvent::Closed(end) => Some(end.reason),
        _ => None,
    })
}

#[test]
fn a_stalled_handshake_ends_at_its_own_deadline_without_a_reply() {
    let t0 = Instant::now();
    let mut s = ServerSession::new(config(), t0);
    s.handle_input(t0, b"EHLO c.test\r\nSTARTTLS\r\n").unwrap();
    let _ = drain(&mut s);
    assert!(s.is_awaiting_tls());
    // The idle timeout (300 s) does not hold the connection: the handshake
    // deadline (20 s) does.
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(20)));
    s.handle_timeout(t0 + Duration::from_secs(19));
    assert!(!s.is_closed());
    s.handle_timeout(t0 + Duration::from_secs(20));
    let (out, events) = drain(&mut s);
    assert_eq!(out, "", "no plaintext reply to a client that expects TLS");
    assert_eq!(closed_by(&events), Some(CloseReason::TlsHandshakeTimeout));
}

#[test]
fn a_one_byte_a_second_data_phase_ends_at_the_data_deadline() {
    let t0 = Instant::now();
    let mut s = ServerSession::new(config(), t0);
    s.handle_input(
        t0,
        b"EHLO c.test\r\nMAIL FROM:<a@c.test>\r\nRCPT TO:<b@mx.test>\r\nDATA\r\n",
    )
    .unwrap();
    let (out, _) = drain(&mut s);
    assert!(
        out.ends_with("354 End data with <CR><LF>.<CR><LF>\r\n"),
        "{out}"
    );
    // Each byte resets the idle timer, never the DATA deadline.
    let mut now = t0;
    for _ in 0..59 {
        now += Duration::from_secs(1);
        s.handle_input(now, b"x").unwrap();
        s.handle_timeout(now);
        assert!(!s.is_closed(), "closed early at {:?}", now - t0);
    }
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(60)));
    now += Duration::from_secs(1);
    s.handle_input(now, b"x").unwrap();
    s.handle_timeout(now);
    let (out, events) = drain(&mut s);
    assert_eq!(
        out,
        "421 4.4.2 mx.test Message transfer took too long, closing connection\r\n"
    );
    assert_eq!(closed_by(&events), Some(CloseReason::DataTimeout));
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, ServerEvent::Message { .. })),
        "nothing was accepted"
    );
}

#[test]
fn a_bdat_transfer_has_the_same_deadline() {
    let t0 = Instant::now();
    let mut c = config();
    c.chunking = true;
    let mut s = ServerSession::new(c, t0);
    s.handle_input(
        t0,
        b"EHLO c.test\r\nMAIL FROM:<a@c.test>\r\nRCPT TO:<b@mx.test>\r\nBDAT 1000\r\n",
    )
    .unwrap();
    let _ = drain(&mut s);
    let mut now = t0;
    while !s.is_closed() && now < t0 + Duration::from_secs(120) {
        now += Duration::from_secs(1);
        s.handle_input(now, b"y").unwrap();
        s.handle_timeout(now);
    }
    let (out, events) = drain(&mut s);
    assert_eq!(now, t0 + Duration::from_secs(60));
    assert!(out.ends_with("Message transfer took too long, closing connection\r\n"));
    assert_eq!(closed_by(&events), Some(CloseReason::DataTimeout));
}

#[test]
fn a_busy_session_ends_at_the_session_deadline_and_idle_still_applies() {
    let t0 = Instant::now();
    let mut c = config();
    c.session_timeout = Duration::from_secs(100);
    let mut s = ServerSession::new(c, t0);
    let mut now = t0;
    while !s.is_closed() && now < t0 + Duration::from_secs(200) {
        now += Duration::from_secs(10);
        s.handle_input(now, b"NOOP\r\n").unwrap();
        s.handle_timeout(now);
    }
    let (out, events) = drain(&mut s);
    assert_eq!(now, t0 + Duration::from_secs(100));
    assert!(
        out.ends_with("421 4.4.2 mx.test Session time limit reached, closing connection\r\n"),
        "{out}"
    );
    assert_eq!(closed_by(&events), Some(CloseReason::SessionTimeout));

    let mut s = ServerSession::new(config(), t0);
    s.handle_timeout(t0 + Duration::from_secs(300));
    let (out, events) = drain(&mut s);
    assert!(out.ends_with("421 4.4.2 mx.test Timeout, closing connection\r\n"));
    assert_eq!(closed_by(&events), Some(CloseReason::Timeout));
}

/// A real listener: a client that sends STARTTLS and then nothing is
/// dropped at the (short) handshake deadline, not held open.
#[tokio::test]
async fn a_client_stalled_in_the_handshake_is_dropped_over_a_socket() {
    let pki = common::Pki::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = pki.acceptor();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut c = ServerConfig::new("mx.test");
        c.tls = TlsMode::Required;
        c.tls_handshake_timeout = Duration::from_millis(300);
        let session = ServerSession::new(c, Instant::now());
        let mut conn = ServerConnection::new(tcp, session, Some(acceptor));
        loop {
            match conn.next_event().await {
                Ok(ServerEvent::Closed(end)) => return Some(end.reason),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    });
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"EHLO c.test\r\nSTARTTLS\r\n").await.unwrap();
    // Read until the server closes: the 220 greeting, EHLO, 220 to
    // STARTTLS, then end of stream. Bounded far above the deadline.
    let mut seen = Vec::new();
    let read_all = async {
        let mut buf = [0u8; 1024];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read_all)
        .await
        .expect("the server still holds a stalled handshake after 30 s");
    let seen = String::from_utf8_lossy(&seen);
    assert!(seen.ends_with("220 2.0.0 Ready to start TLS\r\n"), "{seen}");
    let reason = tokio::time::timeout(Duration::from_secs(30), server)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reason, Some(CloseReason::TlsHandshakeTimeout));
}
