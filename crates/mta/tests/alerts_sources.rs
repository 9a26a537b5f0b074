//! Each alert source raises its alert, and the alert arrives by mail at the
//! testkit's SMTP sink over STARTTLS (parsed with Python's `email`) and at
//! an HTTPS webhook: certificates in use expiring (test clock), required
//! TLS failing for every MX of a destination, DNSSEC stripped by the
//! resolver path, spool damage at start, a listener that cannot bind, a
//! failed reload, a changed CA list.

mod alerts_support;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use alerts_support::*;
use portcullis_mta::alerts::AlertService;
use portcullis_mta::alerts::sources::{CertificateInUse, CertificateWatch};
use portcullis_mta::clock::TestClock;
use portcullis_mta::engine::{
    DeliverySettings, Engine, EngineSettings, ListenerSettings, OutboundTls, RouteHost, SmtpRoute,
    StartError,
};
use portcullis_policy::{DestinationKey, DomainName, DomainPattern, HopHost, OutboundPolicy};
use portcullis_testkit::sink::{Sink, SinkOptions, SinkTls};

const DAY: Duration = Duration::from_secs(86_400);

fn relay_access() -> portcullis_policy::ListenerAccess {
    let cfg: portcullis_policy::ListenerAccessConfig = toml::from_str(
        r#"
        kind = "private"
        rat.accept = ["local.test"]
        [[hat.sender-group]]
        name = "LOOPBACK"
        match = ["127.0.0.1"]
        policy = "RELAYED"
        [hat.policy.RELAYED]
        action = "relay"
        "#,
    )
    .unwrap();
    portcullis_policy::ListenerAccess::from_config(&cfg, "test").unwrap()
}

fn engine_settings(dir: &std::path::Path, log: &Log, policy: OutboundPolicy) -> EngineSettings {
    let tls = OutboundTls::new(rustls::RootCertStore::empty(), &Default::default()).unwrap();
    let mut delivery = DeliverySettings::new(policy, tls);
    delivery.retry.first = Duration::from_secs(3600);
    delivery.connect_timeout = Duration::from_secs(10);
    EngineSettings {
        hostname: "gw.test".into(),
        listeners: vec![ListenerSettings::new(
            "in",
            "127.0.0.1:0".parse().unwrap(),
            relay_access(),
        )],
        spool_dir: dir.join("spool"),
        spool: Default::default(),
        data_dir: dir.join("data"),
        delivery,
        log_observer: Some(log.observer()),
    }
}

fn service(r: &Receivers, dir: &std::path::Path, log: &Log) -> AlertService {
    AlertService::start(
        r.settings(&dir.join("data")),
        portcullis_mta::clock::system(),
        log.mail_log(),
    )
    .unwrap()
}

/// The one alert of `key`, by mail and by webhook, checked to agree.
async fn arrived(r: &Receivers, key: &str) -> (ParsedMail, serde_json::Value) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mails: Vec<ParsedMail> = r.sink.messages().iter().map(parse_mail).collect();
        let hooks = r
            .webhook
            .received
            .lock()
            .unwrap()
            .iter()
            .map(|h| h.2.clone())
            .collect::<Vec<_>>();
        let m = for_key(&mails, key);
        let h = hooks_for_key(&hooks, key);
        if let (Some(m), Some(h)) = (m.first(), h.first()) {
            assert!(m.tls, "alert mail over STARTTLS");
            assert_eq!(m.alert_field("class"), h["class"].as_str().unwrap());
            assert_eq!(m.alert_field("severity"), h["severity"].as_str().unwrap());
            let text = h["text"].as_str().unwrap();
            let first_words: String = text.chars().take(40).collect();
            assert!(
                m.body().replace("\n", " ").contains(&first_words),
                "{}",
                m.body()
            );
            return ((*m).clone(), h.clone());
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no alert {key:?} by mail and webhook; mails: {:?}, hooks: {hooks:?}",
            mails
                .iter()
                .map(|m| m.header("subject"))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_in_use_warn_at_30_days_turn_critical_at_5_and_when_expired() {
    let r = Receivers::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("certs");
    let store = portcullis_certstore::Store::open_or_create(&store_dir).unwrap();
    for name in ["inbound", "spare"] {
        let leaf = r.pki.leaf(&["mx.gw.test"]).unwrap();
        store
            .import_pem(
                name,
                leaf.chain_pem().as_bytes(),
                Some(leaf.key_pem().as_bytes()),
                "test",
                false,
            )
            .unwrap();
    }
    let not_after = store
        .expiring_within(100_000, portcullis_certstore::Timestamp::now())
        .unwrap()[0]
        .not_after
        .to_system();
    let clock = TestClock::at(not_after - 40 * DAY);
    let log = Log::default();
    let service =
        AlertService::start(r.settings(dir.path()), clock.shared(), log.mail_log()).unwrap();
    let in_use = vec![CertificateInUse {
        name: "inbound".into(),
        usage: "listener[0].certificate".into(),
    }];
    // 40 days left: nothing to say.
    assert!(
        portcullis_mta::alerts::sources::certificate_alerts(
            &store_dir,
            &in_use,
            clock.now_for_test()
        )
        .unwrap()
        .is_empty()
    );
    let _watch = CertificateWatch::start(
        service.sink(),
        store_dir.clone(),
        in_use,
        log.mail_log(),
        Duration::from_millis(20),
    )
    .unwrap();
    // 30 days left counts as a warning; the daily check sees it.
    clock.set(not_after - 30 * DAY);
    let (m, h) = arrived(&r, "certificate:inbound:warning").await;
    assert_eq!(m.alert_field("severity"), "warning");
    assert!(m.body().contains("expires in 30 days"), "{}", m.body());
    assert!(
        h["text"]
            .as_str()
            .unwrap()
            .contains("listener[0].certificate")
    );
    // 5 days left: critical.
    clock.advance(25 * DAY);
    let (m, _) = arrived(&r, "certificate:inbound:critical").await;
    assert_eq!(m.alert_field("severity"), "critical");
    assert!(m.body().contains("expires in 5 day(s)"), "{}", m.body());
    // Expired: critical.
    clock.advance(6 * DAY);
    let (m, _) = arrived(&r, "certificate:inbound:expired").await;
    assert_eq!(m.alert_field("severity"), "critical");
    assert!(m.body().contains("expired on"), "{}", m.body());
    // The certificate nothing uses is never the subject of an alert.
    assert!(service.wait_idle(WAIT).await);
    let mails: Vec<ParsedMail> = r.sink.messages().iter().map(parse_mail).collect();
    assert!(mails.iter().all(|m| !m.body().contains("\"spare\"")));
    // Certificate alerts go to both recipients (pki@ subscribed to them).
    assert_eq!(mails.last().unwrap().rcpt_to.len(), 2);
    service.shutdown().await;
}

trait NowForTest {
    fn now_for_test(&self) -> SystemTime;
}

impl NowForTest for TestClock {
    fn now_for_test(&self) -> SystemTime {
        use portcullis_mta::clock::Clock;
        self.now()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_tls_failing_for_every_mx_raises_one_warning_for_the_domain() {
    let r = Receivers::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = Log::default();
    let service = service(&r, dir.path(), &log);
    let mx1 = Sink::start(SinkOptions::new(SinkTls::NotOffered))
        .await
        .unwrap();
    let mx2 = Sink::start(SinkOptions::new(SinkTls::NotOffered))
        .await
        .unwrap();
    let policy_cfg: portcullis_policy::OutboundConfig =
        toml::from_str("[[destination]]\ndomain = \"strict.test\"\ntls = \"required\"\n").unwrap();
    let mut s = engine_settings(
        dir.path(),
        &log,
        OutboundPolicy::from_config(&policy_cfg).unwrap(),
    );
    s.delivery.routes = vec![SmtpRoute {
        key: DestinationKey::Entry(DomainPattern::parse("strict.test").unwrap()),
        hosts: [
            ("mx1.strict.test", mx1.addr()),
            ("mx2.strict.test", mx2.addr()),
        ]
        .into_iter()
        .map(|(name, addr)| RouteHost {
            host: HopHost::Name(DomainName::parse(name).unwrap()),
            address: Some(addr.ip()),
            port: addr.port(),
        })
        .collect(),
    }];
    let engine = Engine::start_with_alerts(s, service.sink()).await.unwrap();
    for n in 0..3 {
        let d = portcullis_testkit::client::send(
            engine.local_addrs()[0],
            "alice@local.test",
            &["bob@strict.test"],
            &format!("strict-{n}"),
            &Default::default(),
        )
        .await
        .unwrap();
        assert!(d.result.is_accepted());
    }
    let (m, h) = arrived(&r, "tls-policy:strict.test").await;
    assert_eq!(m.alert_field("class"), "tls");
    assert_eq!(m.alert_field("severity"), "warning");
    let text = h["text"].as_str().unwrap();
    assert!(text.contains("strict.test"), "{text}");
    assert!(text.contains("every MX host (2)"), "{text}");
    assert!(text.contains("Rule R11"), "{text}");
    assert!(text.contains("STARTTLS not available"), "{text}");
    assert!(mx1.messages().is_empty() && mx2.messages().is_empty());
    // Three messages, one key: one alert (the others are held back).
    log.wait_for("deferred").await;
    assert!(service.wait_idle(WAIT).await);
    let mails: Vec<ParsedMail> = r.sink.messages().iter().map(parse_mail).collect();
    assert_eq!(for_key(&mails, "tls-policy:strict.test").len(), 1);
    engine.shutdown(Duration::from_secs(1)).await;
    service.shutdown().await;
}

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
async fn a_failed_reload_and_a_changed_ca_list_each_raise_their_alert() {
    let r = Receivers::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = Log::default();
    let service = service(&r, dir.path(), &log);
    let s = engine_settings(dir.path(), &log, OutboundPolicy::default());
    let engine = Engine::start_with_alerts(s.clone(), service.sink())
        .await
        .unwrap();

    // A reload adding a listener on a taken address fails and changes nothing.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut bad = s.clone();
    let mut second = bad.listeners[0].clone();
    second.name = "second".into();
    second.address = taken.local_addr().unwrap();
    bad.listeners.push(second);
    engine
        .reload(bad, Duration::from_secs(1))
        .await
        .unwrap_err();
    let (m, _) = arrived(&r, "reload").await;
    assert_eq!(m.alert_field("class"), "config");
    assert_eq!(m.alert_field("severity"), "warning");
    assert!(m.body().contains("changed nothing"), "{}", m.body());
    let (m, _) = arrived(&r, "listener:second").await;
    assert_eq!(m.alert_field("severity"), "critical");

    // A reload with another CA list: the change is told (info: only added).
    let mut more = s.clone();
    more.delivery.tls.roots = Arc::new(r.pki.root_store().unwrap());
    engine.reload(more, Duration::from_secs(1)).await.unwrap();
    let (m, h) = arrived(&r, "ca-list").await;
    assert_eq!(m.alert_field("class"), "certificate");
    assert_eq!(m.alert_field("severity"), "info");
    assert!(
        h["text"]
            .as_str()
            .unwrap()
            .contains("1 trust anchor(s) added, 0 removed")
    );
    engine.shutdown(Duration::from_secs(1)).await;
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dane_failing_on_every_mx_raises_a_dane_alert_sent_by_direct_mx() {
    let r = Receivers::start().await;
    let presented = r.pki.leaf(&["mx.dane.test"]).unwrap();
    let published = r.pki.leaf(&["mx.dane.test"]).unwrap();
    let mx = Sink::start(SinkOptions::new(SinkTls::Offered(Arc::new(presented))))
        .await
        .unwrap();
    let zone = portcullis_testkit::dns_zone::ZoneBuilder::new()
        .mx("dane.test", 10, "mx.dane.test")
        .a("mx.dane.test", Ipv4Addr::LOCALHOST)
        .tlsa_for(
            "mx.dane.test",
            mx.addr().port(),
            published.chain(),
            0,
            [3, 1, 1],
        )
        .unwrap()
        // Alert mail to ops@example.test goes by MX, through this resolver.
        .mx("example.test", 10, "mx.example.test")
        .a("mx.example.test", Ipv4Addr::LOCALHOST)
        .start()
        .unwrap();
    let mut dns = portcullis_dane::dns::ResolverSettings::new(vec![zone.authoritative_addr()]);
    dns.trust_anchor_file = Some(zone.ksk_anchor_file());
    dns.probe_name = Some("test.".into());
    dns.timeout = Duration::from_secs(3);
    let dir = tempfile::tempdir().unwrap();
    let log = Log::default();
    let mut alert_settings = r.settings(&dir.path().join("data"));
    alert_settings.delivery = portcullis_mta::alerts::Delivery::DirectMx;
    alert_settings.dns = Some(dns.clone());
    alert_settings.mx_port = r.sink.addr().port();
    let service = AlertService::start(
        alert_settings,
        portcullis_mta::clock::system(),
        log.mail_log(),
    )
    .unwrap();
    let policy_cfg: portcullis_policy::OutboundConfig = toml::from_str(
        "[[destination]]\ndomain = \"default\"\ntls = \"preferred\"\ndane = \"opportunistic\"\n",
    )
    .unwrap();
    let mut s = engine_settings(
        dir.path(),
        &log,
        OutboundPolicy::from_config(&policy_cfg).unwrap(),
    );
    s.delivery.dns = Some(dns);
    s.delivery.mx_port = mx.addr().port();
    let engine = Engine::start_with_alerts(s, service.sink()).await.unwrap();
    let d = portcullis_testkit::client::send(
        engine.local_addrs()[0],
        "alice@local.test",
        &["bob@dane.test"],
        "dane-1",
        &Default::default(),
    )
    .await
    .unwrap();
    assert!(d.result.is_accepted());
    let (m, h) = arrived(&r, "tls-policy:dane.test").await;
    assert_eq!(m.alert_field("class"), "dane");
    assert_eq!(m.alert_field("severity"), "warning");
    let text = h["text"].as_str().unwrap();
    assert!(text.contains("every MX host (1)"), "{text}");
    assert!(text.contains("Rule R8"), "{text}");
    assert!(text.contains("certificate verification failed"), "{text}");
    assert!(mx.messages().is_empty(), "nothing delivered against DANE");
    // The alert mail itself went by MX lookup for example.test.
    log.wait_for("sent to ops@example.test via mx.example.test")
        .await;
    engine.shutdown(Duration::from_secs(1)).await;
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mta_sts_enforce_policy_listing_no_mx_raises_an_mta_sts_alert() {
    use portcullis_testkit::mta_sts_server::{MtaStsServer, policy_text};
    let r = Receivers::start().await;
    let mx = Sink::start(SinkOptions::new(SinkTls::Offered(Arc::new(
        r.pki.leaf(&["mx.sts.test"]).unwrap(),
    ))))
    .await
    .unwrap();
    let sts = MtaStsServer::start(
        &r.pki.leaf(&["mta-sts.sts.test"]).unwrap(),
        &policy_text("enforce", &["*.elsewhere.test"], 86400),
    )
    .await
    .unwrap();
    let zone = portcullis_testkit::dns_zone::ZoneBuilder::new()
        .mx("sts.test", 10, "mx.sts.test")
        .a("mx.sts.test", Ipv4Addr::LOCALHOST)
        .txt("_mta-sts.sts.test", "v=STSv1; id=20261201;")
        .start()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = Log::default();
    let service = service(&r, dir.path(), &log);
    let policy_cfg: portcullis_policy::OutboundConfig =
        toml::from_str("[[destination]]\ndomain = \"default\"\ntls = \"preferred\"\n").unwrap();
    let mut s = engine_settings(
        dir.path(),
        &log,
        OutboundPolicy::from_config(&policy_cfg).unwrap(),
    );
    s.delivery.tls = OutboundTls::new(r.pki.root_store().unwrap(), &Default::default()).unwrap();
    let mut dns = portcullis_dane::dns::ResolverSettings::new(vec![zone.authoritative_addr()]);
    dns.trust_anchor_file = Some(zone.trust_anchor_file());
    dns.probe_name = Some("test.".into());
    dns.timeout = Duration::from_secs(5);
    s.delivery.dns = Some(dns);
    s.delivery.mx_port = mx.addr().port();
    s.delivery.mta_sts.enabled = true;
    s.delivery.mta_sts.addresses = vec![("mta-sts.sts.test".into(), sts.addr())];
    let engine = Engine::start_with_alerts(s, service.sink()).await.unwrap();
    let d = portcullis_testkit::client::send(
        engine.local_addrs()[0],
        "alice@local.test",
        &["carol@sts.test"],
        "sts-1",
        &Default::default(),
    )
    .await
    .unwrap();
    assert!(d.result.is_accepted());
    let (m, h) = arrived(&r, "tls-policy:sts.test").await;
    assert_eq!(m.alert_field("class"), "mta-sts");
    assert_eq!(m.alert_field("severity"), "warning");
    let text = h["text"].as_str().unwrap();
    assert!(text.contains("Rule R3"), "{text}");
    assert!(text.contains("does not list this MX host"), "{text}");
    assert!(mx.messages().is_empty());
    engine.shutdown(Duration::from_secs(1)).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requiretls_unmet_on_every_mx_raises_a_tls_alert() {
    use portcullis_smtp_tls::{
        ClientConfig, ClientConnection, ClientSession, Envelope, ForwardPath, MailParams,
        ReversePath, TlsRequirement, deliver,
    };
    let r = Receivers::start().await;
    // The only MX offers no STARTTLS: a REQUIRETLS message cannot go.
    let mx = Sink::start(SinkOptions::new(SinkTls::NotOffered))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = Log::default();
    let service = service(&r, dir.path(), &log);
    let access: portcullis_policy::ListenerAccessConfig = toml::from_str(
        r#"
        kind = "private"
        rat.accept = ["local.test"]
        [[hat.sender-group]]
        name = "LOOPBACK"
        match = ["127.0.0.1"]
        policy = "RELAYED"
        [hat.policy.RELAYED]
        action = "relay"
        tls = "preferred"
        "#,
    )
    .unwrap();
    let mut s = engine_settings(dir.path(), &log, OutboundPolicy::default());
    s.listeners[0].access = portcullis_policy::ListenerAccess::from_config(&access, "t").unwrap();
    s.listeners[0].tls = Some(r.pki.leaf(&["gw.test"]).unwrap().server_config().unwrap());
    s.delivery.tls = OutboundTls::new(r.pki.root_store().unwrap(), &Default::default()).unwrap();
    s.delivery.routes = vec![SmtpRoute {
        key: DestinationKey::Entry(DomainPattern::parse("rt.test").unwrap()),
        hosts: vec![RouteHost {
            host: HopHost::Name(DomainName::parse("mx.rt.test").unwrap()),
            address: Some(mx.addr().ip()),
            port: mx.addr().port(),
        }],
    }];
    let engine = Engine::start_with_alerts(s, service.sink()).await.unwrap();
    let tcp = tokio::net::TcpStream::connect(engine.local_addrs()[0])
        .await
        .unwrap();
    let conn = ClientConnection::new(
        tcp,
        ClientSession::new(ClientConfig::new("client.test"), std::time::Instant::now()),
        tokio_rustls::TlsConnector::from(r.pki.client_config().unwrap()),
        rustls_pki_types::ServerName::try_from("gw.test").unwrap(),
    );
    let envelope = Envelope {
        from: ReversePath::parse("<alice@local.test>").unwrap(),
        params: MailParams {
            requiretls: true,
            ..Default::default()
        },
        to: vec![ForwardPath::parse("<dave@rt.test>").unwrap()],
    };
    let d = deliver(
        conn,
        TlsRequirement::Required,
        envelope,
        b"Subject: requiretls\r\n\r\nOnly over TLS.\r\n",
    )
    .await
    .unwrap();
    assert!(d.result.is_accepted(), "{d:?}");
    let (m, h) = arrived(&r, "tls-policy:rt.test").await;
    assert_eq!(m.alert_field("class"), "tls");
    let text = h["text"].as_str().unwrap();
    assert!(
        text.contains("Rule R7 (message requires TLS (REQUIRETLS))"),
        "{text}"
    );
    assert!(text.contains("every MX host (1)"), "{text}");
    assert!(text.contains("STARTTLS not available"), "{text}");
    assert!(mx.messages().is_empty());
    engine.shutdown(Duration::from_secs(1)).await;
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_that_cannot_bind_when_resumed_raises_a_critical_alert() {
    let r = Receivers::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = Log::default();
    let service = service(&r, dir.path(), &log);
    let s = engine_settings(dir.path(), &log, OutboundPolicy::default());
    let engine = Engine::start_with_alerts(s, service.sink()).await.unwrap();
    let addr = engine.local_addrs()[0];
    engine.suspend_listener("in", Duration::ZERO).await.unwrap();
    // Someone else takes the address while the listener is suspended.
    let deadline = tokio::time::Instant::now() + WAIT;
    let taken = loop {
        match std::net::TcpListener::bind(addr) {
            Ok(l) => break l,
            Err(e) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{addr} never freed: {e}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let err = engine.resume_listener("in").await.unwrap_err();
    let (m, h) = arrived(&r, "listener:in").await;
    assert_eq!(m.alert_field("class"), "system");
    assert_eq!(m.alert_field("severity"), "critical");
    let text = h["text"].as_str().unwrap();
    assert!(
        text.contains("could not be resumed") && text.contains(&err),
        "{text}"
    );
    drop(taken);
    engine.shutdown(Duration::from_secs(1)).await;
    service.shutdown().await;
}
