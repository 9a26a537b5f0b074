//! End to end, DANE and MTA-STS: the real `portcullis` binary delivers via
//! MX records of the DNSSEC-signed test zone whose TLSA records are
//! computed from the sinks' certificates (match, mismatch, insecure
//! delegation, bogus signature, all-unusable), and via MTA-STS policies
//! (enforce, testing) served by a local HTTPS server whose CA is in the
//! custom CA list. Each case asserts what reached the sink, over what TLS,
//! and what the mail log said.
//!
//! Needs the `portcullis` binary and the Debian packages knot + ldnsutils.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use portcullis_testkit::client::{SendOptions, send};
use portcullis_testkit::dns_zone::{DnsZone, ZoneBuilder};
use portcullis_testkit::gateway::{GatewayFixture, destination};
use portcullis_testkit::mta_sts_server::{MtaStsServer, policy_text};
use portcullis_testkit::pki::{Leaf, TestPki, self_signed_leaf};
use portcullis_testkit::runner::{Gateway, free_tcp_port};
use portcullis_testkit::sink::{Sink, SinkOptions, SinkTls};

const WAIT: Duration = Duration::from_secs(60);

struct Rig {
    _zone: DnsZone,
    _sts: Vec<MtaStsServer>,
    sinks: Vec<(String, Sink)>,
    fx: GatewayFixture,
    gateway: Gateway,
}

impl Rig {
    fn sink(&self, domain: &str) -> &Sink {
        &self.sinks.iter().find(|(d, _)| d == domain).unwrap().1
    }

    async fn submit(&self, domain: &str) {
        let to = format!("user@{domain}");
        let d = send(
            self.fx.listen,
            "sender@origin.test",
            &[&to],
            domain,
            &SendOptions::default(),
        )
        .await
        .unwrap();
        assert!(d.result.is_accepted(), "{to}: {:?}", d.result);
    }

    async fn delivered_tls(&self, domain: &str) -> Option<portcullis_testkit::sink::TlsFacts> {
        let m = self
            .sink(domain)
            .wait_for_messages(1, WAIT)
            .await
            .unwrap_or_else(|e| panic!("{domain}: {e}\n{}", self.gateway.tail(100)));
        m[0].tls.clone()
    }

    async fn deferred(&self, domain: &str, needles: &[&str]) -> String {
        let mut all = vec![domain];
        all.extend_from_slice(needles);
        let line = self.gateway.wait_for_line(&all, WAIT).await.unwrap();
        self.gateway
            .wait_for_line(&["deferred", "retry in"], WAIT)
            .await
            .unwrap();
        assert!(self.sink(domain).messages().is_empty(), "{domain} got mail");
        line
    }
}

/// One sink per domain on 127.0.2.(10+i):port (one shared port).
async fn sinks(leaves: &[Arc<Leaf>]) -> (u16, Vec<Sink>) {
    'port: for _ in 0..20 {
        let port = free_tcp_port().unwrap();
        let mut out = Vec::new();
        for (i, leaf) in leaves.iter().enumerate() {
            let ip = Ipv4Addr::new(127, 0, 2, 10 + i as u8);
            let o = SinkOptions::new(SinkTls::Offered(Arc::clone(leaf)));
            match Sink::start_on(SocketAddr::new(IpAddr::V4(ip), port), o).await {
                Ok(s) => out.push(s),
                Err(_) => continue 'port,
            }
        }
        return (port, out);
    }
    panic!("no port free on every 127.0.2.x address");
}

fn ip(s: &Sink) -> Ipv4Addr {
    match s.addr().ip() {
        IpAddr::V4(ip) => ip,
        IpAddr::V6(_) => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dane_opportunistic_and_mandatory() {
    let pki = TestPki::new().unwrap();
    // DANE-EE needs no CA: the sinks present self-signed certificates.
    let names = [
        "match-mandatory.test",
        "match-opportunistic.test",
        "mismatch.test",
        "bogus.test",
        "unusable.test",
        "x.insecure.test",
        "y.insecure.test",
    ];
    let leaves: Vec<Arc<Leaf>> = names
        .iter()
        .map(|d| Arc::new(self_signed_leaf(&[&format!("mx.{d}")]).unwrap()))
        .collect();
    let stranger = self_signed_leaf(&["someone.else.test"]).unwrap();
    let (port, sinks) = sinks(&leaves).await;
    let mut z = ZoneBuilder::new();
    for (d, s) in names.iter().zip(&sinks) {
        let mx = format!("mx.{d}");
        z = z.mx(d, 10, &mx).a(&mx, ip(s));
    }
    let tlsa = |z: ZoneBuilder, i: usize, chain: &[rustls_pki_types::CertificateDer<'static>]| {
        z.tlsa_for(&format!("mx.{}", names[i]), port, chain, 0, [3, 1, 1])
            .unwrap()
    };
    z = tlsa(z, 0, leaves[0].chain());
    z = tlsa(z, 1, leaves[1].chain());
    z = tlsa(z, 2, stranger.chain());
    z = tlsa(z, 3, leaves[3].chain()).bogus_tlsa("mx.bogus.test", port);
    z = z.tlsa("mx.unusable.test", port, "3 1 1 00").tlsa(
        "mx.unusable.test",
        port,
        &format!("3 1 9 {}", "ab".repeat(32)),
    );
    z = tlsa(z, 5, leaves[5].chain());
    z = tlsa(z, 6, leaves[6].chain());
    let zone = z.start().unwrap();

    let mut fx = GatewayFixture::new().unwrap();
    fx.trust_ca(&pki.root_pem()).unwrap();
    fx.dns = format!(
        "resolvers = [\"{}\"]\ntrust-anchor-file = \"{}\"\n",
        zone.authoritative_addr(),
        zone.trust_anchor_file().display()
    );
    fx.delivery += &format!("mx-port = {port}\n");
    fx.extra = destination("default", "preferred", "opportunistic", false)
        + &destination("match-mandatory.test", "preferred", "mandatory", false)
        + &destination("mismatch.test", "preferred", "mandatory", false)
        + &destination("bogus.test", "preferred", "opportunistic", false)
        + &destination("x.insecure.test", "preferred", "mandatory", false);
    fx.validate().unwrap();
    let gateway = fx.start().unwrap();
    let rig = Rig {
        _zone: zone,
        _sts: Vec::new(),
        sinks: names.iter().map(|d| d.to_string()).zip(sinks).collect(),
        fx,
        gateway,
    };
    for d in names {
        rig.submit(d).await;
    }

    // Match: TLS, authenticated by DANE, mandatory and opportunistic.
    for d in ["match-mandatory.test", "match-opportunistic.test"] {
        let tls = rig.delivered_tls(d).await.expect("TLS");
        assert_eq!(tls.sni.as_deref(), Some(format!("mx.{d}").as_str()));
        rig.gateway
            .wait_for_line(
                &[
                    &format!("delivered to <user@{d}>"),
                    "tls=TLSv1",
                    "auth=dane",
                ],
                WAIT,
            )
            .await
            .unwrap();
    }
    // All-unusable TLSA set under opportunistic DANE (RFC 7672 §2.2): TLS
    // is mandatory but unauthenticated.
    assert!(rig.delivered_tls("unusable.test").await.is_some());
    rig.gateway
        .wait_for_line(&["TLSA", "mx.unusable.test", "none usable"], WAIT)
        .await
        .unwrap();
    rig.gateway
        .wait_for_line(&["delivered to <user@unusable.test>", "tls=TLSv1"], WAIT)
        .await
        .unwrap();
    // Insecure delegation, opportunistic: no DANE, delivery goes on.
    assert!(rig.delivered_tls("y.insecure.test").await.is_some());

    // Mismatch under mandatory DANE: never delivered.
    rig.deferred("mismatch.test", &["TLS failed"]).await;
    // Bogus TLSA: deferred even when DANE is only opportunistic.
    rig.deferred("bogus.test", &["bogus"]).await;
    // Insecure MX under mandatory DANE: no secure TLSA, so no delivery.
    rig.deferred("x.insecure.test", &["insecure"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mta_sts_enforce_and_testing() {
    let pki = TestPki::new().unwrap();
    let other = TestPki::new().unwrap();
    // enforce-good: trusted cert matching the policy; enforce-bad: an
    // untrusted cert; testing-bad: untrusted, but the policy only tests.
    let names = ["enforce-good.test", "enforce-bad.test", "testing-bad.test"];
    let leaves: Vec<Arc<Leaf>> = vec![
        Arc::new(pki.leaf(&["mx.enforce-good.test"]).unwrap()),
        Arc::new(other.leaf(&["mx.enforce-bad.test"]).unwrap()),
        Arc::new(other.leaf(&["mx.testing-bad.test"]).unwrap()),
    ];
    let (port, sinks) = sinks(&leaves).await;
    let mut z = ZoneBuilder::new();
    let mut servers = Vec::new();
    let mut addresses = Vec::new();
    for (d, s) in names.iter().zip(&sinks) {
        let mx = format!("mx.{d}");
        let mode = if d.starts_with("testing") {
            "testing"
        } else {
            "enforce"
        };
        z = z
            .mx(d, 10, &mx)
            .a(&mx, ip(s))
            .txt(&format!("_mta-sts.{d}"), "v=STSv1; id=20261123");
        let host = format!("mta-sts.{d}");
        let server = MtaStsServer::start(
            &pki.leaf(&[&host]).unwrap(),
            &policy_text(mode, &[&mx], 86400),
        )
        .await
        .unwrap();
        addresses.push(format!("\"{host}\" = \"{}\"", server.addr()));
        servers.push(server);
    }
    let zone = z.start().unwrap();
    let mut fx = GatewayFixture::new().unwrap();
    fx.trust_ca(&pki.root_pem()).unwrap();
    fx.dns = format!(
        "resolvers = [\"{}\"]\ntrust-anchor-file = \"{}\"\n",
        zone.authoritative_addr(),
        zone.trust_anchor_file().display()
    );
    fx.delivery += &format!("mx-port = {port}\n");
    fx.mta_sts = format!(
        "enabled = true\nfetch-timeout-seconds = 10\naddresses = {{ {} }}\n",
        addresses.join(", ")
    );
    fx.extra = destination("default", "preferred", "none", true);
    fx.validate().unwrap();
    let gateway = fx.start().unwrap();
    let rig = Rig {
        _zone: zone,
        _sts: servers,
        sinks: names.iter().map(|d| d.to_string()).zip(sinks).collect(),
        fx,
        gateway,
    };
    for d in names {
        rig.submit(d).await;
    }

    let tls = rig.delivered_tls("enforce-good.test").await.expect("TLS");
    assert_eq!(tls.sni.as_deref(), Some("mx.enforce-good.test"));
    rig.gateway
        .wait_for_line(
            &[
                "delivered to <user@enforce-good.test>",
                "tls=TLSv1",
                "auth=",
            ],
            WAIT,
        )
        .await
        .unwrap();
    // testing mode: the failed verification is reported, delivery goes on.
    assert!(rig.delivered_tls("testing-bad.test").await.is_some());
    rig.gateway
        .wait_for_line(&["delivered to <user@testing-bad.test>"], WAIT)
        .await
        .unwrap();
    // enforce: an untrusted certificate stops delivery.
    rig.deferred("enforce-bad.test", &["verification failed"])
        .await;
    for s in &rig._sts {
        assert!(s.requests() >= 1, "every policy was fetched over HTTPS");
    }
    assert!(
        !rig.gateway.lines_with(&["MTA-STS"]).is_empty(),
        "{}",
        rig.gateway.tail(100)
    );
}
