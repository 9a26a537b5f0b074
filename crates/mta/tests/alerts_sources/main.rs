//! Each alert source raises its alert, and the alert arrives by mail at the
//! testkit's SMTP sink over STARTTLS (parsed with Python's `email`) and at
//! an HTTPS webhook: certificates in use expiring (test clock), required
//! TLS failing for every MX of a destination, DNSSEC stripped by the
//! resolver path, spool damage at start, a listener that cannot bind, a
//! failed reload, a changed CA list, health thresholds and resource
//! conservation. One test binary (shared helpers here),
//! a module per kind of source.

#[path = "../alerts_support/mod.rs"]
mod alerts_support;
mod at_start;
mod certificates;
mod health_gauges;
mod operator;
mod tls_policy;

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

pub(crate) fn relay_access() -> portcullis_policy::ListenerAccess {
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

pub(crate) fn engine_settings(
    dir: &std::path::Path,
    log: &Log,
    policy: OutboundPolicy,
) -> EngineSettings {
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
        health: Default::default(),
    }
}

pub(crate) fn service(r: &Receivers, dir: &std::path::Path, log: &Log) -> AlertService {
    AlertService::start(
        r.settings(&dir.join("data")),
        portcullis_mta::clock::system(),
        log.mail_log(),
    )
    .unwrap()
}

/// The one alert of `key`, by mail and by webhook, checked to agree.
pub(crate) async fn arrived(r: &Receivers, key: &str) -> (ParsedMail, serde_json::Value) {
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
