//! The alert service end to end with real receivers: mail through the
//! testkit's SMTP sink over STARTTLS (parsed with Python's `email`), JSON
//! to an HTTPS webhook started here. De-duplication with a test clock;
//! delivery while the main delivery is suspended and while the spool's
//! filesystem is full; the outbox across a restart.

mod alerts_support;

use std::time::{Duration, SystemTime};

use alerts_support::*;
use portcullis_mta::alerts::{Alert, AlertClass, AlertService, Severity};
use portcullis_mta::clock::TestClock;

fn dane_alert() -> Alert {
    Alert::new(
        AlertClass::Dane,
        Severity::Warning,
        "tls-policy:example.net",
        "Mail to example.net cannot be delivered: every MX host failed DANE.",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_identical_events_make_one_alert_then_repeats_come_at_doubling_waits_with_the_count() {
    let r = Receivers::start().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::at(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000));
    let log = Log::default();
    let service =
        AlertService::start(r.settings(dir.path()), clock.shared(), log.mail_log()).unwrap();
    let sink = service.sink();
    for _ in 0..10 {
        sink.raise(dane_alert());
    }
    let mails = r.mails(1).await;
    let hooks = r.webhook.wait_for(1).await;
    assert!(service.wait_idle(WAIT).await);
    let m = &mails[0];
    assert!(m.tls, "alert mail goes over STARTTLS when offered");
    assert_eq!(m.mail_from, "<alert@gw.test>");
    assert_eq!(
        m.rcpt_to,
        vec!["<ops@example.test>"],
        "pki@ subscribed to certificate only"
    );
    assert_eq!(
        m.header("subject"),
        "[Portcullis gw.test] WARNING dane: Mail to example.net cannot be delivered: every MX host failed DANE."
    );
    assert_eq!(m.alert_field("class"), "dane");
    assert_eq!(m.alert_field("severity"), "warning");
    assert_eq!(m.alert_field("repeats"), "0");
    assert_eq!(m.header("content_type"), "text/plain");
    assert_eq!(m.header("auto_submitted"), "auto-generated");
    assert!(
        m.body().contains("Key: tls-policy:example.net"),
        "{}",
        m.body()
    );
    let h = &hooks[0];
    assert_eq!(h["class"], "dane");
    assert_eq!(h["severity"], "warning");
    assert_eq!(h["key"], "tls-policy:example.net");
    assert_eq!(h["gateway"], "gw.test");
    assert_eq!(h["repeats"], 0);
    assert_eq!(h["time"], "2027-01-15T08:00:00Z");
    assert!(
        h["text"]
            .as_str()
            .unwrap()
            .contains("every MX host failed DANE")
    );

    // Nine held back. Nothing more until the initial wait has passed.
    clock.advance(Duration::from_secs(299));
    sink.send_due();
    assert!(service.wait_idle(WAIT).await);
    assert_eq!(r.sink.messages().len(), 1);
    clock.advance(Duration::from_secs(1));
    let mails = r.mails(2).await;
    let hooks = r.webhook.wait_for(2).await;
    assert_eq!(mails[1].alert_field("repeats"), "9");
    assert!(
        mails[1].body().contains("held back 9 times"),
        "{}",
        mails[1].body()
    );
    assert_eq!(hooks[1]["repeats"], 9);

    // Then the wait doubles: 600, 1200, 2400, then 3600 at most.
    let mut expected = 2;
    for wait in [600u64, 1200, 2400, 3600, 3600] {
        for _ in 0..3 {
            sink.raise(dane_alert());
        }
        clock.advance(Duration::from_secs(wait - 1));
        sink.send_due();
        assert!(service.wait_idle(WAIT).await);
        assert_eq!(r.sink.messages().len(), expected, "nothing before {wait} s");
        clock.advance(Duration::from_secs(1));
        expected += 1;
        let mails = r.mails(expected).await;
        let hooks = r.webhook.wait_for(expected).await;
        let last = mails.last().unwrap();
        assert_eq!(last.alert_field("repeats"), "3", "after {wait} s");
        assert_eq!(hooks.last().unwrap()["repeats"], 3);
    }
    // The recent list holds each notice, with its count.
    let recent = service.recent();
    assert_eq!(recent.len(), expected);
    assert_eq!(recent[1].repeats, 9);
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipients_get_only_the_classes_they_subscribed_to_and_the_list_survives_a_restart() {
    let r = Receivers::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = Log::default();
    let settings = r.settings(dir.path());
    let service = AlertService::start(
        settings.clone(),
        portcullis_mta::clock::system(),
        log.mail_log(),
    )
    .unwrap();
    service.sink().raise(Alert::new(
        AlertClass::Certificate,
        Severity::Critical,
        "certificate:inbound:critical",
        "The certificate \"inbound\" expires in 3 day(s).",
    ));
    let mails = r.mails(1).await;
    let mut to = mails[0].rcpt_to.clone();
    to.sort();
    assert_eq!(to, vec!["<ops@example.test>", "<pki@example.test>"]);
    assert_eq!(mails[0].header("to"), "ops@example.test, pki@example.test");
    assert!(service.wait_idle(WAIT).await);
    service.shutdown().await;

    let again =
        AlertService::start(settings, portcullis_mta::clock::system(), log.mail_log()).unwrap();
    let recent = again.recent();
    assert_eq!(recent.len(), 1);
    assert_eq!(recent[0].alert.key, "certificate:inbound:critical");
    let listing = portcullis_mta::alerts::listing(&portcullis_mta::alerts::alerts_dir(dir.path()));
    assert_eq!(listing.alerts, recent);
    assert!(listing.pending.is_empty());
    again.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_that_cannot_be_sent_waits_in_the_outbox_and_goes_after_a_restart() {
    let r = Receivers::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = Log::default();
    // First run: the smarthost is a closed port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut down = r.settings(dir.path());
    down.webhook = None;
    if let portcullis_mta::alerts::Delivery::Smarthost(hosts) = &mut down.delivery {
        hosts[0].port = closed_port;
    }
    let service =
        AlertService::start(down, portcullis_mta::clock::system(), log.mail_log()).unwrap();
    service.sink().raise(dane_alert());
    log.wait_for("not sent (attempt 1)").await;
    let outbox = dir.path().join("alerts/outbox");
    // Only finished `.json` files: a retry rewrites its file through a
    // temporary name.
    let files: Vec<_> = std::fs::read_dir(&outbox)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    assert_eq!(
        files.len(),
        1,
        "one pending delivery in the outbox: {files:?}"
    );
    // The attempt is logged, then recorded in the file.
    let deadline = tokio::time::Instant::now() + WAIT;
    let listing = loop {
        let listing = portcullis_mta::alerts::listing(&dir.path().join("alerts"));
        let recorded = listing.pending.first().is_some_and(|p| p.attempts >= 1);
        if recorded || tokio::time::Instant::now() >= deadline {
            break listing;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(listing.pending.len(), 1);
    assert!(listing.pending[0].attempts >= 1, "{:?}", listing.pending);
    service.shutdown().await;

    // Second run, smarthost up: the pending alert goes, the outbox empties.
    let mut up = r.settings(dir.path());
    up.webhook = None;
    let service = AlertService::start(up, portcullis_mta::clock::system(), log.mail_log()).unwrap();
    let mails = r.mails(1).await;
    assert_eq!(mails[0].alert_field("class"), "dane");
    assert!(service.wait_idle(WAIT).await);
    assert_eq!(std::fs::read_dir(&outbox).unwrap().count(), 0);
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_go_out_while_main_delivery_is_suspended() {
    use portcullis_mta::engine::{
        DeliverySettings, Engine, EngineSettings, ListenerSettings, OutboundTls,
    };
    let r = Receivers::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = Log::default();
    let service = AlertService::start(
        r.settings(&dir.path().join("data")),
        portcullis_mta::clock::system(),
        log.mail_log(),
    )
    .unwrap();
    let access: portcullis_policy::ListenerAccessConfig =
        toml::from_str("kind = \"private\"\nrat.accept = [\"local.test\"]\n").unwrap();
    let access = portcullis_policy::ListenerAccess::from_config(&access, "t").unwrap();
    let tls = OutboundTls::new(rustls::RootCertStore::empty(), &Default::default()).unwrap();
    let settings = EngineSettings {
        hostname: "gw.test".into(),
        listeners: vec![ListenerSettings::new(
            "in",
            "127.0.0.1:0".parse().unwrap(),
            access,
        )],
        spool_dir: dir.path().join("spool"),
        spool: Default::default(),
        data_dir: dir.path().join("data"),
        delivery: DeliverySettings::new(Default::default(), tls),
        log_observer: Some(log.observer()),
        health: Default::default(),
    };
    let engine = Engine::start_with_alerts(settings, service.sink())
        .await
        .unwrap();
    engine.suspend_delivery("all").await.unwrap();
    engine.alerts().raise(Alert::new(
        AlertClass::Queue,
        Severity::Warning,
        "queue:size",
        "The queue holds 10000 messages (high mark 5000).",
    ));
    let mails = r.mails(1).await;
    assert_eq!(mails[0].alert_field("class"), "queue");
    let hooks = r.webhook.wait_for(1).await;
    assert_eq!(hooks[0]["key"], "queue:size");
    engine.shutdown(Duration::from_secs(1)).await;
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_go_out_from_memory_when_the_filesystem_of_the_spool_and_outbox_is_full() {
    let Some(fs) = portcullis_testkit::tmpfs::Tmpfs::mount(4).unwrap() else {
        return;
    };
    let r = Receivers::start().await;
    let log = Log::default();
    let service = AlertService::start(
        r.settings(fs.path()),
        portcullis_mta::clock::system(),
        log.mail_log(),
    )
    .unwrap();
    // A spool on the same filesystem, then fill it to the last byte.
    let (spool, _) =
        portcullis_mta::spool::Spool::open(fs.path().join("spool"), Default::default()).unwrap();
    fs.fill(0).unwrap();
    service.sink().raise(Alert::new(
        AlertClass::Disk,
        Severity::Critical,
        "disk:spool",
        "The spool's filesystem is full: new mail is refused with 452 4.3.1.",
    ));
    let line = log.wait_for("cannot write alert").await;
    assert!(line.contains("kept in memory"), "{line}");
    let mails = r.mails(1).await;
    assert_eq!(mails[0].alert_field("severity"), "critical");
    let hooks = r.webhook.wait_for(1).await;
    assert_eq!(hooks[0]["class"], "disk");
    assert!(service.wait_idle(WAIT).await);
    drop(spool);
    service.shutdown().await;
    fs.free().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_that_answers_503_gets_the_alert_again_later() {
    let r = Receivers::start().await;
    r.webhook
        .refuse
        .store(2, std::sync::atomic::Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let log = Log::default();
    let service = AlertService::start(
        r.settings(dir.path()),
        portcullis_mta::clock::system(),
        log.mail_log(),
    )
    .unwrap();
    service.sink().raise(dane_alert());
    let line = log.wait_for("to the webhook not sent (attempt 1)").await;
    assert!(line.contains("answered HTTP 503"), "{line}");
    log.wait_for("to the webhook not sent (attempt 2)").await;
    let hooks = r.webhook.wait_for(1).await;
    assert_eq!(hooks[0]["key"], "tls-policy:example.net");
    assert!(service.wait_idle(WAIT).await);
    // The mail went at the first try, independently of the webhook.
    assert_eq!(r.sink.messages().len(), 1);
    assert_eq!(r.webhook.count(), 1);
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_stays_small_when_the_alert_path_stays_down() {
    let r = Receivers::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = Log::default();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut down = r.settings(dir.path());
    down.webhook = None;
    down.retry_first = Duration::from_secs(60);
    down.retry_max = Duration::from_secs(60);
    if let portcullis_mta::alerts::Delivery::Smarthost(hosts) = &mut down.delivery {
        hosts[0].port = closed_port;
    }
    let service =
        AlertService::start(down, portcullis_mta::clock::system(), log.mail_log()).unwrap();
    for n in 0..510 {
        service.sink().raise(Alert::new(
            AlertClass::Tls,
            Severity::Warning,
            format!("tls-policy:d{n}.example"),
            format!("Mail to d{n}.example cannot be delivered."),
        ));
    }
    let line = log.wait_for("gave up the oldest").await;
    assert!(
        line.contains("more than 500 alert deliveries pending"),
        "{line}"
    );
    log.wait_for("[tls-policy:d509.example]").await;
    // Once the last one is stored: 500 pending, 500 files (retries rewrite
    // files through a temporary name, so only finished `.json` files count).
    let outbox = dir.path().join("alerts/outbox");
    let json_files = || {
        std::fs::read_dir(&outbox)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "json")
            })
            .count()
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    while service.pending() != 500 || json_files() != 500 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "pending: {}, outbox files: {}",
            service.pending(),
            json_files()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The newest are kept (the recent list is written by its own task:
    // wait for the last one to reach it).
    let newest_is_last = |l: &portcullis_mta::alerts::AlertListing| {
        l.alerts
            .first()
            .is_some_and(|n| n.alert.key.ends_with("d509.example"))
    };
    let listing = loop {
        let listing = portcullis_mta::alerts::listing(&dir.path().join("alerts"));
        if newest_is_last(&listing) || tokio::time::Instant::now() >= deadline {
            break listing;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        newest_is_last(&listing),
        "newest: {:?}",
        listing.alerts.first()
    );
    assert_eq!(listing.alerts.len(), 50, "the recent list keeps its 50");
    assert!(listing.pending.iter().all(|p| p.to == "ops@example.test"));
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_service_on_the_same_alerts_directory_is_refused() {
    let r = Receivers::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = Log::default();
    let first = AlertService::start(
        r.settings(dir.path()),
        portcullis_mta::clock::system(),
        log.mail_log(),
    )
    .unwrap();
    let err = AlertService::start(
        r.settings(dir.path()),
        portcullis_mta::clock::system(),
        log.mail_log(),
    )
    .unwrap_err();
    assert!(err.contains("in use by another running gateway"), "{err}");
    first.shutdown().await;
    let again = AlertService::start(
        r.settings(dir.path()),
        portcullis_mta::clock::system(),
        log.mail_log(),
    )
    .unwrap();
    again.shutdown().await;
}
