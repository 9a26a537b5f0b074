//! End to end, inbound: the real `portcullis` binary with a listener whose
//! certificate was imported with `portcullis cert import` (test PKI), one
//! sender group per inbound TLS mode (selected by the client's loopback
//! source address), and a non-relay group. A real SMTP client over real
//! TLS (smtp-tls + rustls, verifying against the test root) talks to it;
//! accepted mail is routed to a testkit sink. Each test asserts what the
//! client saw, what reached the sink, and what the mail log said.
//!
//! Needs the `portcullis` binary (see `portcullis_testkit::runner`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis_smtp_tls::{
    ClientConfig, ClientConnection, ClientSession, Delivery, Envelope, Error as SmtpError,
    ForwardPath, MailParams, ReversePath, TlsOutcome, TlsRequirement, deliver,
};
use portcullis_testkit::gateway::{GatewayFixture, destination, route};
use portcullis_testkit::pki::TestPki;
use portcullis_testkit::runner::Gateway;
use portcullis_testkit::sink::{Sink, SinkOptions, SinkTls};
use rustls_pki_types::ServerName;
use tokio::net::TcpSocket;
use tokio_rustls::TlsConnector;

const WAIT: Duration = Duration::from_secs(30);

/// Source addresses of the sender groups.
const OFF: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const PREFERRED: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
const REQUIRED: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 4);
const OUTSIDER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 5);

struct Rig {
    pki: TestPki,
    sink: Sink,
    fx: GatewayFixture,
    gateway: Gateway,
}

fn hat() -> String {
    let group = |name: &str, ip: Ipv4Addr, policy: &str| {
        format!(
            "[[listener.hat.sender-group]]\nname = \"{name}\"\nmatch = [\"{ip}\"]\npolicy = \"{policy}\"\n\n"
        )
    };
    let policy = |name: &str, action: &str, tls: &str| {
        format!("[listener.hat.policy.{name}]\naction = \"{action}\"\ntls = \"{tls}\"\n\n")
    };
    group("TLS-OFF", OFF, "RELAY_OFF")
        + &group("TLS-PREFERRED", PREFERRED, "RELAY_PREFERRED")
        + &group("TLS-REQUIRED", REQUIRED, "RELAY_REQUIRED")
        + &group("OUTSIDERS", OUTSIDER, "ACCEPT_ONLY")
        + &policy("RELAY_OFF", "relay", "off")
        + &policy("RELAY_PREFERRED", "relay", "preferred")
        + &policy("RELAY_REQUIRED", "relay", "required")
        + &policy("ACCEPT_ONLY", "accept", "preferred")
}

async fn rig() -> Rig {
    let pki = TestPki::new().unwrap();
    let sink = Sink::start(SinkOptions::new(SinkTls::NotOffered))
        .await
        .unwrap();
    let mut fx = GatewayFixture::new().unwrap();
    fx.import_certificate("inbound", &pki.leaf(&["gateway.test"]).unwrap())
        .unwrap();
    fx.listener =
        "kind = \"private\"\ncertificate = \"inbound\"\nrat.accept = [\"local.test\"]\n".into();
    fx.hat = hat();
    fx.extra = destination("default", "none", "none", false)
        + &route("default", &[sink.addr().to_string()]);
    let gateway = fx.start().unwrap();
    Rig {
        pki,
        sink,
        fx,
        gateway,
    }
}

async fn send_from(
    rig: &Rig,
    source: Ipv4Addr,
    requirement: TlsRequirement,
    to: &str,
    subject: &str,
) -> Result<Delivery, SmtpError> {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(IpAddr::V4(source), 0)).unwrap();
    let stream = socket.connect(rig.fx.listen).await.unwrap();
    let session = ClientSession::new(ClientConfig::new("client.test"), Instant::now());
    let conn = ClientConnection::new(
        stream,
        session,
        TlsConnector::from(Arc::clone(&rig.pki.client_config().unwrap())),
        ServerName::try_from("gateway.test").unwrap(),
    );
    let envelope = Envelope {
        from: ReversePath::parse("<sender@client.test>").unwrap(),
        params: MailParams::default(),
        to: vec![ForwardPath::parse(&format!("<{to}>")).unwrap()],
    };
    let body = format!("Subject: {subject}\r\n\r\nhello\r\n");
    deliver(conn, requirement, envelope, body.as_bytes()).await
}

fn established(d: &Delivery) -> bool {
    matches!(&d.tls, TlsOutcome::Established(i) if i.protocol.starts_with("TLSv1."))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_tls_modes_and_relay_refusal() {
    let rig = rig().await;

    // tls = off: STARTTLS is not offered; the message is relayed.
    let d = send_from(&rig, OFF, TlsRequirement::Preferred, "a@remote.test", "off")
        .await
        .unwrap();
    assert_eq!(d.tls, TlsOutcome::StartTlsNotOffered);
    assert!(d.result.is_accepted(), "{:?}", d.result);
    rig.gateway
        .wait_for_line(
            &["new from 127.0.0.2:", "sender-group TLS-OFF", "tls=off"],
            WAIT,
        )
        .await
        .unwrap();

    // tls = preferred: STARTTLS with the imported certificate (verified by
    // the client against the test root); cleartext still accepted.
    let d = send_from(
        &rig,
        PREFERRED,
        TlsRequirement::Required,
        "b@remote.test",
        "preferred-tls",
    )
    .await
    .unwrap();
    assert!(established(&d), "{:?}", d.tls);
    assert!(d.result.is_accepted());
    let d = send_from(
        &rig,
        PREFERRED,
        TlsRequirement::None,
        "c@remote.test",
        "preferred-plain",
    )
    .await
    .unwrap();
    assert!(d.result.is_accepted(), "{:?}", d.result);
    let line = rig
        .gateway
        .wait_for_line(
            &[
                "new from 127.0.0.3:",
                "sender-group TLS-PREFERRED",
                "tls=preferred",
            ],
            WAIT,
        )
        .await
        .unwrap();
    let icid = line
        .split_whitespace()
        .skip_while(|w| *w != "ICID")
        .nth(1)
        .unwrap()
        .to_string();
    rig.gateway
        .wait_for_line(
            &[
                &format!("ICID {icid} TLS success protocol TLSv1"),
                "cipher TLS",
            ],
            WAIT,
        )
        .await
        .unwrap();

    // tls = required: a cleartext client gets 530 and nothing is queued;
    // the log says it left without STARTTLS. A TLS client is accepted.
    let e = send_from(
        &rig,
        REQUIRED,
        TlsRequirement::None,
        "d@remote.test",
        "required-plain",
    )
    .await;
    match e {
        Ok(d) => {
            assert!(!d.result.is_accepted(), "{:?}", d.result);
            assert_eq!(d.result.mail.code(), 530, "{:?}", d.result);
        }
        Err(e) => panic!("cleartext client to a TLS-required group: {e:?}"),
    }
    rig.gateway
        .wait_for_line(&["TLS required but client left without STARTTLS"], WAIT)
        .await
        .unwrap();
    let d = send_from(
        &rig,
        REQUIRED,
        TlsRequirement::Required,
        "e@remote.test",
        "required-tls",
    )
    .await
    .unwrap();
    assert!(established(&d), "{:?}", d.tls);
    assert!(d.result.is_accepted());

    // A client whose policy is "accept" may not relay: RCPT refused, only
    // the listener's own domain goes through.
    let d = send_from(
        &rig,
        OUTSIDER,
        TlsRequirement::Preferred,
        "victim@elsewhere.test",
        "relay",
    )
    .await
    .unwrap();
    assert!(!d.result.is_accepted());
    let rcpt = d.result.recipients[0].1.as_ref().unwrap();
    assert!(rcpt.code() >= 500, "{rcpt}");
    rig.gateway
        .wait_for_line(&["RCPT <victim@elsewhere.test> refused"], WAIT)
        .await
        .unwrap();
    let d = send_from(
        &rig,
        OUTSIDER,
        TlsRequirement::Preferred,
        "postmaster@local.test",
        "local",
    )
    .await
    .unwrap();
    assert!(d.result.is_accepted(), "{:?}", d.result);

    // Exactly the accepted messages reached the sink, each with its
    // Received header naming the inbound TLS.
    let msgs = rig.sink.wait_for_messages(5, WAIT).await.unwrap();
    let mut subjects: Vec<String> = msgs.iter().filter_map(|m| m.header("Subject")).collect();
    subjects.sort();
    assert_eq!(
        subjects,
        [
            "local",
            "off",
            "preferred-plain",
            "preferred-tls",
            "required-tls"
        ]
    );
    assert!(
        msgs.iter().all(|m| m.tls.is_none()),
        "outbound leg is cleartext here"
    );
    for m in &msgs {
        let subject = m.header("Subject").unwrap();
        let received = m.header("Received").unwrap_or_default();
        assert!(received.contains("gateway.test"), "{received}");
        if subject.ends_with("-tls") {
            assert!(received.contains("TLS"), "{subject}: {received}");
        }
    }
    for rcpt in [
        "a@remote.test",
        "b@remote.test",
        "c@remote.test",
        "e@remote.test",
        "postmaster@local.test",
    ] {
        rig.gateway
            .wait_for_line(&["MID", &format!("delivered to <{rcpt}>")], WAIT)
            .await
            .unwrap();
    }
    assert!(
        rig.gateway
            .lines_with(&["d@remote.test"])
            .iter()
            .all(|l| !l.contains("queued"))
    );
}
