//! End to end, outbound: the real `portcullis` binary delivers through MX
//! records of the DNSSEC-signed test zone (knotd on loopback, the gateway
//! validating with the zone's trust anchor) to testkit sinks, one per
//! destination domain, each on its own 127.0.1.x address and the shared
//! `delivery.mx-port`. The destination table gives each domain its TLS
//! level; the test PKI's root is in the custom CA list (`portcullis ca
//! import`). Each case asserts what reached the sink, over what TLS, and
//! what the mail log said.
//!
//! Needs the `portcullis` binary and the Debian packages knot + ldnsutils.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use portcullis_testkit::client::{SendOptions, send};
use portcullis_testkit::dns_zone::{DnsZone, ZoneBuilder};
use portcullis_testkit::gateway::{GatewayFixture, destination};
use portcullis_testkit::pki::TestPki;
use portcullis_testkit::runner::{Gateway, free_tcp_port};
use portcullis_testkit::sink::{Sink, SinkOptions, SinkTls};

const WAIT: Duration = Duration::from_secs(60);

/// One destination domain: its sink behaviour and destination entry.
struct Case {
    domain: &'static str,
    sink: SinkOptions,
    tls: &'static str,
}

fn case(domain: &'static str, sink: SinkTls, tls: &'static str) -> Case {
    Case {
        domain,
        sink: SinkOptions::new(sink),
        tls,
    }
}

struct Rig {
    _zone: DnsZone,
    sinks: Vec<(String, Sink)>,
    fx: GatewayFixture,
    gateway: Gateway,
}

impl Rig {
    fn sink(&self, domain: &str) -> &Sink {
        &self.sinks.iter().find(|(d, _)| d == domain).unwrap().1
    }

    /// Waits for the one message to `user@domain`; its TLS facts.
    async fn tls_of(&self, domain: &str) -> Option<portcullis_testkit::sink::TlsFacts> {
        let m = self
            .sink(domain)
            .wait_for_messages(1, WAIT)
            .await
            .unwrap_or_else(|e| panic!("{domain}: {e}\n{}", self.gateway.tail(100)));
        assert_eq!(m[0].rcpt_to, vec![format!("<user@{domain}>")]);
        assert_eq!(m[0].mail_from, "<sender@origin.test>");
        m[0].tls.clone()
    }
}

/// Binds one sink per case on 127.0.1.(10+i):port, retrying with another
/// port if any address is taken.
async fn sinks_on_one_port(behaviours: &[SinkOptions], subnet: u8) -> (u16, Vec<Sink>) {
    'port: for _ in 0..20 {
        let port = free_tcp_port().unwrap();
        let mut sinks = Vec::new();
        for (i, tls) in behaviours.iter().enumerate() {
            let ip = Ipv4Addr::new(127, 0, subnet, 10 + i as u8);
            match Sink::start_on(SocketAddr::new(IpAddr::V4(ip), port), tls.clone()).await {
                Ok(s) => sinks.push(s),
                Err(_) => continue 'port,
            }
        }
        return (port, sinks);
    }
    panic!("no port free on every 127.0.{subnet}.x address");
}

async fn rig(
    pki: &TestPki,
    cases: Vec<Case>,
    extra_zone: impl FnOnce(ZoneBuilder) -> ZoneBuilder,
    configure: impl FnOnce(&mut GatewayFixture),
) -> Rig {
    let (port, sinks) =
        sinks_on_one_port(&cases.iter().map(|c| c.sink.clone()).collect::<Vec<_>>(), 1).await;
    let mut zone = ZoneBuilder::new();
    let mut fx = GatewayFixture::new().unwrap();
    let mut extra_toml = destination("default", "none", "none", false);
    for (c, s) in cases.iter().zip(&sinks) {
        let mx = format!("mx.{}", c.domain);
        let IpAddr::V4(ip) = s.addr().ip() else {
            unreachable!()
        };
        zone = zone.mx(c.domain, 10, &mx).a(&mx, ip);
        extra_toml += &destination(c.domain, c.tls, "none", false);
    }
    let zone = extra_zone(zone).start().unwrap();
    fx.trust_ca(&pki.root_pem()).unwrap();
    fx.dns = format!(
        "resolvers = [\"{}\"]\ntrust-anchor-file = \"{}\"\ntimeout-seconds = 5\n",
        zone.authoritative_addr(),
        zone.trust_anchor_file().display()
    );
    fx.delivery = format!("{}mx-port = {port}\n", fx.delivery);
    fx.extra = extra_toml;
    configure(&mut fx);
    fx.validate().unwrap();
    let gateway = fx.start().unwrap();
    Rig {
        _zone: zone,
        sinks: cases
            .iter()
            .map(|c| c.domain.to_string())
            .zip(sinks)
            .collect(),
        fx,
        gateway,
    }
}

async fn log_line(rig: &Rig, needles: &[&str]) -> String {
    rig.gateway.wait_for_line(needles, WAIT).await.unwrap()
}

async fn submit(rig: &Rig, to: &str, subject: &str) {
    let d = send(
        rig.fx.listen,
        "sender@origin.test",
        &[to],
        subject,
        &SendOptions::default(),
    )
    .await
    .unwrap();
    assert!(d.result.is_accepted(), "{to}: {:?}", d.result);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_tls_levels_against_every_peer_behaviour() {
    let pki = TestPki::new().unwrap();
    let other = TestPki::new().unwrap();
    let good = |name: &str| Arc::new(pki.leaf(&[name]).unwrap());
    let cases = vec![
        case("plain-preferred.test", SinkTls::NotOffered, "preferred"),
        case("plain-required.test", SinkTls::NotOffered, "required"),
        case(
            "refused-preferred.test",
            SinkTls::Refused("454 4.7.0 TLS not available due to local problem".into()),
            "preferred",
        ),
        case(
            "refused-required.test",
            SinkTls::Refused("454 4.7.0 TLS not available due to local problem".into()),
            "required",
        ),
        case("noesmtp-required.test", SinkTls::NoEsmtp, "required"),
        case(
            "handshake-required.test",
            SinkTls::HandshakeFails,
            "required",
        ),
        case(
            "untrusted.test",
            SinkTls::Offered(Arc::new(other.leaf(&["mx.untrusted.test"]).unwrap())),
            "required-verify",
        ),
        case(
            "expired.test",
            SinkTls::Offered(Arc::new(pki.expired_leaf(&["mx.expired.test"]).unwrap())),
            "required-verify",
        ),
        case(
            "misnamed.test",
            SinkTls::Offered(Arc::new(pki.misnamed_leaf(&[]).unwrap())),
            "required-verify",
        ),
        case(
            "untrusted-required.test",
            SinkTls::Offered(Arc::new(
                other.leaf(&["mx.untrusted-required.test"]).unwrap(),
            )),
            "required",
        ),
        case(
            "good.test",
            SinkTls::Offered(good("mx.good.test")),
            "required-verify",
        ),
        case(
            "pv-untrusted.test",
            SinkTls::Offered(Arc::new(other.leaf(&["mx.pv-untrusted.test"]).unwrap())),
            "preferred-verify",
        ),
        case(
            "hosted-good.test",
            SinkTls::Offered(good("hosted-good.test")),
            "required-verify-hosted-domain",
        ),
        case(
            "hosted-foreign.test",
            // Names only the hosting provider: the hosted domain (and
            // names under it) is what this level checks.
            SinkTls::Offered(good("mx.provider.test")),
            "required-verify-hosted-domain",
        ),
        case(
            "good-none.test",
            SinkTls::Offered(good("mx.good-none.test")),
            "none",
        ),
    ];
    let rig = rig(&pki, cases, |z| z, |_| {}).await;
    for (domain, _) in &rig.sinks {
        submit(&rig, &format!("user@{domain}"), domain).await;
    }

    // Delivered, and how.
    assert_eq!(rig.tls_of("plain-preferred.test").await, None);
    assert_eq!(rig.tls_of("refused-preferred.test").await, None);
    assert_eq!(rig.tls_of("good-none.test").await, None);
    let good_tls = rig.tls_of("good.test").await.expect("TLS to good.test");
    assert!(good_tls.protocol.starts_with("TLSv1."), "{good_tls:?}");
    assert_eq!(good_tls.sni.as_deref(), Some("mx.good.test"));
    // preferred-verify: verification is attempted and only reported.
    assert!(rig.tls_of("pv-untrusted.test").await.is_some());
    log_line(
        &rig,
        &[
            "mx.pv-untrusted.test",
            "TLS success",
            "auth=pkix FAILED, report only",
        ],
    )
    .await;
    // required-verify-hosted-domain: the certificate must name the
    // recipient domain, not the MX host.
    let hosted = rig.tls_of("hosted-good.test").await.expect("TLS");
    assert_eq!(hosted.sni.as_deref(), Some("mx.hosted-good.test"));
    log_line(&rig, &["delivered to <user@hosted-good.test>", "auth=pkix"]).await;
    // "required" encrypts without verifying: an untrusted chain is fine.
    assert!(rig.tls_of("untrusted-required.test").await.is_some());

    let log = &rig.gateway;
    log.wait_for_line(
        &["delivered to <user@good.test>", "tls=TLSv1", "auth=pkix"],
        WAIT,
    )
    .await
    .unwrap();
    log.wait_for_line(
        &["delivered to <user@plain-preferred.test>", "tls=none"],
        WAIT,
    )
    .await
    .unwrap();
    log.wait_for_line(&["mx.refused-preferred.test", "TLS not used", "454"], WAIT)
        .await
        .unwrap();
    log.wait_for_line(&["mx.good-none.test", "TLS not attempted"], WAIT)
        .await
        .unwrap();

    // Not delivered: deferred with the reason class in the log.
    for (domain, needle) in [
        ("plain-required.test", "not advertise STARTTLS"),
        ("refused-required.test", "454"),
        ("noesmtp-required.test", "ESMTP"),
        ("handshake-required.test", "handshake"),
        ("untrusted.test", "verification failed"),
        ("expired.test", "verification failed"),
        ("misnamed.test", "verification failed"),
        ("hosted-foreign.test", "verification failed"),
    ] {
        let line = log
            .wait_for_line(&[&format!("to {domain}"), needle], WAIT)
            .await
            .unwrap();
        assert!(!line.contains("delivered"), "{line}");
        log.wait_for_line(&["deferred", "retry in"], WAIT)
            .await
            .unwrap();
        assert!(rig.sink(domain).messages().is_empty(), "{domain} got mail");
    }
    for (domain, needle) in [
        ("expired.test", "xpired"),
        ("misnamed.test", "name"),
        ("untrusted.test", "ssuer"),
    ] {
        log.wait_for_line(
            &[&format!("to {domain}"), "verification failed", needle],
            WAIT,
        )
        .await
        .unwrap();
    }
    // The peers that refused or lacked STARTTLS were asked for it.
    assert!(
        rig.sink("refused-required.test")
            .sessions()
            .iter()
            .all(|s| s.starttls_attempted)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_handshake_at_preferred_retries_in_cleartext_with_exemption() {
    let pki = TestPki::new().unwrap();
    let cases = vec![case("flaky.test", SinkTls::HandshakeFails, "preferred")];
    let rig = rig(
        &pki,
        cases,
        |z| z,
        |fx| {
            fx.extra += "[outbound]\ntls-fallback-exemption-seconds = 3600\n";
        },
    )
    .await;
    submit(&rig, "one@flaky.test", "first").await;
    let m = rig
        .sink("flaky.test")
        .wait_for_messages(1, WAIT)
        .await
        .unwrap();
    assert!(m[0].tls.is_none());
    rig.gateway
        .wait_for_line(
            &[
                "retrying in cleartext after the failed handshake",
                "exempt from STARTTLS for",
            ],
            WAIT,
        )
        .await
        .unwrap();
    // Within the hour, the same host gets no STARTTLS at all.
    let before = rig.sink("flaky.test").sessions().len();
    submit(&rig, "two@flaky.test", "second").await;
    rig.sink("flaky.test")
        .wait_for_messages(2, WAIT)
        .await
        .unwrap();
    let sessions = rig
        .sink("flaky.test")
        .wait_for_sessions(before + 1, WAIT)
        .await
        .unwrap();
    let last = sessions.iter().rev().find(|s| s.messages > 0).unwrap();
    assert!(!last.starttls_attempted, "{sessions:?}");
    assert_eq!(
        rig.gateway
            .lines_with(&["retrying in cleartext after the failed handshake"])
            .len(),
        1,
        "{}",
        rig.gateway.tail(100)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_over_to_the_second_mx() {
    let pki = TestPki::new().unwrap();
    let cases = vec![case(
        "twomx.test",
        SinkTls::Offered(Arc::new(pki.leaf(&["backup.twomx.test"]).unwrap())),
        "preferred",
    )];
    // Preference 5: an address where nothing listens; preference 10 (the
    // case's MX) is the sink.
    let rig = rig(
        &pki,
        cases,
        |z| {
            z.mx("twomx.test", 5, "dead.twomx.test")
                .a("dead.twomx.test", Ipv4Addr::new(127, 0, 1, 250))
        },
        |_| {},
    )
    .await;
    submit(&rig, "user@twomx.test", "failover").await;
    let m = rig
        .sink("twomx.test")
        .wait_for_messages(1, WAIT)
        .await
        .unwrap();
    assert!(m[0].tls.is_some());
    let lines = rig.gateway.lines();
    let dead = lines
        .iter()
        .position(|l| l.contains("dead.twomx.test"))
        .unwrap_or_else(|| panic!("{}", lines.join("\n")));
    let delivered = rig
        .gateway
        .wait_for_line(
            &["delivered to <user@twomx.test>", "via mx.twomx.test"],
            WAIT,
        )
        .await
        .unwrap();
    let delivered_at = rig
        .gateway
        .lines()
        .iter()
        .position(|l| *l == delivered)
        .unwrap();
    assert!(dead < delivered_at, "the first MX must be tried first");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounce_after_the_queue_lifetime() {
    let pki = TestPki::new().unwrap();
    // slow.test answers every message with 451: deferred until the
    // lifetime (3 s) runs out, then bounced to the sender at origin.test.
    let mut slow = SinkOptions::new(SinkTls::NotOffered);
    slow.data_reply =
        Some(portcullis_smtp_tls::Reply::new(451, "4.3.0", "Try again later").unwrap());
    let cases = vec![
        Case {
            domain: "slow.test",
            sink: slow,
            tls: "preferred",
        },
        case("origin.test", SinkTls::NotOffered, "preferred"),
    ];
    let rig = rig(
        &pki,
        cases,
        |z| z,
        |fx| {
            fx.queue =
                "lifetime-seconds = 3\nretry-first-seconds = 1\nretry-max-seconds = 1\n".into();
        },
    )
    .await;
    submit(&rig, "user@slow.test", "doomed").await;
    let bounce = rig
        .sink("origin.test")
        .wait_for_messages(1, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", rig.gateway.tail(100)));
    let b = &bounce[0];
    assert_eq!(b.mail_from, "<>");
    assert_eq!(b.rcpt_to, vec!["<sender@origin.test>".to_string()]);
    let text = b.body_text();
    assert!(text.contains("multipart/report"), "{text}");
    assert!(text.contains("report-type=delivery-status"), "{text}");
    assert!(
        text.contains("Final-Recipient: rfc822; user@slow.test"),
        "{text}"
    );
    assert!(text.contains("Action: failed"), "{text}");
    assert!(rig.sink("slow.test").messages().is_empty());
    rig.gateway
        .wait_for_line(&["bounced <user@slow.test>"], WAIT)
        .await
        .unwrap();
    rig.gateway
        .wait_for_line(&["delivered to <sender@origin.test>"], WAIT)
        .await
        .unwrap();
}
