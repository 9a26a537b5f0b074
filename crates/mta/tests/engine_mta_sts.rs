//! MTA-STS through the engine: the `_mta-sts` TXT record from the testkit's
//! signed zone, the policy from the testkit's HTTPS server (its CA is the
//! one trust list), enforce and testing modes, and the policy cache
//! persisted under the data directory.

mod engine_support;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use engine_support::*;
use portcullis_dane::dns::ResolverSettings;
use portcullis_mta::engine::Engine;
use portcullis_smtp_tls::TlsRequirement;
use portcullis_testkit::dns_zone::ZoneBuilder;
use portcullis_testkit::mta_sts_server::{MtaStsServer, policy_text};
use portcullis_testkit::pki::TestPki;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforce_and_testing_policies_are_fetched_applied_and_cached() {
    let pki = TestPki::new().unwrap();
    let mx = pki
        .leaf(&["mx.enforce.test", "mx.listed-not.test", "mx.testing.test"])
        .unwrap();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(mx.chain().to_vec(), mx.key())
        .unwrap();
    let sink = Sink::start(SinkOptions {
        tls: Some(Arc::new(config)),
        ..Default::default()
    })
    .await;
    let enforce = MtaStsServer::start(
        &pki.leaf(&["mta-sts.enforce.test"]).unwrap(),
        &policy_text("enforce", &["mx.enforce.test"], 86400),
    )
    .await
    .unwrap();
    let unlisted = MtaStsServer::start(
        &pki.leaf(&["mta-sts.listed-not.test"]).unwrap(),
        &policy_text("enforce", &["*.elsewhere.test"], 86400),
    )
    .await
    .unwrap();
    let testing = MtaStsServer::start(
        &pki.leaf(&["mta-sts.testing.test"]).unwrap(),
        &policy_text("testing", &["*.elsewhere.test"], 86400),
    )
    .await
    .unwrap();
    let ip = Ipv4Addr::LOCALHOST;
    let mut z = ZoneBuilder::new();
    for d in ["enforce.test", "listed-not.test", "testing.test"] {
        z = z
            .mx(d, 10, &format!("mx.{d}"))
            .a(&format!("mx.{d}"), ip)
            .txt(&format!("_mta-sts.{d}"), "v=STSv1; id=20261123;");
    }
    let zone = z.start().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Gateway CA");
    let gw = ca.leaf(&["gw.test"], false);
    let log = LogCapture::default();
    let mut s = settings(
        dir.path(),
        relay_access("preferred"),
        Some(gw.server_config()),
        policy("[[destination]]\ndomain = \"default\"\ntls = \"preferred\"\n"),
        pki.root_store().unwrap(),
        &log,
    );
    let mut dns = ResolverSettings::new(vec![zone.authoritative_addr()]);
    dns.trust_anchor_file = Some(zone.trust_anchor_file());
    dns.probe_name = Some("test.".into());
    dns.timeout = Duration::from_secs(5);
    s.delivery.dns = Some(dns);
    s.delivery.mx_port = sink.addr.port();
    s.delivery.mta_sts.enabled = true;
    s.delivery.mta_sts.addresses = vec![
        ("mta-sts.enforce.test".into(), enforce.addr()),
        ("mta-sts.listed-not.test".into(), unlisted.addr()),
        ("mta-sts.testing.test".into(), testing.addr()),
    ];
    let engine = Engine::start(s).await.unwrap();
    let d = send(
        engine.local_addrs()[0],
        ca.connector(),
        TlsRequirement::Required,
        "alice@local.test",
        &["a@enforce.test", "b@listed-not.test", "c@testing.test"],
        b"Subject: sts\r\n\r\nMTA-STS test.\r\n",
    )
    .await
    .unwrap();
    assert!(d.result.is_accepted(), "{d:?}");

    log.wait_for(&["MTA-STS enforce.test: mode enforce", "fetched, id 20261123"])
        .await;
    let l = log.wait_for(&["delivered to <a@enforce.test>"]).await;
    assert!(l.contains("rule=R10") && l.contains("auth=pkix"), "{l}");
    log.wait_for(&["to listed-not.test", "rule=R3", "host skipped"])
        .await;
    let l = log.wait_for(&["delivered to <c@testing.test>"]).await;
    assert!(l.contains("rule=R15"), "{l}");
    let got = sink.wait_for(2).await;
    let mut rcpts: Vec<String> = got.iter().flat_map(|m| m.to.clone()).collect();
    rcpts.sort();
    assert_eq!(
        rcpts,
        ["<a@enforce.test>", "<c@testing.test>"],
        "{}",
        log.dump()
    );
    assert_eq!(enforce.requests(), 1);

    // The policy is cached on disk and used without a new fetch.
    let cache = std::fs::read_to_string(dir.path().join("data/mta-sts/cache.json")).unwrap();
    assert!(
        cache.contains("enforce.test") && cache.contains("20261123"),
        "{cache}"
    );
    let d = send(
        engine.local_addrs()[0],
        ca.connector(),
        TlsRequirement::Required,
        "alice@local.test",
        &["z@enforce.test"],
        b"Subject: sts again\r\n\r\nMTA-STS test.\r\n",
    )
    .await
    .unwrap();
    assert!(d.result.is_accepted());
    log.wait_for(&["delivered to <z@enforce.test>"]).await;
    log.wait_for(&["MTA-STS enforce.test: mode enforce", "(cached)"])
        .await;
    assert_eq!(
        enforce.requests(),
        1,
        "a cached policy with the same id is not refetched"
    );
    engine.shutdown(Duration::from_secs(5)).await;
}

/// The logging gaps of issue 13: a `testing` policy that does not list the
/// MX says so (and delivery goes on), and an MX named in a signed zone but
/// whose address is DNSSEC-insecure says its TLSA records are not looked up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_testing_policy_mismatch_and_an_insecure_mx_address_are_logged() {
    let pki = TestPki::new().unwrap();
    let mx = pki.leaf(&["mx.insecure.test"]).unwrap();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(mx.chain().to_vec(), mx.key())
        .unwrap();
    let sink = Sink::start(SinkOptions {
        tls: Some(Arc::new(config)),
        ..Default::default()
    })
    .await;
    let testing = MtaStsServer::start(
        &pki.leaf(&["mta-sts.testing.test"]).unwrap(),
        &policy_text("testing", &["*.elsewhere.test"], 86400),
    )
    .await
    .unwrap();
    let zone = ZoneBuilder::new()
        .mx("testing.test", 10, "mx.insecure.test")
        .a("mx.insecure.test", Ipv4Addr::LOCALHOST)
        .txt("_mta-sts.testing.test", "v=STSv1; id=20261201;")
        .start()
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Gateway CA");
    let gw = ca.leaf(&["gw.test"], false);
    let log = LogCapture::default();
    let mut s = settings(
        dir.path(),
        relay_access("preferred"),
        Some(gw.server_config()),
        policy("[[destination]]\ndomain = \"default\"\ntls = \"preferred\"\n"),
        pki.root_store().unwrap(),
        &log,
    );
    let mut dns = ResolverSettings::new(vec![zone.authoritative_addr()]);
    dns.trust_anchor_file = Some(zone.trust_anchor_file());
    dns.probe_name = Some("test.".into());
    dns.timeout = Duration::from_secs(5);
    s.delivery.dns = Some(dns);
    s.delivery.mx_port = sink.addr.port();
    s.delivery.mta_sts.enabled = true;
    s.delivery.mta_sts.addresses = vec![("mta-sts.testing.test".into(), testing.addr())];
    let engine = Engine::start(s).await.unwrap();
    let d = send(
        engine.local_addrs()[0],
        ca.connector(),
        TlsRequirement::Required,
        "alice@local.test",
        &["c@testing.test"],
        b"Subject: sts testing\r\n\r\nMTA-STS testing.\r\n",
    )
    .await
    .unwrap();
    assert!(d.result.is_accepted(), "{d:?}");

    log.wait_for(&["MX for testing.test (DNSSEC secure): 10 mx.insecure.test"])
        .await;
    log.wait_for(&[
        "MX mx.insecure.test: its addresses are DNSSEC-insecure, so its TLSA records are not looked up",
    ])
    .await;
    log.wait_for(&[
        "to testing.test: MX mx.insecure.test is not in the MTA-STS policy of testing.test (mx [*.elsewhere.test]); delivering anyway because the mode is testing",
    ])
    .await;
    log.wait_for(&["delivered to <c@testing.test>"]).await;
    assert_eq!(sink.wait_for(1).await.len(), 1);
    engine.shutdown(Duration::from_secs(5)).await;
}

/// `TLS-Required: No` (RFC 8689 §5) is on the queued line, and at delivery
/// the log says it changed the decision: an enforce policy that does not
/// list the MX would skip the host (R3); with the header the message goes
/// out with opportunistic TLS (R15).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_required_no_is_logged_when_queued_and_when_it_changes_delivery() {
    let pki = TestPki::new().unwrap();
    let mx = pki.leaf(&["mx.listed-not.test"]).unwrap();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(mx.chain().to_vec(), mx.key())
        .unwrap();
    let sink = Sink::start(SinkOptions {
        tls: Some(Arc::new(config)),
        ..Default::default()
    })
    .await;
    let unlisted = MtaStsServer::start(
        &pki.leaf(&["mta-sts.listed-not.test"]).unwrap(),
        &policy_text("enforce", &["*.elsewhere.test"], 86400),
    )
    .await
    .unwrap();
    let zone = ZoneBuilder::new()
        .mx("listed-not.test", 10, "mx.listed-not.test")
        .a("mx.listed-not.test", Ipv4Addr::LOCALHOST)
        .txt("_mta-sts.listed-not.test", "v=STSv1; id=20261201;")
        .start()
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Gateway CA");
    let gw = ca.leaf(&["gw.test"], false);
    let log = LogCapture::default();
    let mut s = settings(
        dir.path(),
        relay_access("preferred"),
        Some(gw.server_config()),
        policy("[[destination]]\ndomain = \"default\"\ntls = \"preferred\"\n"),
        pki.root_store().unwrap(),
        &log,
    );
    let mut dns = ResolverSettings::new(vec![zone.authoritative_addr()]);
    dns.trust_anchor_file = Some(zone.trust_anchor_file());
    dns.probe_name = Some("test.".into());
    dns.timeout = Duration::from_secs(5);
    s.delivery.dns = Some(dns);
    s.delivery.mx_port = sink.addr.port();
    s.delivery.mta_sts.enabled = true;
    s.delivery.mta_sts.addresses = vec![("mta-sts.listed-not.test".into(), unlisted.addr())];
    let engine = Engine::start(s).await.unwrap();
    let d = send(
        engine.local_addrs()[0],
        ca.connector(),
        TlsRequirement::Required,
        "alice@local.test",
        &["b@listed-not.test"],
        b"Subject: opt out\r\nTLS-Required: No\r\n\r\nDeliver even without the recipient's TLS policy.\r\n",
    )
    .await
    .unwrap();
    assert!(d.result.is_accepted(), "{d:?}");

    log.wait_for(&["queued from <alice@local.test>", " TLS-Required: No"])
        .await;
    log.wait_for(&[
        "to listed-not.test via mx.listed-not.test: TLS-Required: No changed the decision: without it R3 (MTA-STS policy (enforce) does not list this MX host), with it R15",
    ])
    .await;
    let l = log.wait_for(&["delivered to <b@listed-not.test>"]).await;
    assert!(l.contains("rule=R15"), "{l}");
    assert_eq!(sink.wait_for(1).await.len(), 1);
    engine.shutdown(Duration::from_secs(5)).await;
}
