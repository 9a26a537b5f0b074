//! What is found at start: DNSSEC broken, spool damage (fatal or not), a
//! listener that cannot bind, a CA list changed while stopped.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolver_path_that_strips_dnssec_raises_one_critical_dns_alert_with_the_fix() {
    let zone = portcullis_testkit::dns_zone::ZoneBuilder::new()
        .without_signatures()
        .mx("secure.test", 10, "mx.secure.test")
        .a("mx.secure.test", Ipv4Addr::LOCALHOST)
        .start()
        .unwrap();
    let r = Receivers::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = Log::default();
    let service = service(&r, dir.path(), &log);
    let mut s = engine_settings(dir.path(), &log, OutboundPolicy::default());
    let mut dns = portcullis_dane::dns::ResolverSettings::new(vec![zone.authoritative_addr()]);
    dns.trust_anchor_file = Some(zone.ksk_anchor_file());
    dns.timeout = Duration::from_secs(3);
    s.delivery.dns = Some(dns);
    let engine = Engine::start_with_alerts(s, service.sink()).await.unwrap();
    let (m, h) = arrived(&r, "dns:dnssec").await;
    assert_eq!(m.alert_field("class"), "dns");
    assert_eq!(m.alert_field("severity"), "critical");
    let text = h["text"].as_str().unwrap();
    assert!(
        text.contains(&zone.authoritative_addr().to_string()),
        "{text}"
    );
    assert!(text.contains("strips DNSSEC records"), "{text}");
    assert!(text.contains("Fix:"), "{text}");
    engine.shutdown(Duration::from_secs(1)).await;
    service.shutdown().await;
}

/// Eight messages in a spool; the segment file.
async fn fill_spool(spool_dir: &std::path::Path) -> std::path::PathBuf {
    use portcullis_mta::spool::{Envelope, Spool};
    let dir = spool_dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let (spool, _) = Spool::open(&dir, Default::default()).unwrap();
        for n in 0..8 {
            let env = Envelope {
                sender: format!("s{n}@example.org"),
                recipients: vec!["r@example.com".into()],
                received_at: 1_790_000_000,
                flags: Default::default(),
                dsn: Default::default(),
            };
            let body = format!("Subject: {n}\r\n\r\n{}\r\n", "x".repeat(200));
            let (_, commit) = spool.enqueue(env, body.as_bytes());
            commit.wait().unwrap();
        }
    })
    .await
    .unwrap();
    std::fs::read_dir(spool_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "log"))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_write_cut_at_start_is_told_as_information() {
    use std::io::Write;
    let r = Receivers::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = Log::default();
    let segment = fill_spool(&dir.path().join("spool")).await;
    // Half a record, as if the machine died mid-append.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&segment)
        .unwrap();
    file.write_all(&[40, 0, 0, 0, 1, 2, 3, 4, 1, 9, 9]).unwrap();
    drop(file);
    let service = service(&r, dir.path(), &log);
    let s = engine_settings(dir.path(), &log, OutboundPolicy::default());
    let engine = Engine::start_with_alerts(s, service.sink()).await.unwrap();
    let (m, h) = arrived(&r, "spool:torn-tail").await;
    assert_eq!(m.alert_field("class"), "queue");
    assert_eq!(m.alert_field("severity"), "info");
    let text = h["text"].as_str().unwrap();
    assert!(text.contains(&segment.display().to_string()), "{text}");
    assert!(text.contains("no accepted message was lost"), "{text}");
    engine.shutdown(Duration::from_secs(1)).await;
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spool_damage_found_at_start_raises_a_critical_alert_although_the_gateway_cannot_start() {
    let r = Receivers::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = Log::default();
    let spool_dir = dir.path().join("spool");
    let segment = fill_spool(&spool_dir).await;
    let mut bytes = std::fs::read(&segment).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    std::fs::write(&segment, bytes).unwrap();

    let service = service(&r, dir.path(), &log);
    let s = engine_settings(dir.path(), &log, OutboundPolicy::default());
    let err = Engine::start_with_alerts(s, service.sink())
        .await
        .unwrap_err();
    assert!(matches!(err, StartError::Spool(_)), "{err}");
    let (m, h) = arrived(&r, "spool:open").await;
    assert_eq!(m.alert_field("class"), "queue");
    assert_eq!(m.alert_field("severity"), "critical");
    let text = h["text"].as_str().unwrap();
    assert!(text.contains(&segment.display().to_string()), "{text}");
    assert!(text.contains("portcullis queue salvage"), "{text}");
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_that_cannot_bind_at_start_raises_a_critical_alert() {
    let r = Receivers::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = Log::default();
    let service = service(&r, dir.path(), &log);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut s = engine_settings(dir.path(), &log, OutboundPolicy::default());
    s.listeners[0].address = taken.local_addr().unwrap();
    let err = Engine::start_with_alerts(s, service.sink())
        .await
        .unwrap_err();
    assert!(matches!(err, StartError::Bind { .. }), "{err}");
    let (m, h) = arrived(&r, "listener:in").await;
    assert_eq!(m.alert_field("class"), "system");
    assert_eq!(m.alert_field("severity"), "critical");
    let text = h["text"].as_str().unwrap();
    assert!(
        text.contains(&taken.local_addr().unwrap().to_string()),
        "{text}"
    );
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_list_changed_while_the_gateway_was_stopped_is_told_at_the_next_start() {
    use portcullis_mta::alerts::sources::ca_list_at_start;
    let r = Receivers::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = Log::default();
    let service = service(&r, dir.path(), &log);
    let alerts_dir = portcullis_mta::alerts::alerts_dir(&dir.path().join("data"));
    let sink = service.sink();
    // First start: recorded, nothing to compare with. Same lists: nothing.
    ca_list_at_start(&sink, &alerts_dir, &r.pki.root_store().unwrap()).unwrap();
    ca_list_at_start(&sink, &alerts_dir, &r.pki.root_store().unwrap()).unwrap();
    // Then the list loses its anchor.
    ca_list_at_start(&sink, &alerts_dir, &rustls::RootCertStore::empty()).unwrap();
    let (m, h) = arrived(&r, "ca-list").await;
    assert_eq!(m.alert_field("severity"), "warning");
    let text = h["text"].as_str().unwrap();
    assert!(
        text.contains(
            "changed since the gateway last ran: 0 trust anchor(s) added, 1 removed (0 now)"
        ),
        "{text}"
    );
    assert!(service.wait_idle(WAIT).await);
    assert_eq!(r.sink.messages().len(), 1, "only the change is told");
    service.shutdown().await;
}
