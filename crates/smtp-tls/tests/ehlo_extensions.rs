//! The EHLO-extension hook through the public API: an embedder's keywords
//! appear in the TLS state they were added for, next to the session's own,
//! and this crate's client reads them back.

use std::time::Instant;

use portcullis_smtp_tls::{
    Advertise, Capabilities, EhloExtension, ExtensionError, Reply, ServerConfig, ServerSession,
    TlsInfo, TlsMode,
};

fn config(mode: TlsMode) -> ServerConfig {
    let mut c = ServerConfig::new("mx.test");
    c.tls = mode;
    for (line, when) in [
        ("DSN", Advertise::Always),
        ("AUTH LOGIN", Advertise::BeforeTls),
        ("AUTH PLAIN LOGIN", Advertise::WithTls),
        ("X-VENDOR a=1", Advertise::WithTls),
    ] {
        c.advertise(EhloExtension::new(line, when).unwrap())
            .unwrap();
    }
    c
}

/// The EHLO reply's lines after the greeting line.
fn ehlo(s: &mut ServerSession) -> Vec<String> {
    let _ = s.poll_transmit();
    s.handle_input(Instant::now(), b"EHLO client.test\r\n")
        .unwrap();
    let out = s.poll_transmit().unwrap();
    let (reply, used) = Reply::parse(&out).unwrap().unwrap();
    assert_eq!((reply.code(), used), (250, out.len()));
    reply.lines()[1..].to_vec()
}

fn tls() -> TlsInfo {
    TlsInfo {
        protocol: "TLSv1.3".into(),
        cipher: "TLS_AES_128_GCM_SHA256".into(),
        peer_certificates: vec![],
    }
}

#[test]
fn extensions_follow_the_tls_state() {
    let mut s = ServerSession::new(config(TlsMode::Preferred), Instant::now());
    let before = ehlo(&mut s);
    assert_eq!(
        before,
        [
            "PIPELINING",
            "SIZE 26214400",
            "8BITMIME",
            "ENHANCEDSTATUSCODES",
            "SMTPUTF8",
            "DSN",
            "AUTH LOGIN",
            "STARTTLS",
        ]
    );

    s.handle_input(Instant::now(), b"STARTTLS\r\n").unwrap();
    let _ = s.poll_transmit();
    s.handle_tls_established(Instant::now(), tls()).unwrap();
    let after = ehlo(&mut s);
    assert_eq!(
        after[5..],
        ["DSN", "AUTH PLAIN LOGIN", "X-VENDOR a=1", "REQUIRETLS"]
    );

    // This crate's client sees the same lines.
    let reply = Reply::parse(b"250-mx.test\r\n250-DSN\r\n250 AUTH PLAIN LOGIN\r\n")
        .unwrap()
        .unwrap()
        .0;
    let caps = Capabilities::from_ehlo(&reply);
    assert_eq!(caps.keywords, ["DSN", "AUTH PLAIN LOGIN"]);
}

#[test]
fn required_tls_still_refuses_before_starttls() {
    let mut s = ServerSession::new(config(TlsMode::Required), Instant::now());
    assert!(ehlo(&mut s).contains(&"AUTH LOGIN".to_string()));
    s.handle_input(Instant::now(), b"MAIL FROM:<a@client.test>\r\n")
        .unwrap();
    let out = String::from_utf8(s.poll_transmit().unwrap()).unwrap();
    assert_eq!(out, "530 5.7.0 Must issue a STARTTLS command first\r\n");
}

#[test]
fn helo_and_the_session_owned_keywords_are_untouched() {
    let mut s = ServerSession::new(config(TlsMode::Off), Instant::now());
    let _ = s.poll_transmit();
    s.handle_input(Instant::now(), b"HELO client.test\r\n")
        .unwrap();
    assert_eq!(s.poll_transmit().unwrap(), b"250 mx.test\r\n");

    let mut c = ServerConfig::new("mx.test");
    for owned in ["STARTTLS", "requiretls", "SIZE 1", "CHUNKING"] {
        assert!(matches!(
            EhloExtension::new(owned, Advertise::Always),
            Err(ExtensionError::OwnedBySession(_))
        ));
    }
    c.advertise(EhloExtension::new("DSN", Advertise::BeforeTls).unwrap())
        .unwrap();
    assert_eq!(
        c.advertise(EhloExtension::new("dsn", Advertise::Always).unwrap()),
        Err(ExtensionError::Duplicate("DSN".into()))
    );
    assert_eq!(c.extensions().len(), 1);
}
