//! The client side of issue 10: a message larger than the server's SIZE is
//! not sent (item 11); DSN parameters go only to a server that advertises
//! DSN (item 9); TLS records a server sends right after its `220` to
//! STARTTLS are a failed handshake, not an injection (item 16); a handshake
//! the server never completes ends at its deadline (item 1).

use std::time::{Duration, Instant};

use portcullis_smtp_tls::{
    ClientConfig, ClientConnection, ClientEvent, ClientSession, Envelope, Error, EstablishError,
    ForwardPath, MailParams, Notify, OnShortfall, OriginalRecipient, RcptParams, Ret, ReversePath,
    Shortfall, StartTlsPlan, establish,
};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

mod common;

fn ready(ehlo: &str) -> ClientSession {
    let now = Instant::now();
    let mut c = ClientSession::new(ClientConfig::new("client.test"), now);
    c.handle_input(now, b"220 mx.test ESMTP\r\n").unwrap();
    let _ = c.poll_transmit();
    c.handle_input(now, ehlo.as_bytes()).unwrap();
    while c.poll_event().is_some() {}
    c
}

fn envelope(params: MailParams) -> Envelope {
    Envelope {
        from: ReversePath::parse("<a@c.test>").unwrap(),
        params,
        to: vec![
            ForwardPath::parse("<b@mx.test>").unwrap(),
            ForwardPath::parse("<c@mx.test>").unwrap(),
        ],
    }
}

#[test]
fn a_message_larger_than_the_servers_size_is_not_sent() {
    let mut c = ready("250-mx.test\r\n250-PIPELINING\r\n250 SIZE 100\r\n");
    let body = vec![b'x'; 200];
    match c.send_message(envelope(MailParams::default()), &body) {
        Err(Error::MessageTooLarge { size, limit: 100 }) => assert!(size > 200),
        other => panic!("{other:?}"),
    }
    assert_eq!(c.poll_transmit(), None, "nothing was sent");
    // SIZE 0 means no fixed limit.
    let mut c = ready("250-mx.test\r\n250 SIZE 0\r\n");
    c.send_message(envelope(MailParams::default()), &body)
        .unwrap();
}

#[test]
fn dsn_parameters_need_dsn_and_are_sent_with_it() {
    let params = MailParams {
        ret: Some(Ret::Headers),
        envid: Some("Q+2B1".into()),
        ..MailParams::default()
    };
    let rcpt = vec![
        RcptParams {
            notify: Some(Notify {
                success: true,
                failure: true,
                delay: false,
            }),
            orcpt: Some(OriginalRecipient {
                addr_type: "rfc822".into(),
                xtext: "b+40mx.test".into(),
            }),
        },
        RcptParams {
            notify: Some(Notify::NEVER),
            orcpt: None,
        },
    ];
    let mut c = ready("250-mx.test\r\n250 PIPELINING\r\n");
    assert_eq!(
        c.send_message_with(envelope(params.clone()), rcpt.clone(), b"x\r\n"),
        Err(Error::ExtensionNotOffered("DSN"))
    );
    let mut c = ready("250-mx.test\r\n250-PIPELINING\r\n250 DSN\r\n");
    assert!(c.capabilities().unwrap().dsn);
    c.send_message_with(envelope(params), rcpt, b"x\r\n")
        .unwrap();
    let sent = String::from_utf8(c.poll_transmit().unwrap()).unwrap();
    assert_eq!(
        sent,
        "MAIL FROM:<a@c.test> RET=HDRS ENVID=Q+2B1\r\nRCPT TO:<b@mx.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b+40mx.test\r\nRCPT TO:<c@mx.test> NOTIFY=NEVER\r\nDATA\r\n"
    );
}

#[test]
fn tls_records_after_the_220_are_a_handshake_failure_not_injection() {
    let now = Instant::now();
    // A fatal handshake_failure alert in the same read as the 220.
    let mut c = ready("250-mx.test\r\n250 STARTTLS\r\n");
    c.start_tls().unwrap();
    let _ = c.poll_transmit();
    c.handle_input(
        now,
        b"220 2.0.0 Ready to start TLS\r\n\x15\x03\x03\x00\x02\x02\x28",
    )
    .unwrap();
    let events: Vec<ClientEvent> = std::iter::from_fn(|| c.poll_event()).collect();
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, ClientEvent::InjectionAttempt { .. })),
        "{events:?}"
    );
    assert_eq!(
        c.tls_records_before_handshake().as_deref(),
        Some(
            "the server sent a TLS alert (fatal, handshake_failure) right after its 220 to STARTTLS, before our ClientHello"
        )
    );
    // Plaintext that looks like SMTP is still injection.
    let mut c = ready("250-mx.test\r\n250 STARTTLS\r\n");
    c.start_tls().unwrap();
    let _ = c.poll_transmit();
    c.handle_input(
        now,
        b"220 2.0.0 Ready to start TLS\r\n250-mx.test\r\n250 OK\r\n",
    )
    .unwrap();
    let events: Vec<ClientEvent> = std::iter::from_fn(|| c.poll_event()).collect();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, ClientEvent::InjectionAttempt { discarded: 21 }))
    );
    assert_eq!(c.tls_records_before_handshake(), None);
}

/// A scripted server: greeting, EHLO with STARTTLS, then `after_220`
/// right behind its 220 to STARTTLS; then it waits (and never speaks TLS).
async fn scripted(after_220: &'static [u8]) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        tcp.write_all(b"220 mx.test ESMTP\r\n").await.unwrap();
        let mut buf = [0u8; 2048];
        let mut seen = Vec::new();
        loop {
            let n = tcp.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                return;
            }
            seen.extend_from_slice(&buf[..n]);
            if seen.ends_with(b"EHLO client.test\r\n") {
                seen.clear();
                tcp.write_all(b"250-mx.test\r\n250 STARTTLS\r\n")
                    .await
                    .unwrap();
            } else if seen.ends_with(b"STARTTLS\r\n") {
                let mut reply = b"220 2.0.0 Ready to start TLS\r\n".to_vec();
                reply.extend_from_slice(after_220);
                tcp.write_all(&reply).await.unwrap();
                // Hold the connection; read (and ignore) the ClientHello.
                while tcp.read(&mut buf).await.unwrap_or(0) > 0 {}
                return;
            }
        }
    });
    addr
}

async fn establish_against(addr: std::net::SocketAddr) -> (EstablishError, usize) {
    let pki = common::Pki::new();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut config = ClientConfig::new("client.test");
    config.tls_handshake_timeout = Duration::from_millis(300);
    let session = ClientSession::new(config, Instant::now());
    let mut conn = ClientConnection::new(
        tcp,
        session,
        pki.connector(),
        ServerName::try_from("mx.test").unwrap(),
    );
    let plan = StartTlsPlan {
        starttls: true,
        require_requiretls: false,
    };
    let result = tokio::time::timeout(
        Duration::from_secs(30),
        establish(&mut conn, plan, |_| OnShortfall::Quit),
    )
    .await
    .expect("establish did not end within 30 s");
    (result.unwrap_err(), conn.injected_bytes())
}

#[tokio::test]
async fn an_alert_behind_the_220_fails_the_handshake_over_a_socket() {
    let addr = scripted(b"\x15\x03\x03\x00\x02\x02\x28").await;
    let (err, injected) = establish_against(addr).await;
    match err {
        EstablishError::Shortfall(Shortfall::HandshakeFailed(why)) => {
            assert!(
                why.contains("TLS alert (fatal, handshake_failure)"),
                "{why}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(injected, 0, "an alert is not an injection attempt");
}

#[tokio::test]
async fn a_handshake_the_server_never_completes_ends_at_the_deadline() {
    let addr = scripted(b"").await;
    let (err, _) = establish_against(addr).await;
    match err {
        EstablishError::Shortfall(Shortfall::HandshakeFailed(why)) => assert!(
            why.contains("did not complete the TLS handshake within 300 ms"),
            "{why}"
        ),
        other => panic!("{other:?}"),
    }
}
