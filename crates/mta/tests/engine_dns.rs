//! The engine's one resolver against the testkit's signed loopback zone:
//! the start-up DNSSEC check (one clear warning with the fix when the path
//! strips DNSSEC, and short deferral lines after it), `dnssec = trust-ad`
//! behind a validating unbound (DANE still authenticates), a destination
//! outside a private trust anchor (delivered as insecure, not deferred as
//! bogus), SMTP route host names and the MTA-STS policy host resolved by
//! the configured servers (never the system resolver), and the cache flush.

mod engine_support;

use std::net::Ipv4Addr;
use std::time::Duration;

use engine_support::*;
use portcullis_dane::dns::{DnssecMode, ResolverSettings};
use portcullis_mta::engine::{Engine, RouteHost, SmtpRoute};
use portcullis_mta::mta_sts_fetch::{FetchError, PolicyFetcher};
use portcullis_policy::{DestinationKey, DomainName, DomainPattern, HopHost};
use portcullis_smtp_tls::TlsRequirement;
use portcullis_testkit::dns_zone::ZoneBuilder;
use portcullis_testkit::mta_sts_server::{MtaStsServer, policy_text};
use portcullis_testkit::pki::TestPki;

const PREFERRED: &str = "[[destination]]\ndomain = \"default\"\ntls = \"preferred\"\n";

fn dns(server: std::net::SocketAddr, anchor: Option<std::path::PathBuf>) -> ResolverSettings {
    let mut d = ResolverSettings::new(vec![server]);
    d.trust_anchor_file = anchor;
    d.timeout = Duration::from_secs(3);
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_that_strips_dnssec_is_reported_once_at_start_with_the_fix() {
    let zone = ZoneBuilder::new()
        .without_signatures()
        .mx("secure.test", 10, "mx.secure.test")
        .a("mx.secure.test", Ipv4Addr::LOCALHOST)
        .start()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("CA");
    let gw = ca.leaf(&["gw.test"], false);
    let log = LogCapture::default();
    let mut s = settings(
        dir.path(),
        relay_access("preferred"),
        Some(gw.server_config()),
        policy(PREFERRED),
        ca.roots(),
        &log,
    );
    s.delivery.dns = Some(dns(zone.authoritative_addr(), Some(zone.ksk_anchor_file())));
    let engine = Engine::start(s).await.unwrap();
    let warning = log
        .wait_for(&["DNS: DNSSEC does not work through the configured resolvers"])
        .await;
    assert!(warning.contains("strips DNSSEC records"), "{warning}");
    assert!(warning.contains("Fix:"), "{warning}");

    for n in 0..2 {
        let d = send(
            engine.local_addrs()[0],
            ca.connector(),
            TlsRequirement::Required,
            "alice@local.test",
            &["bob@secure.test"],
            format!("Subject: {n}\r\n\r\nx\r\n").as_bytes(),
        )
        .await
        .unwrap();
        assert!(d.result.is_accepted());
    }
    log.wait_for(&["deferred 1 recipient(s)", "MX lookup for secure.test"])
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let lines = log.lines();
    let deferrals: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("MID") && l.contains("deferred"))
        .collect();
    assert!(!deferrals.is_empty());
    for l in &deferrals {
        assert!(l.len() < 300, "deferral lines carry a short reason: {l}");
        println!("{l}");
    }
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("DNSSEC does not work"))
            .count(),
        1,
        "said once:\n{}",
        log.dump()
    );
    engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_ad_behind_a_validating_resolver_still_authenticates_with_dane() {
    let ca = Ca::new("DANE CA");
    let leaf = ca.leaf(&["mx.secure.test", "mx.insecure.test"], false);
    let sink = Sink::start(SinkOptions {
        tls: Some(leaf.server_config()),
        ..Default::default()
    })
    .await;
    let port = sink.addr.port();
    let zone = ZoneBuilder::new()
        .with_validating_resolver()
        .mx("secure.test", 10, "mx.secure.test")
        .a("mx.secure.test", Ipv4Addr::LOCALHOST)
        .tlsa_for("mx.secure.test", port, &leaf.chain, 0, [3, 1, 1])
        .unwrap()
        .mx("insecure.test", 10, "mx.insecure.test")
        .a("mx.insecure.test", Ipv4Addr::LOCALHOST)
        .start()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gw = ca.leaf(&["gw.test"], false);
    let log = LogCapture::default();
    let mut s = settings(
        dir.path(),
        relay_access("preferred"),
        Some(gw.server_config()),
        policy(
            "[[destination]]\ndomain = \"default\"\ntls = \"preferred\"\ndane = \"opportunistic\"\n",
        ),
        ca.roots(),
        &log,
    );
    let mut d = dns(zone.resolver_addr().unwrap(), None);
    d.dnssec = DnssecMode::TrustAd;
    d.probe_name = Some("test.".into());
    s.delivery.dns = Some(d);
    s.delivery.mx_port = port;
    let engine = Engine::start(s).await.unwrap();
    log.wait_for(&["DNS: DNSSEC check passed: test. SOA validated as secure"])
        .await;
    let d = send(
        engine.local_addrs()[0],
        ca.connector(),
        TlsRequirement::Required,
        "alice@local.test",
        &["a@secure.test", "b@insecure.test"],
        b"Subject: ad\r\n\r\nx\r\n",
    )
    .await
    .unwrap();
    assert!(d.result.is_accepted());
    let l = log.wait_for(&["delivered to <a@secure.test>"]).await;
    assert!(l.contains("rule=R8") && l.contains("auth=dane"), "{l}");
    log.wait_for(&["MX for secure.test (DNSSEC secure)"]).await;
    let l = log.wait_for(&["delivered to <b@insecure.test>"]).await;
    assert!(l.contains("rule=R15"), "{l}");
    log.wait_for(&["MX for insecure.test (insecure)"]).await;
    sink.wait_for(2).await;
    engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_a_private_anchor_mail_goes_out_as_insecure_and_routes_resolve() {
    let ca = Ca::new("CA");
    let leaf = ca.leaf(&["mx.outside.example", "relay.test"], false);
    let sink = Sink::start(SinkOptions {
        tls: Some(leaf.server_config()),
        ..Default::default()
    })
    .await;
    let zone = ZoneBuilder::new()
        .mx("outside.example", 10, "mx.outside.example")
        .a("mx.outside.example", Ipv4Addr::LOCALHOST)
        .a("relay.test", Ipv4Addr::LOCALHOST)
        .start()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gw = ca.leaf(&["gw.test"], false);
    let log = LogCapture::default();
    let mut s = settings(
        dir.path(),
        relay_access("preferred"),
        Some(gw.server_config()),
        policy(PREFERRED),
        ca.roots(),
        &log,
    );
    // A route whose host is given by name only: the gateway's resolver
    // finds it.
    s.delivery.routes = vec![SmtpRoute {
        key: DestinationKey::Entry(DomainPattern::parse("routed.example").unwrap()),
        hosts: vec![RouteHost {
            host: HopHost::Name(DomainName::parse("relay.test").unwrap()),
            address: None,
            port: sink.addr.port(),
        }],
    }];
    s.delivery.dns = Some(dns(zone.authoritative_addr(), Some(zone.ksk_anchor_file())));
    s.delivery.mx_port = sink.addr.port();
    let engine = Engine::start(s).await.unwrap();
    log.wait_for(&["DNS: DNSSEC check passed: test. SOA validated as secure"])
        .await;
    let d = send(
        engine.local_addrs()[0],
        ca.connector(),
        TlsRequirement::Required,
        "alice@local.test",
        &["x@outside.example", "y@routed.example"],
        b"Subject: out\r\n\r\nx\r\n",
    )
    .await
    .unwrap();
    assert!(d.result.is_accepted());
    log.wait_for(&["MX for outside.example (outside the trust anchors (insecure))"])
        .await;
    let l = log.wait_for(&["delivered to <x@outside.example>"]).await;
    assert!(l.contains("rule=R15"), "{l}");
    log.wait_for(&["delivered to <y@routed.example>", "relay.test"])
        .await;
    sink.wait_for(2).await;

    engine.flush_dns_cache().unwrap();
    log.wait_for(&["DNS: cache flushed"]).await;
    engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_resolver_nothing_is_resolved_by_the_system() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("CA");
    let gw = ca.leaf(&["gw.test"], false);
    let log = LogCapture::default();
    let mut s = settings(
        dir.path(),
        relay_access("preferred"),
        Some(gw.server_config()),
        policy(PREFERRED),
        ca.roots(),
        &log,
    );
    // `localhost` is what a system resolver would always answer.
    s.delivery.routes = vec![SmtpRoute {
        key: DestinationKey::Default,
        hosts: vec![RouteHost {
            host: HopHost::Name(DomainName::parse("localhost").unwrap()),
            address: None,
            port: 25,
        }],
    }];
    let engine = Engine::start(s).await.unwrap();
    log.wait_for(&["DNS: no resolver configured"]).await;
    assert!(engine.flush_dns_cache().is_err());
    send(
        engine.local_addrs()[0],
        ca.connector(),
        TlsRequirement::Required,
        "alice@local.test",
        &["z@elsewhere.example"],
        b"Subject: none\r\n\r\nx\r\n",
    )
    .await
    .unwrap();
    log.wait_for(&["route host localhost: no DNS resolver is configured to resolve it"])
        .await;
    log.wait_for(&["deferred 1 recipient(s)"]).await;
    engine.shutdown(Duration::from_secs(5)).await;

    // The MTA-STS fetcher likewise: no resolver, no fixed address, no fetch.
    let tls = rustls::ClientConfig::builder()
        .with_root_certificates(ca.roots())
        .with_no_client_auth();
    let fetcher = PolicyFetcher::new(std::sync::Arc::new(tls), Duration::from_secs(2));
    match fetcher.fetch("localhost").await {
        Err(e @ FetchError::Resolve { .. }) => {
            assert!(
                e.to_string().contains("no DNS resolver is configured"),
                "{e}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mta_sts_policy_host_is_found_through_the_configured_servers() {
    let pki = TestPki::new().unwrap();
    let server = MtaStsServer::start(
        &pki.leaf(&["mta-sts.example.test"]).unwrap(),
        &policy_text("enforce", &["mx.example.test"], 86400),
    )
    .await
    .unwrap();
    let zone = ZoneBuilder::new()
        .a("mta-sts.example.test", Ipv4Addr::LOCALHOST)
        .start()
        .unwrap();
    let resolver = portcullis_mta::dns::Resolver::new(&dns(
        zone.authoritative_addr(),
        Some(zone.ksk_anchor_file()),
    ))
    .unwrap();
    let tls = rustls::ClientConfig::builder()
        .with_root_certificates(pki.root_store().unwrap())
        .with_no_client_auth();
    let fetcher = PolicyFetcher::new(std::sync::Arc::new(tls), Duration::from_secs(5))
        .with_resolver(resolver)
        .with_port(server.addr().port());
    let text = fetcher.fetch("example.test").await.unwrap();
    assert!(text.contains("mode: enforce"), "{text}");
    // A host the zone does not have: a resolution error, not a fallback.
    match fetcher.fetch("missing.test").await {
        Err(e @ FetchError::Resolve { .. }) => {
            assert!(e.to_string().contains("mta-sts.missing.test"), "{e}")
        }
        other => panic!("{other:?}"),
    }
}
