//! The TLS rules of the decision refusing every MX of a destination:
//! required TLS, DANE, MTA-STS enforce, REQUIRETLS.

use super::*;

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
