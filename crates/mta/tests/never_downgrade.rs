//! The never-downgrade memory through the engine, against the testkit's
//! DNSSEC-signed `test.` zone on loopback and real TLS sinks: a domain
//! delivered with DANE is remembered (and the memory survives a restart);
//! once its TLSA records are gone and its server no longer offers
//! STARTTLS, the next message is deferred with a mail-log line and nothing
//! reaches the server in cleartext; after the operator forgets the entry,
//! the message goes as the policy allows (cleartext, `preferred-verify`).
//! A message that says `TLS-Required: No` is not held back by the memory.
//! A second case: TLSA gone while STARTTLS still works with a certificate
//! no CA list vouches for: unauthenticated TLS, also deferred, and counted
//! for TLS-RPT as `dane-required`.

mod engine_support;

use std::net::Ipv4Addr;
use std::time::Duration;

use engine_support::*;
use portcullis_dane::dns::ResolverSettings;
use portcullis_mta::control::{QueueReply, QueueRequest, RetryWhat};
use portcullis_mta::engine::Engine;
use portcullis_mta::settings::EngineSettings;
use portcullis_mta::tlsrpt::{Reporting, TlsReportSettings};
use portcullis_smtp_tls::TlsRequirement;
use portcullis_testkit::dns_zone::{DnsZone, ZoneBuilder};

const POLICY: &str = r#"
    [[destination]]
    domain = "default"
    tls = "preferred"
    dane = "opportunistic"
    [[destination]]
    domain = "nd.test"
    tls = "preferred-verify"
    never-downgrade = true
    never-downgrade-days = 30
"#;

fn engine_settings(
    dir: &std::path::Path,
    ca: &Ca,
    zone: &DnsZone,
    port: u16,
    log: &LogCapture,
) -> EngineSettings {
    let gw = ca.leaf(&["gw.test"], false);
    let mut s = settings(
        dir,
        relay_access("preferred"),
        Some(gw.server_config()),
        policy(POLICY),
        ca.roots(),
        log,
    );
    let mut dns = ResolverSettings::new(vec![zone.authoritative_addr()]);
    dns.trust_anchor_file = Some(zone.trust_anchor_file());
    dns.probe_name = Some("test.".into());
    dns.timeout = Duration::from_secs(5);
    s.delivery.dns = Some(dns);
    s.delivery.mx_port = port;
    s
}

async fn submit(engine: &Engine, ca: &Ca, subject: &str) {
    submit_headers(engine, ca, &format!("Subject: {subject}\r\n")).await;
}

async fn submit_headers(engine: &Engine, ca: &Ca, headers: &str) {
    let d = send(
        engine.local_addrs()[0],
        ca.connector(),
        TlsRequirement::Required,
        "alice@local.test",
        &["bob@nd.test"],
        format!("{headers}\r\nnever downgrade\r\n").as_bytes(),
    )
    .await
    .unwrap();
    assert!(d.result.is_accepted(), "{d:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remembered_dane_domain_is_deferred_not_downgraded_until_forgotten() {
    let ca = Ca::new("ND CA");
    // A self-signed-style leaf from a CA the gateway does not trust for
    // PKIX would also do; DANE-EE (3 1 1) authenticates it either way.
    let leaf = ca.leaf(&["mx.nd.test"], false);
    let dir = tempfile::tempdir().unwrap();

    // 1. TLSA published, STARTTLS offered: delivered with DANE, remembered.
    let tls_sink = Sink::start(SinkOptions {
        tls: Some(leaf.server_config()),
        ..Default::default()
    })
    .await;
    let port = tls_sink.addr.port();
    let zone = ZoneBuilder::new()
        .mx("nd.test", 10, "mx.nd.test")
        .a("mx.nd.test", Ipv4Addr::LOCALHOST)
        .tlsa_for("mx.nd.test", port, &leaf.chain, 0, [3, 1, 1])
        .unwrap()
        .start()
        .unwrap();
    let log = LogCapture::default();
    let engine = Engine::start(engine_settings(dir.path(), &ca, &zone, port, &log))
        .await
        .unwrap();
    submit(&engine, &ca, "first").await;
    let l = log.wait_for(&["delivered to <bob@nd.test>"]).await;
    assert!(l.contains("auth=dane"), "{l}");
    log.wait_for(&["never-downgrade: nd.test remembered as delivered with dane for 30 days"])
        .await;
    let rows = engine.never_downgrade();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].domain, "nd.test");
    assert_eq!(tls_sink.wait_for(1).await.len(), 1);
    engine.shutdown(Duration::from_secs(5)).await;
    drop(zone);

    // 2. Restart. The TLSA records are gone and the server no longer
    // offers STARTTLS: the memory (read back from the data directory)
    // defers the message instead of sending it in cleartext.
    let plain_sink = Sink::start(SinkOptions::default()).await;
    let port = plain_sink.addr.port();
    let zone = ZoneBuilder::new()
        .mx("nd.test", 10, "mx.nd.test")
        .a("mx.nd.test", Ipv4Addr::LOCALHOST)
        .start()
        .unwrap();
    let log = LogCapture::default();
    let engine = Engine::start(engine_settings(dir.path(), &ca, &zone, port, &log))
        .await
        .unwrap();
    assert_eq!(engine.never_downgrade().len(), 1, "kept across the restart");
    submit(&engine, &ca, "second").await;
    let l = log.wait_for(&["deferred by never-downgrade"]).await;
    for part in [
        "to nd.test via mx.nd.test",
        "delivered with authenticated TLS (dane) since",
        "remembered until",
        "would have been cleartext (STARTTLS not offered)",
        "(4.7.5)",
    ] {
        assert!(l.contains(part), "{part:?} missing from {l}");
    }
    log.wait_for(&["deferred 1 recipient(s)"]).await;
    assert!(
        plain_sink.received().is_empty(),
        "sent in cleartext: {}",
        log.dump()
    );
    assert!(log.find(&["delivered to <bob@nd.test>"]).is_none());

    // A message that says `TLS-Required: No` (honoured by default) asks
    // for delivery even below the TLS policy: the memory steps aside.
    submit_headers(&engine, &ca, "Subject: opt-out\r\nTLS-Required: No\r\n").await;
    log.wait_for(&["never-downgrade not applied: the message says TLS-Required: No"])
        .await;
    let l = log.wait_for(&["delivered to <bob@nd.test>"]).await;
    assert!(l.contains("tls=none"), "{l}");
    let got = plain_sink.wait_for(1).await;
    assert_eq!(got.len(), 1);
    assert!(
        String::from_utf8_lossy(&got[0].body).contains("TLS-Required: No"),
        "only the opted-out message went in cleartext"
    );

    // 3. The operator forgets the entry and retries: the policy
    // (preferred-verify) allows cleartext when STARTTLS is not offered.
    let line = engine.forget_never_downgrade(Some("nd.test")).unwrap();
    assert_eq!(line, "never-downgrade memory of nd.test forgotten");
    assert!(engine.forget_never_downgrade(Some("nd.test")).is_err());
    let done = engine
        .queue_service()
        .handle(QueueRequest::Retry {
            target: RetryWhat::All,
        })
        .await
        .unwrap();
    assert!(matches!(done, QueueReply::Done(_)), "{done:?}");
    let got = plain_sink.wait_for(2).await;
    assert_eq!(got.len(), 2, "{}", log.dump());
    assert!(String::from_utf8_lossy(&got[1].body).contains("Subject: second"));
    assert!(got.iter().all(|m| m.tls.is_none()));
    engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remembered_domain_is_not_sent_over_unauthenticated_tls() {
    let ca = Ca::new("ND CA");
    let leaf = ca.leaf(&["mx.nd.test"], false);
    let dir = tempfile::tempdir().unwrap();
    let tls_sink = Sink::start(SinkOptions {
        tls: Some(leaf.server_config()),
        ..Default::default()
    })
    .await;
    let port = tls_sink.addr.port();
    let zone = ZoneBuilder::new()
        .mx("nd.test", 10, "mx.nd.test")
        .a("mx.nd.test", Ipv4Addr::LOCALHOST)
        .tlsa_for("mx.nd.test", port, &leaf.chain, 0, [3, 1, 1])
        .unwrap()
        .start()
        .unwrap();
    let log = LogCapture::default();
    let engine = Engine::start(engine_settings(dir.path(), &ca, &zone, port, &log))
        .await
        .unwrap();
    submit(&engine, &ca, "first").await;
    log.wait_for(&["never-downgrade: nd.test remembered as delivered with dane"])
        .await;
    assert_eq!(tls_sink.wait_for(1).await.len(), 1);
    engine.shutdown(Duration::from_secs(5)).await;
    drop(zone);

    // STARTTLS still offered, but with a certificate from a CA the gateway
    // does not trust, and no TLSA records: preferred-verify would deliver
    // over unauthenticated TLS (report-only check). Refused.
    let stranger = Ca::new("Unknown CA").leaf(&["mx.nd.test"], false);
    let unauth_sink = Sink::start(SinkOptions {
        tls: Some(stranger.server_config()),
        ..Default::default()
    })
    .await;
    let port = unauth_sink.addr.port();
    let zone = ZoneBuilder::new()
        .mx("nd.test", 10, "mx.nd.test")
        .a("mx.nd.test", Ipv4Addr::LOCALHOST)
        .start()
        .unwrap();
    let log = LogCapture::default();
    let engine = Engine::start(engine_settings(dir.path(), &ca, &zone, port, &log))
        .await
        .unwrap();
    engine.start_tls_reports(report_settings(dir.path())).await;
    submit(&engine, &ca, "second").await;
    let l = log.wait_for(&["deferred by never-downgrade"]).await;
    assert!(
        l.contains("would have been unauthenticated TLS (certificate not verified)"),
        "{l}"
    );
    log.wait_for(&["auth=pkix FAILED, report only"]).await;
    log.wait_for(&["deferred 1 recipient(s)"]).await;
    assert!(unauth_sink.received().is_empty(), "{}", log.dump());
    engine.shutdown(Duration::from_secs(5)).await;

    // Counted for TLS-RPT as the remembered DANE requires (RFC 8460 §4.3):
    // the day's aggregate for nd.test, written at shutdown.
    let counts = day_aggregates(&dir.path().join("tls-report"), "nd.test.json");
    assert!(
        counts.contains("dane-required") && counts.contains("mx.nd.test"),
        "{counts}"
    );
}

fn report_settings(dir: &std::path::Path) -> TlsReportSettings {
    TlsReportSettings {
        reporting: Reporting {
            organization_name: "Portcullis Test Gateway".into(),
            contact_info: "mailto:postmaster@gw.test".into(),
            submitter: "gw.test".into(),
        },
        from: "tls-reports@gw.test".into(),
        dkim: None,
        flush_interval: Duration::from_secs(3600),
        max_delay: Duration::ZERO,
        store_dir: dir.join("tls-report"),
        clock: portcullis_mta::clock::system(),
    }
}

/// The text of every day's `file` under the TLS-RPT store.
fn day_aggregates(store: &std::path::Path, file: &str) -> String {
    std::fs::read_dir(store)
        .unwrap()
        .map(|day| std::fs::read_to_string(day.unwrap().path().join(file)).unwrap_or_default())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remembered_domain_gets_no_cleartext_retry_after_a_failed_handshake() {
    // The gateway speaks only TLS 1.3 throughout.
    let tls13 = |mut s: EngineSettings| {
        s.delivery.tls.versions = vec![&rustls::version::TLS13];
        s
    };
    let ca = Ca::new("ND CA");
    let leaf = ca.leaf(&["mx.nd.test"], false);
    let dir = tempfile::tempdir().unwrap();
    let tls_sink = Sink::start(SinkOptions {
        tls: Some(leaf.server_config()),
        ..Default::default()
    })
    .await;
    let port = tls_sink.addr.port();
    let zone = ZoneBuilder::new()
        .mx("nd.test", 10, "mx.nd.test")
        .a("mx.nd.test", Ipv4Addr::LOCALHOST)
        .tlsa_for("mx.nd.test", port, &leaf.chain, 0, [3, 1, 1])
        .unwrap()
        .start()
        .unwrap();
    let log = LogCapture::default();
    let engine = Engine::start(tls13(engine_settings(dir.path(), &ca, &zone, port, &log)))
        .await
        .unwrap();
    submit(&engine, &ca, "first").await;
    log.wait_for(&["never-downgrade: nd.test remembered as delivered with dane"])
        .await;
    engine.shutdown(Duration::from_secs(5)).await;
    drop(zone);

    // TLSA gone; the server now speaks only TLS 1.2, so the handshake
    // fails after its 220. The policy would retry in cleartext and exempt
    // the host; the memory refuses both.
    let config = rustls::ServerConfig::builder_with_protocol_versions(&[&rustls::version::TLS12])
        .with_no_client_auth()
        .with_single_cert(leaf.chain.clone(), leaf.key())
        .unwrap();
    let broken_sink = Sink::start(SinkOptions {
        tls: Some(std::sync::Arc::new(config)),
        ..Default::default()
    })
    .await;
    let port = broken_sink.addr.port();
    let zone = ZoneBuilder::new()
        .mx("nd.test", 10, "mx.nd.test")
        .a("mx.nd.test", Ipv4Addr::LOCALHOST)
        .start()
        .unwrap();
    let log = LogCapture::default();
    let engine = Engine::start(tls13(engine_settings(dir.path(), &ca, &zone, port, &log)))
        .await
        .unwrap();
    submit(&engine, &ca, "second").await;
    log.wait_for(&["TLS failed: handshake error"]).await;
    let l = log.wait_for(&["deferred by never-downgrade"]).await;
    assert!(
        l.contains("would have been cleartext (retry after a failed TLS handshake)"),
        "{l}"
    );
    log.wait_for(&["deferred 1 recipient(s)"]).await;
    assert!(broken_sink.received().is_empty(), "{}", log.dump());
    assert!(
        log.find(&["exempt from STARTTLS"]).is_none(),
        "{}",
        log.dump()
    );
    engine.shutdown(Duration::from_secs(5)).await;
}
