//! Many messages over concurrent connections, both legs over STARTTLS:
//! every message answered `250` reaches the sink exactly once, and the
//! spool is empty afterwards. Prints the rate and latency for information
//! only (no timing assertion; this is a debug build).

mod engine_support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use engine_support::*;
use portcullis_mta::engine::Engine;
use portcullis_testkit::loadgen::{LoadOptions, run};

/// Ten connections from one host whose policy allows exactly ten: a client
/// reconnecting right after `221` must not be refused (see
/// `Limits::acquire_within`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_load_over_tls_arrives_exactly_once() {
    let ca = Ca::new("Load CA");
    let sink = Sink::start(SinkOptions {
        tls: Some(ca.leaf(&["mx.sink.test"], false).server_config()),
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let gw = ca.leaf(&["gw.test"], false);
    let log = LogCapture::default();
    let mut s = settings(
        dir.path(),
        access(
            r#"
            kind = "private"
            [[hat.sender-group]]
            name = "LOAD"
            match = ["127.0.0.1"]
            policy = "RELAYED"
            [hat.policy.RELAYED]
            action = "relay"
            tls = "required"
            max-connections-per-host = 10
            "#,
        ),
        Some(gw.server_config()),
        policy("[[destination]]\ndomain = \"default\"\ntls = \"required\"\n"),
        ca.roots(),
        &log,
    );
    s.delivery.routes = vec![route("sink.test", "mx.sink.test", sink.addr)];
    let engine = Engine::start(s).await.unwrap();
    let client = rustls::ClientConfig::builder()
        .with_root_certificates(ca.roots())
        .with_no_client_auth();
    let mut opts = LoadOptions::new(engine.local_addrs()[0]);
    opts.messages = 300;
    opts.connections = 10;
    opts.per_connection = 5;
    opts.tls = Some((Arc::new(client), "gw.test".into()));
    let report = run(opts).await.unwrap();
    assert_eq!(
        report.accepted(),
        300,
        "{:?}",
        report.sent.iter().find(|s| !s.accepted)
    );
    println!(
        "{} messages in {:?}: {:.0}/s, p50 {:?}, p99 {:?}",
        report.accepted(),
        report.elapsed,
        report.rate(),
        report.latency_quantile(0.5),
        report.latency_quantile(0.99)
    );
    let got = sink.wait_for(300).await;
    let seqs: BTreeSet<String> = got
        .iter()
        .filter_map(|m| {
            String::from_utf8_lossy(&m.body)
                .lines()
                .find_map(|l| l.strip_prefix("X-Seq: ").map(str::to_owned))
        })
        .collect();
    assert_eq!(got.len(), 300, "duplicates or losses");
    assert_eq!(seqs.len(), 300);
    assert!(got.iter().all(|m| m.tls.is_some()));
    // Every delivery finished in the spool (give the last records a moment).
    for _ in 0..200 {
        if engine.spool().messages().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(engine.spool().messages().is_empty());
    engine.shutdown(Duration::from_secs(5)).await;
}
