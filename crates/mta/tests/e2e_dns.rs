//! End to end, DNS: the real `portcullis` binary with `[dns]` written the
//! way an operator writes it, against the signed test zone on loopback.
//!
//! - The zone is served without its signatures while the trust anchor (its
//!   KSK alone) says it is signed — what a resolver that strips DNSSEC
//!   does. The gateway must say so once at start, with the fix, and the
//!   deferrals that follow, like every other line of its log, must stay
//!   short (no DNS message dumps from the resolver library).
//! - Resolvers with priorities (the first one dead), `dnssec = "trust-ad"`
//!   in front of a validating unbound, and a `[[dns.domain]]` entry: mail to
//!   a DANE domain is authenticated, mail to the split domain goes where its
//!   own server says.
//!
//! Needs the `portcullis` binary and the Debian packages knot, ldnsutils
//! and unbound.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use portcullis_testkit::client::{SendOptions, send};
use portcullis_testkit::dns_zone::ZoneBuilder;
use portcullis_testkit::gateway::{GatewayFixture, destination};
use portcullis_testkit::pki::TestPki;
use portcullis_testkit::sink::{Sink, SinkOptions, SinkTls};

const WAIT: Duration = Duration::from_secs(60);

async fn submit(fx: &GatewayFixture, to: &str) {
    let d = send(
        fx.listen,
        "sender@origin.test",
        &[to],
        "dns",
        &SendOptions::default(),
    )
    .await
    .unwrap();
    assert!(d.result.is_accepted(), "{to}: {:?}", d.result);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolver_that_strips_dnssec_is_named_once_and_the_log_stays_readable() {
    let zone = ZoneBuilder::new()
        .without_signatures()
        .mx("secure.test", 10, "mx.secure.test")
        .a("mx.secure.test", Ipv4Addr::LOCALHOST)
        .start()
        .unwrap();
    let mut fx = GatewayFixture::new().unwrap();
    fx.dns = format!(
        "resolvers = [\"{}\"]\ntrust-anchor-file = \"{}\"\ntimeout-seconds = 3\n",
        zone.authoritative_addr(),
        zone.ksk_anchor_file().display()
    );
    fx.extra = destination("default", "none", "none", false);
    fx.validate().unwrap();
    let gateway = fx.start().unwrap();
    let warning = gateway
        .wait_for_line(
            &["DNSSEC does not work through the configured resolvers"],
            WAIT,
        )
        .await
        .unwrap();
    assert!(warning.contains("strips DNSSEC records") && warning.contains("Fix:"));
    submit(&fx, "user@secure.test").await;
    // Two attempts (retries every second or two).
    gateway
        .wait_for_line(&["deferred 1 recipient(s) after attempt 2"], WAIT)
        .await
        .unwrap();
    let lines = gateway.lines();
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("DNSSEC does not work"))
            .count(),
        1,
        "said once"
    );
    // hickory logs whole DNS messages (`DnsResponse { … }`, about 1 KB
    // each, dozens per lookup) when validation fails; the operator's log
    // gets the gateway's short verdicts instead.
    for l in &lines {
        assert!(
            l.len() < 600 && !l.contains("DnsResponse {"),
            "a log line of {} bytes:\n{l}",
            l.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priorities_trust_ad_and_a_split_domain_from_the_config_file() {
    let pki = TestPki::new().unwrap();
    let leaf = Arc::new(pki.leaf(&["mx.secure.test", "mx.split.test"]).unwrap());
    let sink = Sink::start_on(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        SinkOptions::new(SinkTls::Offered(Arc::clone(&leaf))),
    )
    .await
    .unwrap();
    let port = sink.addr().port();
    let zone = ZoneBuilder::new()
        .with_validating_resolver()
        .mx("secure.test", 10, "mx.secure.test")
        .a("mx.secure.test", Ipv4Addr::LOCALHOST)
        .tlsa_for("mx.secure.test", port, leaf.chain(), 0, [3, 1, 1])
        .unwrap()
        .start()
        .unwrap();
    // The split domain's own (unsigned, internal) server.
    let internal = ZoneBuilder::new()
        .mx("split.test", 10, "mx.split.test")
        .a("mx.split.test", Ipv4Addr::LOCALHOST)
        .start()
        .unwrap();
    let dead = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut fx = GatewayFixture::new().unwrap();
    fx.trust_ca(&pki.root_pem()).unwrap();
    fx.dns = format!(
        "resolvers = [{{ address = \"{dead}\", priority = 5 }}, {{ address = \"{}\", priority = 1 }}]\n\
         dnssec = \"trust-ad\"\nprobe-name = \"test.\"\ntimeout-seconds = 2\n",
        zone.resolver_addr().unwrap(),
    );
    fx.delivery = format!("{}mx-port = {port}\n", fx.delivery);
    fx.extra = format!(
        "{}{}[[dns.domain]]\nname = \"split.test\"\nservers = [\"{}\"]\ninsecure = true\n",
        destination("default", "none", "none", false),
        destination("secure.test", "preferred", "opportunistic", false),
        internal.authoritative_addr()
    );
    fx.validate().unwrap();
    let gateway = fx.start().unwrap();
    gateway
        .wait_for_line(
            &["DNSSEC check passed: test. SOA validated as secure"],
            WAIT,
        )
        .await
        .unwrap();
    submit(&fx, "user@secure.test").await;
    submit(&fx, "user@split.test").await;
    let l = gateway
        .wait_for_line(&["delivered to <user@secure.test>"], WAIT)
        .await
        .unwrap();
    assert!(l.contains("auth=dane"), "{l}");
    gateway
        .wait_for_line(&["MX for split.test (insecure): 10 mx.split.test"], WAIT)
        .await
        .unwrap();
    gateway
        .wait_for_line(&["delivered to <user@split.test>"], WAIT)
        .await
        .unwrap();
    sink.wait_for_messages(2, WAIT).await.unwrap();
}
