//! DANE and DNSSEC-aware MX delivery through the engine, against the
//! testkit's DNSSEC-signed `test.` zone (knotd on loopback, validated by
//! hickory with the zone's own trust anchor) and a TLS sink whose
//! certificate the TLSA records are computed from. One message goes to
//! six domains, one per case: DANE match, mismatch, bogus TLSA, all
//! records unusable, insecure zone (opportunistic TLS), and DANE
//! mandatory on an insecure zone.

mod engine_support;

use std::net::Ipv4Addr;
use std::time::Duration;

use engine_support::*;
use portcullis_dane::dns::ResolverSettings;
use portcullis_mta::engine::Engine;
use portcullis_smtp_tls::TlsRequirement;
use portcullis_testkit::dns_zone::ZoneBuilder;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dane_outcomes_per_destination() {
    let ca = Ca::new("DANE CA");
    let names = [
        "mx.secure.test",
        "mx.mismatch.test",
        "mx.bogus.test",
        "mx.unusable.test",
        "mx.insecure.test",
    ];
    let leaf = ca.leaf(&names, false);
    let other = ca.leaf(&["mx.mismatch.test"], false);
    let sink = Sink::start(SinkOptions {
        tls: Some(leaf.server_config()),
        ..Default::default()
    })
    .await;
    let port = sink.addr.port();
    let ip = Ipv4Addr::LOCALHOST;
    let mut z = ZoneBuilder::new();
    for (domain, host) in [
        ("secure.test", "mx.secure.test"),
        ("mismatch.test", "mx.mismatch.test"),
        ("bogus.test", "mx.bogus.test"),
        ("unusable.test", "mx.unusable.test"),
        ("insecure.test", "mx.insecure.test"),
        ("mand.insecure.test", "mx.insecure.test"),
    ] {
        z = z.mx(domain, 10, host);
        if domain != "mand.insecure.test" {
            z = z.a(host, ip);
        }
    }
    let zone = z
        .tlsa_for("mx.secure.test", port, &leaf.chain, 0, [3, 1, 1])
        .unwrap()
        .tlsa_for("mx.mismatch.test", port, &other.chain, 0, [3, 1, 1])
        .unwrap()
        .tlsa_for("mx.bogus.test", port, &leaf.chain, 0, [3, 1, 1])
        .unwrap()
        .bogus_tlsa("mx.bogus.test", port)
        .tlsa(
            "mx.unusable.test",
            port,
            &format!("3 1 9 {}", "ab".repeat(32)),
        )
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
            r#"
            [[destination]]
            domain = "default"
            tls = "preferred"
            dane = "opportunistic"
            [[destination]]
            domain = "mand.insecure.test"
            dane = "mandatory"
            "#,
        ),
        ca.roots(),
        &log,
    );
    let mut dns = ResolverSettings::new(vec![zone.authoritative_addr()]);
    dns.trust_anchor_file = Some(zone.trust_anchor_file());
    dns.probe_name = Some("test.".into());
    dns.timeout = Duration::from_secs(5);
    s.delivery.dns = Some(dns);
    s.delivery.mx_port = port;
    let engine = Engine::start(s).await.unwrap();
    let to = [
        "a@secure.test",
        "b@mismatch.test",
        "c@bogus.test",
        "d@unusable.test",
        "e@insecure.test",
        "f@mand.insecure.test",
    ];
    let d = send(
        engine.local_addrs()[0],
        ca.connector(),
        TlsRequirement::Required,
        "alice@local.test",
        &to,
        b"Subject: dane\r\n\r\nDANE test.\r\n",
    )
    .await
    .unwrap();
    assert!(d.result.is_accepted(), "{d:?}");

    // Match: DANE-EE authenticates the peer (R8).
    let l = log
        .wait_for(&["delivered to <a@secure.test>", "via mx.secure.test"])
        .await;
    assert!(l.contains("rule=R8") && l.contains("auth=dane"), "{l}");
    log.wait_for(&["MX for secure.test (DNSSEC secure)"]).await;
    log.wait_for(&["auth=dane ok (dane record 3 1 1"]).await;
    // Mismatch: TLS is up but the certificate does not match: not sent.
    log.wait_for(&[
        "to mismatch.test",
        "rule=R8",
        "TLS failed: dane verification failed",
    ])
    .await;
    // Bogus TLSA: never delivered, the host is skipped (R1).
    log.wait_for(&["to bogus.test", "rule=R1", "host skipped"])
        .await;
    // All records unusable: TLS mandatory without authentication (R9).
    let l = log.wait_for(&["delivered to <d@unusable.test>"]).await;
    assert!(l.contains("rule=R9") && l.contains("tls=TLSv1.3"), "{l}");
    // Insecure zone: no DANE, opportunistic TLS (R15).
    let l = log.wait_for(&["delivered to <e@insecure.test>"]).await;
    assert!(l.contains("rule=R15"), "{l}");
    log.wait_for(&["MX for insecure.test (insecure)"]).await;
    // DANE mandatory on an insecure zone: skipped (R2).
    log.wait_for(&["to mand.insecure.test", "rule=R2", "host skipped"])
        .await;
    let got = sink.wait_for(3).await;
    let mut rcpts: Vec<String> = got.iter().flat_map(|m| m.to.clone()).collect();
    rcpts.sort();
    assert_eq!(
        rcpts,
        ["<a@secure.test>", "<d@unusable.test>", "<e@insecure.test>"],
        "{}",
        log.dump()
    );
    assert!(got.iter().all(|m| m.tls.is_some()));
    log.wait_for(&["deferred 3 recipient(s)"]).await;
    engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_name_sender_groups_match_the_forward_confirmed_name() {
    // 127.0.0.1 reverse-resolves to `localhost`, which resolves back to
    // 127.0.0.1 (RFC 6761 names answered by the resolver itself): the
    // client's confirmed name is `localhost`. A suffix group for another
    // domain must not match; the `localhost` host group must.
    let zone = ZoneBuilder::new()
        .a("client.relay.test", Ipv4Addr::LOCALHOST)
        .start()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("CA");
    let gw = ca.leaf(&["gw.test"], false);
    let log = LogCapture::default();
    let mut s = settings(
        dir.path(),
        access(
            r#"
            kind = "private"
            rat.accept = ["local.test"]
            [[hat.sender-group]]
            name = "RELAY-TEST"
            match = [".relay.test"]
            policy = "RELAYED"
            [[hat.sender-group]]
            name = "LOCALNAME"
            match = ["localhost"]
            policy = "ACCEPTED"
            [hat.policy.RELAYED]
            action = "relay"
            tls = "preferred"
            [hat.policy.ACCEPTED]
            action = "accept"
            tls = "required"
            "#,
        ),
        Some(gw.server_config()),
        policy("[[destination]]\ndomain = \"default\"\ntls = \"preferred\"\n"),
        ca.roots(),
        &log,
    );
    let mut dns = ResolverSettings::new(vec![zone.authoritative_addr()]);
    dns.timeout = Duration::from_secs(2);
    s.delivery.dns = Some(dns);
    let engine = Engine::start(s).await.unwrap();
    let d = send(
        engine.local_addrs()[0],
        ca.connector(),
        TlsRequirement::Required,
        "a@local.test",
        &["b@example.net"],
        b"Subject: x\r\n\r\nx\r\n",
    )
    .await
    .unwrap();
    assert_eq!(d.result.recipients[0].1.as_ref().unwrap().code(), 550);
    log.wait_for(&[
        "(localhost, forward-confirmed)",
        "sender-group LOCALNAME policy ACCEPTED tls=required",
    ])
    .await;
    engine.shutdown(Duration::from_secs(5)).await;
}
