//! Every server TLS mode against a client that requires, prefers or refuses
//! TLS, over real rustls on loopback sockets with certificates generated in
//! the test. Each cell states what must happen; a cell where TLS is required
//! on either side never carries a message in cleartext.

mod common;

use common::*;
use portcullis_smtp_tls::*;

#[derive(Debug, Clone, Copy)]
enum Expected {
    /// Delivered over TLS.
    Tls,
    /// Delivered in cleartext, with this outcome.
    Clear(fn(&TlsOutcome) -> bool),
    /// The client refuses to send: TLS required, server does not offer it.
    ClientRefuses,
    /// The server refuses the cleartext transaction with 530.
    ServerRefuses,
}

async fn cell(mode: TlsMode, requirement: TlsRequirement, expected: Expected) {
    let pki = Pki::new();
    let (addr, server) = serve_one(mode, &pki).await;
    let conn = client(addr, pki.connector()).await;
    let body = b"Subject: matrix\r\n\r\nhello\r\n";
    let result = deliver(conn, requirement, envelope(), body).await;
    let got = server.await.unwrap();
    let cell = format!("server {mode:?} x client {requirement:?}");
    assert_eq!(got.error, None, "{cell}");
    assert_eq!(got.injected, 0, "{cell}");
    match expected {
        Expected::Tls => {
            let d = result.unwrap_or_else(|e| panic!("{cell}: {e}"));
            let TlsOutcome::Established(info) = &d.tls else {
                panic!("{cell}: {:?}", d.tls)
            };
            assert!(info.protocol.starts_with("TLSv1."), "{cell}: {info}");
            assert_eq!(
                info.peer_certificates,
                std::slice::from_ref(&pki.cert),
                "{cell}: the client sees the server's chain"
            );
            assert!(d.result.is_accepted(), "{cell}");
            assert_eq!(got.messages.len(), 1, "{cell}");
            assert_eq!(got.messages[0].1, body, "{cell}");
            let server_tls = got
                .tls
                .as_ref()
                .unwrap_or_else(|| panic!("{cell}: server saw no TLS"));
            assert_eq!(server_tls.protocol, info.protocol, "{cell}");
            assert_eq!(server_tls.cipher, info.cipher, "{cell}");
        }
        Expected::Clear(outcome_ok) => {
            let d = result.unwrap_or_else(|e| panic!("{cell}: {e}"));
            assert!(outcome_ok(&d.tls), "{cell}: {:?}", d.tls);
            assert!(d.result.is_accepted(), "{cell}");
            assert_eq!(got.messages.len(), 1, "{cell}");
            assert!(got.tls.is_none(), "{cell}");
        }
        Expected::ClientRefuses => {
            let err = result.expect_err(&cell);
            assert_eq!(
                err,
                Error::TlsRequired(TlsOutcome::StartTlsNotOffered),
                "{cell}"
            );
            assert!(
                err.to_string().contains("does not advertise STARTTLS"),
                "{err}"
            );
            assert!(got.messages.is_empty(), "{cell}");
            assert_eq!(got.end.unwrap().reason, CloseReason::Quit, "{cell}");
        }
        Expected::ServerRefuses => {
            let d = result.unwrap_or_else(|e| panic!("{cell}: {e}"));
            assert_eq!(d.tls, TlsOutcome::NotAttempted, "{cell}");
            assert_eq!(d.result.mail.code(), 530, "{cell}");
            assert_eq!(
                d.result.mail.enhanced().map(|e| e.to_string()).as_deref(),
                Some("5.7.0")
            );
            assert!(!d.result.is_accepted(), "{cell}");
            assert!(got.messages.is_empty(), "{cell}");
            let end = got.end.unwrap();
            assert!(
                end.refused_without_tls >= 1 && end.messages_accepted == 0,
                "{cell}: {end:?}"
            );
        }
    }
}

fn not_offered(o: &TlsOutcome) -> bool {
    *o == TlsOutcome::StartTlsNotOffered
}
fn not_attempted(o: &TlsOutcome) -> bool {
    *o == TlsOutcome::NotAttempted
}

#[tokio::test]
async fn server_off() {
    cell(
        TlsMode::Off,
        TlsRequirement::Required,
        Expected::ClientRefuses,
    )
    .await;
    cell(
        TlsMode::Off,
        TlsRequirement::Preferred,
        Expected::Clear(not_offered),
    )
    .await;
    cell(
        TlsMode::Off,
        TlsRequirement::None,
        Expected::Clear(not_offered),
    )
    .await;
}

#[tokio::test]
async fn server_preferred() {
    cell(TlsMode::Preferred, TlsRequirement::Required, Expected::Tls).await;
    cell(TlsMode::Preferred, TlsRequirement::Preferred, Expected::Tls).await;
    cell(
        TlsMode::Preferred,
        TlsRequirement::None,
        Expected::Clear(not_attempted),
    )
    .await;
}

#[tokio::test]
async fn server_required() {
    cell(TlsMode::Required, TlsRequirement::Required, Expected::Tls).await;
    cell(TlsMode::Required, TlsRequirement::Preferred, Expected::Tls).await;
    cell(
        TlsMode::Required,
        TlsRequirement::None,
        Expected::ServerRefuses,
    )
    .await;
}

#[tokio::test]
async fn untrusted_certificate_is_a_typed_handshake_failure() {
    let pki = Pki::new();
    let other = Pki::new();
    let (addr, server) = serve_one(TlsMode::Required, &pki).await;
    let conn = client(addr, other.connector()).await;
    let err = deliver(conn, TlsRequirement::Required, envelope(), b"x\r\n")
        .await
        .unwrap_err();
    let Error::TlsRequired(TlsOutcome::HandshakeFailed(why)) = &err else {
        panic!("{err:?}")
    };
    assert!(why.contains("certificate"), "{why}");
    let got = server.await.unwrap();
    assert!(got.messages.is_empty());
    assert!(
        matches!(got.error, Some(Error::Handshake(_))),
        "{:?}",
        got.error
    );
}

/// CVE-2011-0411 over a real socket: plaintext pipelined behind STARTTLS is
/// discarded by the server and never executed inside the TLS session.
#[tokio::test]
async fn pipelined_plaintext_behind_starttls_is_discarded_over_real_tls() {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let pki = Pki::new();
    let (addr, server) = serve_one(TlsMode::Preferred, &pki).await;
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut line = String::new();
    let mut reader = BufReader::new(&mut tcp);
    reader.read_line(&mut line).await.unwrap();
    assert!(line.starts_with("220 "), "{line}");
    let injected = "MAIL FROM:<evil@attacker.test>\r\nRCPT TO:<victim@mx.test>\r\n";
    reader
        .get_mut()
        .write_all(format!("EHLO c.test\r\nSTARTTLS\r\n{injected}").as_bytes())
        .await
        .unwrap();
    // Read up to and including the 220 to STARTTLS, byte by byte so that no
    // TLS bytes are consumed here.
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("220 2.0.0 Ready to start TLS\r\n") {
        let mut b = [0u8; 1];
        reader.get_mut().read_exact(&mut b).await.unwrap();
        seen.push(b[0]);
    }
    let domain = rustls_pki_types::ServerName::try_from("mx.test").unwrap();
    let mut tls = pki.connector().connect(domain, tcp).await.unwrap();
    tls.write_all(b"EHLO c.test\r\nQUIT\r\n").await.unwrap();
    let mut rest = String::new();
    tls.read_to_string(&mut rest).await.unwrap();
    assert!(
        rest.contains("250 REQUIRETLS") && rest.contains("221 2.0.0"),
        "{rest}"
    );
    let got = server.await.unwrap();
    assert_eq!(got.injected, injected.len());
    assert!(got.messages.is_empty());
    assert!(got.tls.is_some());
}
