//! What operator actions run into: a refused reload, a changed CA list at a
//! reload, a listener that cannot bind when resumed.

use super::*;

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
