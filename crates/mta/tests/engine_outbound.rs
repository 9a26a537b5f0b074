//! The engine's outbound side against sinks on loopback reached through
//! SMTP routes: each TLS level against peers that offer no STARTTLS, fail
//! the handshake, or present an untrusted, expired, misnamed or good
//! certificate; reference names that differ from the MX name; the
//! cleartext retry and its exemption; fail-over; bounces after a permanent
//! failure and after the queue lifetime. Each test checks what reached the
//! sink, over what TLS, and what the mail log said.

mod engine_support;

use std::sync::Arc;
use std::time::Duration;

use engine_support::*;
use portcullis_mta::engine::{Engine, RouteHost};
use portcullis_policy::{DomainName, HopHost};
use portcullis_smtp_tls::TlsRequirement;

const BODY: &[u8] = b"Subject: outbound\r\n\r\nTesting the outbound leg.\r\n";

struct Rig {
    _dir: tempfile::TempDir,
    engine: Engine,
    log: LogCapture,
    ca: Ca,
}

/// A gateway relaying for 127.0.0.1 with outbound policy `policy_toml`,
/// trusting `ca`, with `routes`.
async fn gateway(
    ca: Ca,
    policy_toml: &str,
    routes: Vec<portcullis_mta::engine::SmtpRoute>,
    tweak: impl FnOnce(&mut portcullis_mta::engine::EngineSettings),
) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let gw = ca.leaf(&["gw.test"], false);
    let log = LogCapture::default();
    let mut s = settings(
        dir.path(),
        relay_access("preferred"),
        Some(gw.server_config()),
        policy(policy_toml),
        ca.roots(),
        &log,
    );
    s.delivery.routes = routes;
    tweak(&mut s);
    let engine = Engine::start(s).await.unwrap();
    Rig {
        _dir: dir,
        engine,
        log,
        ca,
    }
}

impl Rig {
    async fn send(&self, from: &str, to: &[&str]) {
        let d = send(
            self.engine.local_addrs()[0],
            self.ca.connector(),
            TlsRequirement::Required,
            from,
            to,
            BODY,
        )
        .await
        .unwrap();
        assert!(d.result.is_accepted(), "{d:?}");
    }
}

fn level(tls: &str) -> String {
    format!(
        "[[destination]]\ndomain = \"default\"\ntls = \"preferred\"\n[[destination]]\ndomain = \"example.net\"\ntls = \"{tls}\"\n"
    )
}

async fn tls_sink(leaf: &Leaf) -> Sink {
    Sink::start(SinkOptions {
        tls: Some(leaf.server_config()),
        ..Default::default()
    })
    .await
}

#[tokio::test]
async fn preferred_without_starttls_continues_in_cleartext() {
    let sink = Sink::start(SinkOptions::default()).await;
    let r = gateway(
        Ca::new("CA"),
        &level("preferred"),
        vec![route("example.net", "mx.example.net", sink.addr)],
        |s| s.delivery.tls.versions = vec![&rustls::version::TLS13],
    )
    .await;
    r.send("a@local.test", &["b@example.net"]).await;
    let got = sink.wait_for(1).await;
    assert_eq!(got.len(), 1, "{}", r.log.dump());
    assert!(got[0].tls.is_none());
    r.log
        .wait_for(&[
            "TLS not used",
            "does not advertise STARTTLS",
            "continuing in cleartext",
        ])
        .await;
    let l = r.log.wait_for(&["delivered to <b@example.net>"]).await;
    assert!(l.contains("tls=none"), "{l}");
    r.engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn required_without_starttls_defers_and_sends_nothing() {
    let sink = Sink::start(SinkOptions::default()).await;
    let r = gateway(
        Ca::new("CA"),
        &level("required"),
        vec![route("example.net", "mx.example.net", sink.addr)],
        |_| {},
    )
    .await;
    r.send("a@local.test", &["b@example.net"]).await;
    let l = r
        .log
        .wait_for(&["rule=R11", "TLS failed: STARTTLS not available"])
        .await;
    assert!(l.contains("mx.example.net[127.0.0.1]"), "{l}");
    r.log.wait_for(&["message not sent", "4.7.4"]).await;
    r.log.wait_for(&["deferred 1 recipient(s)"]).await;
    assert!(sink.received().is_empty());
    r.engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn required_verify_delivers_to_a_good_certificate() {
    let ca = Ca::new("Good CA");
    let sink = tls_sink(&ca.leaf(&["mx.example.net"], false)).await;
    let r = gateway(
        ca,
        &level("required-verify"),
        vec![route("example.net", "mx.example.net", sink.addr)],
        |_| {},
    )
    .await;
    r.send("a@local.test", &["b@example.net"]).await;
    let got = sink.wait_for(1).await;
    assert_eq!(got.len(), 1, "{}", r.log.dump());
    assert!(got[0].tls.is_some());
    let l = r
        .log
        .wait_for(&["TLS success protocol TLSv1.3", "auth=pkix ok"])
        .await;
    assert!(l.contains("name=mx.example.net"), "{l}");
    let d = r.log.wait_for(&["delivered to <b@example.net>"]).await;
    assert!(d.contains("auth=pkix") && d.contains("rule=R11"), "{d}");
    r.engine.shutdown(Duration::from_secs(5)).await;
}

/// Runs `required-verify` against a sink presenting `leaf`; returns the log.
async fn verify_failure(leaf: Leaf, trusted: Ca, expect: &[&str]) {
    let sink = tls_sink(&leaf).await;
    let r = gateway(
        trusted,
        &level("required-verify"),
        vec![route("example.net", "mx.example.net", sink.addr)],
        |_| {},
    )
    .await;
    r.send("a@local.test", &["b@example.net"]).await;
    let mut parts = vec!["TLS failed: pkix verification failed"];
    parts.extend_from_slice(expect);
    r.log.wait_for(&parts).await;
    r.log.wait_for(&["message not sent", "4.7.5"]).await;
    r.log.wait_for(&["deferred 1 recipient(s)"]).await;
    assert!(
        sink.received().is_empty(),
        "nothing may reach a peer that failed verification"
    );
    r.engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn required_verify_refuses_an_untrusted_certificate() {
    let other = Ca::new("Untrusted CA");
    verify_failure(
        other.leaf(&["mx.example.net"], false),
        Ca::new("Trusted CA"),
        &["unknown issuer"],
    )
    .await;
}

#[tokio::test]
async fn required_verify_refuses_an_expired_certificate() {
    let ca = Ca::new("CA");
    let leaf = ca.leaf(&["mx.example.net"], true);
    verify_failure(leaf, ca, &["expired"]).await;
}

#[tokio::test]
async fn required_verify_refuses_a_misnamed_certificate() {
    let ca = Ca::new("CA");
    let leaf = ca.leaf(&["other.test"], false);
    verify_failure(
        leaf,
        ca,
        &[
            "name mismatch",
            "presented names [other.test]",
            "mx.example.net",
        ],
    )
    .await;
}

#[tokio::test]
async fn hosted_domain_accepts_the_domain_name_on_a_differently_named_mx() {
    // The MX is mx.example.net, but its certificate names only example.net:
    // required-verify-hosted-domain accepts the destination domain as
    // reference identity, whatever the SNI name was.
    let ca = Ca::new("CA");
    let sink = tls_sink(&ca.leaf(&["example.net"], false)).await;
    let r = gateway(
        ca,
        &level("required-verify-hosted-domain"),
        vec![route("example.net", "mx.example.net", sink.addr)],
        |_| {},
    )
    .await;
    r.send("a@local.test", &["b@example.net"]).await;
    assert_eq!(sink.wait_for(1).await.len(), 1, "{}", r.log.dump());
    r.log.wait_for(&["auth=pkix ok", "name=example.net"]).await;
    r.engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn preferred_handshake_failure_retries_in_cleartext_and_exempts_the_host() {
    // The sink speaks only TLS 1.2, the gateway only TLS 1.3: the handshake
    // fails after 220.
    let ca = Ca::new("CA");
    let leaf = ca.leaf(&["mx.example.net"], false);
    let config = rustls::ServerConfig::builder_with_protocol_versions(&[&rustls::version::TLS12])
        .with_no_client_auth()
        .with_single_cert(leaf.chain.clone(), leaf.key())
        .unwrap();
    let sink = Sink::start(SinkOptions {
        tls: Some(Arc::new(config)),
        ..Default::default()
    })
    .await;
    let r = gateway(
        ca,
        &level("preferred"),
        vec![route("example.net", "mx.example.net", sink.addr)],
        |s| s.delivery.tls.versions = vec![&rustls::version::TLS13],
    )
    .await;
    r.send("a@local.test", &["b@example.net"]).await;
    let got = sink.wait_for(1).await;
    assert_eq!(got.len(), 1, "{}", r.log.dump());
    assert!(got[0].tls.is_none());
    r.log
        .wait_for(&["rule=R15", "TLS failed: handshake error"])
        .await;
    r.log
        .wait_for(&[
            "retrying in cleartext",
            "mx.example.net exempt from STARTTLS for",
        ])
        .await;
    // The next message goes straight to cleartext under the exemption.
    r.send("a@local.test", &["c@example.net"]).await;
    assert_eq!(sink.wait_for(2).await.len(), 2);
    let l = r.log.wait_for(&["delivered to <c@example.net>"]).await;
    assert!(l.contains("rule=R14") && l.contains("tls=none"), "{l}");
    r.engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn fails_over_to_the_second_host() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let ca = Ca::new("CA");
    let sink = tls_sink(&ca.leaf(&["mx2.example.net"], false)).await;
    let mut rt = route("example.net", "mx1.example.net", dead);
    rt.hosts.push(RouteHost {
        host: HopHost::Name(DomainName::parse("mx2.example.net").unwrap()),
        address: Some(loopback()),
        port: sink.addr.port(),
    });
    let r = gateway(ca, &level("required-verify"), vec![rt], |_| {}).await;
    r.send("a@local.test", &["b@example.net"]).await;
    assert_eq!(sink.wait_for(1).await.len(), 1, "{}", r.log.dump());
    r.log
        .wait_for(&["mx1.example.net[127.0.0.1]", "delivery failed"])
        .await;
    let l = r.log.wait_for(&["delivered to <b@example.net>"]).await;
    assert!(l.contains("via mx2.example.net[127.0.0.1]"), "{l}");
    r.engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn permanent_refusal_bounces_to_the_sender() {
    let ca = Ca::new("CA");
    let refusing = Sink::start(SinkOptions {
        rcpt_reply: Some((550, "5.1.1", "no such user")),
        ..Default::default()
    })
    .await;
    let home = Sink::start(SinkOptions::default()).await;
    let r = gateway(
        ca,
        &level("preferred"),
        vec![
            route("example.net", "mx.example.net", refusing.addr),
            route("local.test", "mail.local.test", home.addr),
        ],
        |_| {},
    )
    .await;
    r.send("alice@local.test", &["nobody@example.net"]).await;
    let got = home.wait_for(1).await;
    assert_eq!(got.len(), 1, "{}", r.log.dump());
    assert_eq!(got[0].from, "<>");
    assert_eq!(got[0].to, ["<alice@local.test>"]);
    let dsn = String::from_utf8_lossy(&got[0].body);
    assert!(dsn.contains("report-type=delivery-status"), "{dsn}");
    assert!(
        dsn.contains("Final-Recipient: rfc822; nobody@example.net"),
        "{dsn}"
    );
    assert!(dsn.contains("5.1.1"), "{dsn}");
    r.log
        .wait_for(&["bounced <nobody@example.net>", "5.1.1"])
        .await;
    r.log.wait_for(&["queued bounce for MID"]).await;
    r.engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn queue_lifetime_expiry_bounces_and_null_sender_is_not_bounced() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let home = Sink::start(SinkOptions::default()).await;
    let r = gateway(
        Ca::new("CA"),
        &level("preferred"),
        vec![
            route("example.net", "mx.example.net", dead),
            route("local.test", "mail.local.test", home.addr),
        ],
        |s| s.delivery.queue_lifetime = Duration::ZERO,
    )
    .await;
    r.send("alice@local.test", &["bob@example.net"]).await;
    let got = home.wait_for(1).await;
    assert_eq!(got.len(), 1, "{}", r.log.dump());
    let dsn = String::from_utf8_lossy(&got[0].body);
    assert!(dsn.contains("Action: failed"), "{dsn}");
    assert!(dsn.contains("expired"), "{dsn}");
    r.log
        .wait_for(&["bounced <bob@example.net>", "expired"])
        .await;
    // A message from the null sender that expires gets no bounce.
    r.send("", &["bob@example.net"]).await;
    r.log
        .wait_for(&["no bounce sent: the sender is the null sender"])
        .await;
    assert_eq!(home.received().len(), 1);
    r.engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_burst_to_one_destination_is_delivered_completely_over_tls() {
    // Consecutive messages to one hop may share a connection (the idle
    // pool); whichever connection carries them, each arrives once, over
    // TLS with the verified peer the decision demands.
    let ca = Ca::new("CA");
    let sink = tls_sink(&ca.leaf(&["mx.example.net"], false)).await;
    let r = gateway(
        ca,
        &level("required-verify"),
        vec![route("example.net", "mx.example.net", sink.addr)],
        |_| {},
    )
    .await;
    for i in 0..5 {
        r.send("a@local.test", &[&format!("u{i}@example.net")])
            .await;
    }
    let got = sink.wait_for(5).await;
    assert_eq!(got.len(), 5, "{}", r.log.dump());
    assert!(got.iter().all(|m| m.tls.is_some()));
    let mut to: Vec<String> = got.iter().map(|m| m.to[0].clone()).collect();
    to.sort();
    to.dedup();
    assert_eq!(to.len(), 5);
    for i in 0..5 {
        let l = r
            .log
            .wait_for(&[&format!("delivered to <u{i}@example.net>")])
            .await;
        assert!(l.contains("tls=TLSv1.3") && l.contains("auth=pkix"), "{l}");
    }
    r.engine.shutdown(Duration::from_secs(5)).await;
}

async fn send_requiretls(r: &Rig, to: &str) {
    let params = portcullis_smtp_tls::MailParams {
        requiretls: true,
        ..Default::default()
    };
    let d = send_with(
        r.engine.local_addrs()[0],
        r.ca.connector(),
        TlsRequirement::Required,
        "alice@local.test",
        &[to],
        BODY,
        params,
    )
    .await
    .unwrap();
    assert!(d.result.is_accepted(), "{d:?}");
}

#[tokio::test]
async fn requiretls_message_goes_only_over_verified_tls_with_requiretls() {
    let ca = Ca::new("CA");
    let sink = tls_sink(&ca.leaf(&["mx.example.net"], false)).await;
    let r = gateway(
        ca,
        &level("preferred"),
        vec![route("example.net", "mx.example.net", sink.addr)],
        |_| {},
    )
    .await;
    send_requiretls(&r, "b@example.net").await;
    let got = sink.wait_for(1).await;
    assert_eq!(got.len(), 1, "{}", r.log.dump());
    assert!(got[0].tls.is_some());
    assert!(got[0].requiretls, "REQUIRETLS must be passed on");
    r.log
        .wait_for(&["rule=R7", "starttls=required+REQUIRETLS"])
        .await;
    let l = r.log.wait_for(&["delivered to <b@example.net>"]).await;
    assert!(l.contains("auth=pkix"), "{l}");
    r.engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn requiretls_message_to_a_cleartext_peer_is_returned_to_the_sender() {
    let plain = Sink::start(SinkOptions::default()).await;
    let home = Sink::start(SinkOptions::default()).await;
    let r = gateway(
        Ca::new("CA"),
        &level("preferred"),
        vec![
            route("example.net", "mx.example.net", plain.addr),
            route("local.test", "mail.local.test", home.addr),
        ],
        |_| {},
    )
    .await;
    send_requiretls(&r, "b@example.net").await;
    let got = home.wait_for(1).await;
    assert_eq!(got.len(), 1, "{}", r.log.dump());
    let dsn = String::from_utf8_lossy(&got[0].body);
    assert!(dsn.contains("5.7.10"), "{dsn}");
    assert!(plain.received().is_empty());
    r.log.wait_for(&["bounced <b@example.net>", "5.7.10"]).await;
    r.engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn tls13_rejection_after_the_handshake_counts_as_a_handshake_failure() {
    // With TLS 1.3 a server that demands a client certificate says so only
    // after the client finished its side of the handshake: at `preferred`
    // this is still a failed handshake, retried in cleartext.
    let ca = Ca::new("CA");
    let leaf = ca.leaf(&["mx.example.net"], false);
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(ca.roots()))
        .build()
        .unwrap();
    let config = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(leaf.chain.clone(), leaf.key())
        .unwrap();
    let sink = Sink::start(SinkOptions {
        tls: Some(Arc::new(config)),
        ..Default::default()
    })
    .await;
    let r = gateway(
        ca,
        &level("preferred"),
        vec![route("example.net", "mx.example.net", sink.addr)],
        |_| {},
    )
    .await;
    r.send("a@local.test", &["b@example.net"]).await;
    let got = sink.wait_for(1).await;
    assert_eq!(got.len(), 1, "{}", r.log.dump());
    assert!(got[0].tls.is_none());
    r.log
        .wait_for(&["TLS failed: handshake error", "CertificateRequired"])
        .await;
    r.log.wait_for(&["retrying in cleartext"]).await;
    r.engine.shutdown(Duration::from_secs(5)).await;
}

/// `required` against a testkit sink with the given STARTTLS behaviour:
/// nothing is sent and the log names the reason class.
async fn required_against(tls: portcullis_testkit::sink::SinkTls, expect: &[&str]) {
    use portcullis_testkit::sink::{Sink as KitSink, SinkOptions as KitOptions};
    let sink = KitSink::start(KitOptions::new(tls)).await.unwrap();
    let r = gateway(
        Ca::new("CA"),
        &level("required"),
        vec![route("example.net", "mx.example.net", sink.addr())],
        |_| {},
    )
    .await;
    r.send("a@local.test", &["b@example.net"]).await;
    let mut parts = vec!["rule=R11"];
    parts.extend_from_slice(expect);
    r.log.wait_for(&parts).await;
    r.log.wait_for(&["deferred 1 recipient(s)"]).await;
    assert!(sink.messages().is_empty());
    r.engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn required_reason_classes_starttls_refused_no_esmtp_handshake() {
    use portcullis_testkit::sink::SinkTls;
    required_against(
        SinkTls::Refused("454 4.7.0 TLS not available due to local problem".into()),
        &["TLS failed: STARTTLS refused", "454 4.7.0"],
    )
    .await;
    required_against(
        SinkTls::NoEsmtp,
        &["TLS failed: STARTTLS not available", "does not speak ESMTP"],
    )
    .await;
    required_against(SinkTls::HandshakeFails, &["TLS failed: handshake error"]).await;
}

#[tokio::test]
async fn requiretls_local_part_tag_flags_the_message_and_is_removed() {
    let ca = Ca::new("CA");
    let sink = tls_sink(&ca.leaf(&["mx.example.net"], false)).await;
    let r = gateway(
        ca,
        &level("preferred"),
        vec![route("example.net", "mx.example.net", sink.addr)],
        |_| {},
    )
    .await;
    r.send("a@local.test", &["bob+requiretls@example.net"])
        .await;
    let got = sink.wait_for(1).await;
    assert_eq!(got.len(), 1, "{}", r.log.dump());
    assert_eq!(got[0].to, ["<bob@example.net>"], "the tag is not passed on");
    assert!(got[0].requiretls && got[0].tls.is_some());
    r.log
        .wait_for(&["rule=R7", "starttls=required+REQUIRETLS"])
        .await;
    r.engine.shutdown(Duration::from_secs(5)).await;
}
