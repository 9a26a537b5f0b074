//! `establish`, the client's way to a ready connection, against servers on
//! loopback: the caller's policy is asked at every TLS shortfall (STARTTLS
//! not offered, refused, handshake failed, REQUIRETLS missing after TLS)
//! and its answer is obeyed: go on in cleartext, or QUIT without sending.

mod common;

use std::time::Instant;

use common::{Pki, serve_one};
use portcullis_smtp_tls::*;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// A server that answers each command line starting with a key with the
/// reply; `STARTTLS` answered `220` upgrades with `tls`. Returns the
/// commands it received.
async fn scripted(
    script: &'static [(&'static str, &'static str)],
    tls: Option<TlsAcceptor>,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut seen = Vec::new();
        let upgrade = converse(tcp, script, &mut seen, true).await;
        if let (Some(tcp), Some(acceptor)) = (upgrade, tls)
            && let Ok(tls) = acceptor.accept(tcp).await
        {
            converse(tls, script, &mut seen, false).await;
        }
        seen
    });
    (addr, handle)
}

/// Runs the script until EOF, QUIT, or a `220` to STARTTLS (then hands the
/// stream back for the upgrade).
async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    script: &[(&str, &str)],
    seen: &mut Vec<String>,
    greet: bool,
) -> Option<S> {
    let mut stream = BufReader::new(stream);
    if greet {
        stream.write_all(b"220 mx.test ESMTP\r\n").await.ok()?;
    }
    let mut line = String::new();
    loop {
        line.clear();
        if stream.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let command = line.trim_end().to_owned();
        seen.push(command.clone());
        let reply = script
            .iter()
            .find(|(k, _)| command.starts_with(k))
            .map_or("250 ok\r\n", |(_, r)| r);
        stream.write_all(reply.as_bytes()).await.ok()?;
        if command == "QUIT" {
            return None;
        }
        if command == "STARTTLS" && reply.starts_with("220") {
            return Some(stream.into_inner());
        }
    }
}

async fn connect(addr: std::net::SocketAddr, pki: &Pki) -> ClientConnection<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let session = ClientSession::new(ClientConfig::new("client.test"), Instant::now());
    ClientConnection::new(
        tcp,
        session,
        pki.connector(),
        ServerName::try_from("mx.test").unwrap(),
    )
}

const STARTTLS: StartTlsPlan = StartTlsPlan {
    starttls: true,
    require_requiretls: false,
};

const NO_STARTTLS_OFFERED: &[(&str, &str)] = &[("EHLO", "250-mx.test\r\n250 PIPELINING\r\n")];

#[tokio::test]
async fn not_offered_goes_on_or_quits_as_the_caller_says() {
    let pki = Pki::new();
    for answer in [OnShortfall::Continue, OnShortfall::Quit] {
        let (addr, server) = scripted(NO_STARTTLS_OFFERED, None).await;
        let mut conn = connect(addr, &pki).await;
        let mut asked = Vec::new();
        let result = establish(&mut conn, STARTTLS, |s| {
            asked.push(s.clone());
            answer
        })
        .await;
        assert_eq!(
            asked,
            [Shortfall::NotOffered(TlsOutcome::StartTlsNotOffered)]
        );
        match answer {
            OnShortfall::Continue => {
                let ready = result.unwrap();
                assert_eq!(ready.tls, TlsOutcome::StartTlsNotOffered);
                quit(&mut conn).await;
            }
            OnShortfall::Quit => {
                let err = result.unwrap_err();
                assert_eq!(
                    err,
                    EstablishError::Shortfall(Shortfall::NotOffered(
                        TlsOutcome::StartTlsNotOffered
                    ))
                );
            }
        }
        let seen = server.await.unwrap();
        assert_eq!(seen.last().map(String::as_str), Some("QUIT"), "{seen:?}");
        assert!(!seen.iter().any(|c| c.starts_with("MAIL")));
    }
}

#[tokio::test]
async fn refused_starttls_is_a_shortfall() {
    let pki = Pki::new();
    let (addr, server) = scripted(
        &[
            ("EHLO", "250-mx.test\r\n250 STARTTLS\r\n"),
            ("STARTTLS", "454 4.7.0 TLS not available\r\n"),
        ],
        None,
    )
    .await;
    let mut conn = connect(addr, &pki).await;
    let err = establish(&mut conn, STARTTLS, |_| OnShortfall::Quit)
        .await
        .unwrap_err();
    let EstablishError::Shortfall(Shortfall::Refused(reply)) = err else {
        panic!("{err:?}")
    };
    assert_eq!(reply.code(), 454);
    assert_eq!(
        server.await.unwrap().last().map(String::as_str),
        Some("QUIT")
    );
}

#[tokio::test]
async fn without_starttls_in_the_plan_nothing_is_asked() {
    let pki = Pki::new();
    let (addr, server) = serve_one(TlsMode::Preferred, &pki).await;
    let mut conn = connect(addr, &pki).await;
    let plan = StartTlsPlan {
        starttls: false,
        require_requiretls: false,
    };
    let ready = establish(&mut conn, plan, |s| panic!("asked about {s:?}"))
        .await
        .unwrap();
    assert_eq!(ready.tls, TlsOutcome::NotAttempted);
    assert!(ready.capabilities.starttls);
    quit(&mut conn).await;
    assert!(server.await.unwrap().tls.is_none());
}

#[tokio::test]
async fn requiretls_is_checked_after_tls() {
    let pki = Pki::new();
    let plan = StartTlsPlan {
        starttls: true,
        require_requiretls: true,
    };
    // Our own server advertises REQUIRETLS once TLS is up.
    let (addr, server) = serve_one(TlsMode::Preferred, &pki).await;
    let mut conn = connect(addr, &pki).await;
    let ready = establish(&mut conn, plan, |s| panic!("asked about {s:?}"))
        .await
        .unwrap();
    assert!(ready.tls.is_established());
    assert!(ready.capabilities.requiretls);
    quit(&mut conn).await;
    server.await.unwrap();

    // A server that does not: the caller is asked, and QUIT ends it.
    let (addr, server) = scripted(
        &[
            ("EHLO", "250-mx.test\r\n250 STARTTLS\r\n"),
            ("STARTTLS", "220 2.0.0 go ahead\r\n"),
        ],
        Some(pki.acceptor()),
    )
    .await;
    let mut conn = connect(addr, &pki).await;
    let mut asked = Vec::new();
    let err = establish(&mut conn, plan, |s| {
        asked.push(s.clone());
        OnShortfall::Quit
    })
    .await
    .unwrap_err();
    assert_eq!(asked, [Shortfall::RequireTlsNotOffered]);
    assert_eq!(
        err,
        EstablishError::Shortfall(Shortfall::RequireTlsNotOffered)
    );
    let seen = server.await.unwrap();
    assert_eq!(seen.last().map(String::as_str), Some("QUIT"), "{seen:?}");
}

#[tokio::test]
async fn a_failed_handshake_is_reported_and_ends_the_connection() {
    let pki = Pki::new();
    let stranger = Pki::new();
    let (addr, _server) = serve_one(TlsMode::Preferred, &stranger).await;
    // Our client trusts `pki`, not the server's certificate.
    let mut conn = connect(addr, &pki).await;
    let mut asked = Vec::new();
    let err = establish(&mut conn, STARTTLS, |s| {
        asked.push(s.clone());
        OnShortfall::Continue
    })
    .await
    .unwrap_err();
    let EstablishError::Shortfall(Shortfall::HandshakeFailed(why)) = &err else {
        panic!("{err:?}")
    };
    assert!(why.contains("certificate"), "{why}");
    assert_eq!(
        asked.len(),
        1,
        "the caller learns why even though nothing can go on"
    );
}
