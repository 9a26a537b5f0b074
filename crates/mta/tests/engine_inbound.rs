//! The engine's inbound side driven over real sockets on loopback with
//! smtp-tls's client over real TLS: every inbound TLS mode, the relay
//! check, a HAT reject, the 250-after-spool path through to a sink, and a
//! restart that resumes a queued message.

mod engine_support;

use std::time::Duration;

use engine_support::*;
use portcullis_mta::control::{QueueReply, QueueRequest, RetryWhat};
use portcullis_mta::engine::Engine;
use portcullis_smtp_tls::{Error as SmtpError, TlsOutcome, TlsRequirement};

const BODY: &[u8] = b"Subject: hello\r\n\r\nHello through the gateway.\r\n";

struct Rig {
    _dir: tempfile::TempDir,
    engine: Engine,
    log: LogCapture,
    ca: Ca,
    sink: Sink,
}

impl Rig {
    fn addr(&self) -> std::net::SocketAddr {
        self.engine.local_addrs()[0]
    }
}

/// A gateway with listener `access`, relaying example.net to a TLS sink.
async fn rig(access: portcullis_policy::ListenerAccess) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Inbound Test CA");
    let gw = ca.leaf(&["gw.test"], false);
    let mx = ca.leaf(&["mx.example.net"], false);
    let sink = Sink::start(SinkOptions {
        tls: Some(mx.server_config()),
        ..Default::default()
    })
    .await;
    let log = LogCapture::default();
    let mut s = settings(
        dir.path(),
        access,
        Some(gw.server_config()),
        policy("[[destination]]\ndomain = \"default\"\ntls = \"preferred\"\n"),
        ca.roots(),
        &log,
    );
    s.delivery.routes = vec![route("example.net", "mx.example.net", sink.addr)];
    let engine = Engine::start(s).await.unwrap();
    Rig {
        _dir: dir,
        engine,
        log,
        ca,
        sink,
    }
}

#[tokio::test]
async fn starttls_preferred_message_is_queued_then_relayed_over_tls() {
    let r = rig(relay_access("preferred")).await;
    let d = send(
        r.addr(),
        r.ca.connector(),
        TlsRequirement::Required,
        "alice@local.test",
        &["bob@example.net"],
        BODY,
    )
    .await
    .unwrap();
    assert!(d.result.is_accepted(), "{d:?}");
    assert!(d.tls.is_established());
    let got = r.sink.wait_for(1).await;
    assert_eq!(got.len(), 1, "log:\n{}", r.log.dump());
    let m = &got[0];
    assert_eq!(m.from, "<alice@local.test>");
    assert_eq!(m.to, ["<bob@example.net>"]);
    assert!(
        m.tls.is_some(),
        "outbound leg must be TLS at level preferred"
    );
    let text = String::from_utf8_lossy(&m.body);
    assert!(
        text.starts_with("Received: from client.test ([127.0.0.1])"),
        "{text}"
    );
    assert!(text.contains("with ESMTPS"), "{text}");
    assert!(text.ends_with("Hello through the gateway.\r\n"), "{text}");
    r.log
        .wait_for(&[
            "new from 127.0.0.1",
            "sender-group LOOPBACK policy RELAYED tls=preferred",
        ])
        .await;
    r.log
        .wait_for(&["TLS success protocol TLSv1.3 cipher"])
        .await;
    let queued = r
        .log
        .wait_for(&["queued from <alice@local.test> to 1 recipient"])
        .await;
    let mid = queued.split_whitespace().nth(1).unwrap().to_string();
    let delivered = r
        .log
        .wait_for(&[&format!("MID {mid} delivered to <bob@example.net>")])
        .await;
    assert!(delivered.contains("tls=TLSv1.3"), "{delivered}");
    assert!(delivered.contains("rule=R15"), "{delivered}");
    assert!(delivered.contains("reply=\"250"), "{delivered}");
    r.engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn tls_required_refuses_cleartext_mail_and_logs_why() {
    let r = rig(relay_access("required")).await;
    let d = send(
        r.addr(),
        r.ca.connector(),
        TlsRequirement::None,
        "alice@local.test",
        &["bob@example.net"],
        BODY,
    )
    .await
    .unwrap();
    assert!(!d.result.is_accepted());
    assert_eq!(d.result.mail.code(), 530, "{d:?}");
    let line = r
        .log
        .wait_for(&["TLS required but client left without STARTTLS"])
        .await;
    assert!(line.contains("refused with 530"), "{line}");
    assert!(r.sink.received().is_empty());
    // The same listener takes the message once the client uses STARTTLS.
    let d = send(
        r.addr(),
        r.ca.connector(),
        TlsRequirement::Required,
        "alice@local.test",
        &["bob@example.net"],
        BODY,
    )
    .await
    .unwrap();
    assert!(d.result.is_accepted(), "{d:?}");
    assert_eq!(r.sink.wait_for(1).await.len(), 1);
    r.engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn tls_off_does_not_offer_starttls() {
    let r = rig(relay_access("off")).await;
    let e = send(
        r.addr(),
        r.ca.connector(),
        TlsRequirement::Required,
        "alice@local.test",
        &["bob@example.net"],
        BODY,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e, SmtpError::TlsRequired(TlsOutcome::StartTlsNotOffered)),
        "{e:?}"
    );
    // Cleartext works, and is logged as such.
    let d = send(
        r.addr(),
        r.ca.connector(),
        TlsRequirement::Preferred,
        "alice@local.test",
        &["bob@example.net"],
        BODY,
    )
    .await
    .unwrap();
    assert!(d.result.is_accepted());
    assert!(!d.tls.is_established());
    let got = r.sink.wait_for(1).await;
    assert!(String::from_utf8_lossy(&got[0].body).contains("with ESMTP id"));
    r.log.wait_for(&["tls=off"]).await;
    r.engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn relay_attempt_from_non_relay_client_is_refused() {
    let r = rig(access(
        r#"
        kind = "public"
        rat.accept = ["local.test"]
        [[hat.sender-group]]
        name = "ALL"
        match = ["ALL"]
        policy = "ACCEPTED"
        [hat.policy.ACCEPTED]
        action = "accept"
        tls = "preferred"
        "#,
    ))
    .await;
    let d = send(
        r.addr(),
        r.ca.connector(),
        TlsRequirement::Required,
        "mallory@evil.test",
        &["bob@example.net"],
        BODY,
    )
    .await
    .unwrap();
    assert!(!d.result.is_accepted());
    let reply = d.result.recipients[0].1.as_ref().unwrap();
    assert_eq!(reply.code(), 550);
    assert_eq!(reply.enhanced().unwrap().to_string(), "5.7.1");
    r.log
        .wait_for(&["RCPT <bob@example.net> refused", "relaying"])
        .await;
    assert!(r.log.find(&["queued"]).is_none(), "{}", r.log.dump());
    assert!(r.sink.received().is_empty());
    r.engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn hat_reject_answers_554() {
    let r = rig(access(
        r#"
        kind = "private"
        rat.accept = ["local.test"]
        [[hat.sender-group]]
        name = "BLOCKED"
        match = ["127.0.0.0/8"]
        policy = "BLOCKED"
        [hat.policy.BLOCKED]
        action = "reject"
        "#,
    ))
    .await;
    let e = send(
        r.addr(),
        r.ca.connector(),
        TlsRequirement::None,
        "a@local.test",
        &["b@local.test"],
        BODY,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&e, SmtpError::GreetingRefused(rep) if rep.code() == 554),
        "{e:?}"
    );
    r.log
        .wait_for(&["sender-group BLOCKED policy REJECTED"])
        .await;
    r.log.wait_for(&["rejected by the HAT"]).await;
    r.engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn queued_message_survives_restart_and_is_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Restart CA");
    let gw = ca.leaf(&["gw.test"], false);
    // A port nobody listens on: the first attempt fails and defers.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let log = LogCapture::default();
    let mut s = settings(
        dir.path(),
        relay_access("preferred"),
        Some(gw.server_config()),
        policy("[[destination]]\ndomain = \"default\"\ntls = \"preferred\"\n"),
        ca.roots(),
        &log,
    );
    s.delivery.routes = vec![route("example.net", "mx.example.net", dead)];
    let engine = Engine::start(s.clone()).await.unwrap();
    let d = send(
        engine.local_addrs()[0],
        ca.connector(),
        TlsRequirement::Required,
        "alice@local.test",
        &["bob@example.net", "carol@example.net"],
        BODY,
    )
    .await
    .unwrap();
    assert!(d.result.is_accepted());
    log.wait_for(&["deferred 2 recipient(s)", "retry in 3600s"])
        .await;
    engine.shutdown(Duration::from_secs(5)).await;

    let sink = Sink::start(SinkOptions::default()).await;
    let log2 = LogCapture::default();
    s.log_observer = Some(log2.observer());
    s.delivery.routes = vec![route("example.net", "mx.example.net", sink.addr)];
    let engine = Engine::start(s).await.unwrap();
    // The stored schedule survived the restart: attempt 1 is remembered and
    // the next attempt is still an hour away, so nothing is retried at once.
    log2.wait_for(&[
        "recovered from the spool",
        "1 waiting for their next attempt",
    ])
    .await;
    let queue = engine.queue_service();
    let Ok(QueueReply::List(rows)) = queue.handle(QueueRequest::List).await else {
        panic!("queue list failed");
    };
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].attempts, 1);
    assert!(
        rows[0].next.starts_with("in 59m") || rows[0].next.starts_with("in 1h"),
        "{rows:?}"
    );
    assert!(sink.received().is_empty());
    // The operator asks for a retry: delivered now.
    let retry = QueueRequest::Retry {
        target: RetryWhat::Id(rows[0].id.clone()),
    };
    let done = queue.handle(retry).await.unwrap();
    assert_eq!(
        done,
        QueueReply::Done("1 message(s) scheduled for delivery now".into())
    );
    let got = sink.wait_for(1).await;
    assert_eq!(got.len(), 1, "log:\n{}", log2.dump());
    assert_eq!(got[0].to, ["<bob@example.net>", "<carol@example.net>"]);
    log2.wait_for(&["done"]).await;
    engine.shutdown(Duration::from_secs(5)).await;
    assert!(
        portcullis_mta::spool::Spool::inspect(dir.path().join("spool"))
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn shutdown_closes_sessions_left_open_after_the_grace_delay() {
    let r = rig(relay_access("preferred")).await;
    let mut idle = tokio::net::TcpStream::connect(r.addr()).await.unwrap();
    let mut buf = [0u8; 512];
    let n = tokio::io::AsyncReadExt::read(&mut idle, &mut buf)
        .await
        .unwrap();
    assert!(buf[..n].starts_with(b"220 "));
    r.log.wait_for(&["new from 127.0.0.1"]).await;
    let log = r.log.clone();
    r.engine.shutdown(Duration::from_millis(200)).await;
    assert!(log.find(&["grace delay over"]).is_some(), "{}", log.dump());
    // The client hears why, then the session is gone: the socket reads EOF.
    let mut said = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut idle, &mut said)
        .await
        .unwrap();
    let said = String::from_utf8_lossy(&said);
    assert!(said.starts_with("421 4.3.2 "), "{said:?}");
    assert!(said.ends_with("\r\n"), "{said:?}");
    assert!(
        log.find(&["answered 421 4.3.2"]).is_some(),
        "{}",
        log.dump()
    );
}

/// Reads until `n` more replies are complete (counting final lines).
async fn read_replies(stream: &mut tokio::net::TcpStream, n: usize) -> String {
    use tokio::io::AsyncReadExt;
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while text
        .split("\r\n")
        .filter(|l| l.len() >= 4 && l.as_bytes()[3] == b' ')
        .count()
        < n
    {
        let got = tokio::time::timeout_at(deadline, stream.read(&mut buf))
            .await
            .expect("replies within the deadline")
            .unwrap();
        assert!(got > 0, "connection closed after {text:?}");
        text.push_str(&String::from_utf8_lossy(&buf[..got]));
    }
    text
}

#[tokio::test]
async fn smuggled_message_is_refused_logged_and_the_next_one_streams_through() {
    use tokio::io::AsyncWriteExt;
    let r = rig(relay_access("preferred")).await;
    let mut c = tokio::net::TcpStream::connect(r.addr()).await.unwrap();
    read_replies(&mut c, 1).await;
    // A bare-LF "terminator" with a smuggled transaction behind it, then
    // (after the real end of DATA) a clean message sent in small pieces.
    c.write_all(
        b"EHLO client.test\r\nMAIL FROM:<alice@local.test>\r\nRCPT TO:<bob@example.net>\r\nDATA\r\n\
          Subject: one\r\n\r\nbody\n.\nMAIL FROM:<admin@bank.test>\r\nRCPT TO:<carol@example.net>\r\nDATA\r\nsmuggled\r\n.\r\n",
    )
    .await
    .unwrap();
    let out = read_replies(&mut c, 5).await;
    assert!(out.ends_with("554 5.6.0 Message refused: bare CR or LF in message data (SMTP smuggling protection, RFC 5321 section 2.3.8)\r\n"), "{out}");
    c.write_all(b"MAIL FROM:<alice@local.test>\r\nRCPT TO:<bob@example.net>\r\nDATA\r\n")
        .await
        .unwrap();
    read_replies(&mut c, 3).await;
    for piece in [
        &b"Subject: two\r\n\r\n..dot"[..],
        b"ted\r\nline ",
        b"two\r\n.",
        b"\r\n",
    ] {
        c.write_all(piece).await.unwrap();
    }
    let out = read_replies(&mut c, 1).await;
    assert!(out.starts_with("250 2.0.0 Ok: queued as "), "{out}");
    c.write_all(b"QUIT\r\n").await.unwrap();

    let got = r.sink.wait_for(1).await;
    let text = String::from_utf8_lossy(&got[0].body);
    assert!(text.starts_with("Received: from client.test"), "{text}");
    assert!(
        text.ends_with("+0000\r\nSubject: two\r\n\r\n.dotted\r\nline two\r\n"),
        "{text}"
    );
    let refused = r
        .log
        .wait_for(&["message from <alice@local.test> refused: bare CR or LF"])
        .await;
    assert!(refused.contains("answered 554 5.6.0"), "{refused}");
    r.engine.shutdown(Duration::from_secs(5)).await;
    assert_eq!(
        r.sink.received().len(),
        1,
        "the smuggled message never left"
    );
    assert!(
        r.log.find(&["carol@example.net"]).is_none(),
        "smuggled RCPT ran:\n{}",
        r.log.dump()
    );
}
