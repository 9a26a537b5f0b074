//! Health thresholds: a queue past its high mark raises a queue warning and
//! resource conservation entered (critical); once delivery drains it below
//! the low mark, conservation left (info).

use portcullis_mta::health::Gauge;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_past_its_high_mark_raises_queue_and_conservation_alerts() {
    let r = Receivers::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = Log::default();
    let service = service(&r, dir.path(), &log);
    let mut s = engine_settings(dir.path(), &log, OutboundPolicy::default());
    s.health.thresholds = s.health.thresholds.with(Gauge::QueueMessages, 2, 1);
    s.health.sample_period = Duration::from_millis(100);
    let engine = Engine::start_with_alerts(s, service.sink()).await.unwrap();
    engine.suspend_delivery("all").await.unwrap();
    for n in 0..3 {
        let d = portcullis_testkit::client::send(
            engine.local_addrs()[0],
            "alice@local.test",
            &["bob@nowhere.test"],
            &format!("queued-{n}"),
            &Default::default(),
        )
        .await
        .unwrap();
        assert!(d.result.is_accepted());
    }
    let (m, h) = arrived(&r, "health:queue-messages:pressed").await;
    assert_eq!(m.alert_field("class"), "queue");
    assert_eq!(m.alert_field("severity"), "warning");
    assert!(
        h["text"].as_str().unwrap().contains("queue-messages 3"),
        "{h}"
    );
    let (m, h) = arrived(&r, "health:conservation:entered").await;
    assert_eq!(m.alert_field("class"), "system");
    assert_eq!(m.alert_field("severity"), "critical");
    assert!(h["text"].as_str().unwrap().contains("421 4.3.2"), "{h}");

    // The queue emptied: conservation ends, and that is told too.
    let portcullis_mta::control::QueueReply::List(rows) = engine
        .queue_service()
        .handle(portcullis_mta::control::QueueRequest::List)
        .await
        .unwrap()
    else {
        panic!("a list was asked for")
    };
    for id in rows.into_iter().map(|row| row.id) {
        engine
            .queue_service()
            .handle(portcullis_mta::control::QueueRequest::Delete { id })
            .await
            .unwrap();
    }
    let (m, _) = arrived(&r, "health:conservation:left").await;
    assert_eq!(m.alert_field("severity"), "info");
    engine.shutdown(Duration::from_secs(1)).await;
    service.shutdown().await;
}
