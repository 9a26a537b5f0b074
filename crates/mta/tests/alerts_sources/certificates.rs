//! Certificates in use expiring, on a test clock.

use super::*;

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
