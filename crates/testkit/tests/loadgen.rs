//! The load generator against the sink, cleartext and STARTTLS: every
//! message is accounted for, each arrives once with its sequence number,
//! and a refusing sink yields no accepted message.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use portcullis_smtp_tls::Reply;
use portcullis_testkit::loadgen::{LoadOptions, run};
use portcullis_testkit::pki::TestPki;
use portcullis_testkit::sink::{Sink, SinkOptions, SinkTls};

fn seqs(sink: &Sink) -> Vec<usize> {
    sink.messages()
        .iter()
        .map(|m| m.header("X-Seq").unwrap().parse().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleartext_and_starttls_runs_deliver_every_message_once() {
    let pki = TestPki::new().unwrap();
    let leaf = Arc::new(pki.leaf(&["relay.test"]).unwrap());
    for tls in [false, true] {
        let sink = Sink::start(SinkOptions::new(SinkTls::Offered(Arc::clone(&leaf))))
            .await
            .unwrap();
        let mut o = LoadOptions::new(sink.addr());
        o.messages = 40;
        o.connections = 4;
        o.per_connection = if tls { 1 } else { 3 };
        o.size = 1500;
        if tls {
            o.tls = Some((pki.client_config().unwrap(), "relay.test".into()));
        }
        let report = run(o).await.unwrap();
        assert_eq!(report.sent.len(), 40);
        assert_eq!(
            report.accepted(),
            40,
            "{:?}",
            report.sent.iter().find(|s| !s.accepted)
        );
        assert!(report.latency_quantile(0.99).is_some());
        sink.wait_for_messages(40, Duration::from_secs(30))
            .await
            .unwrap();
        let got = seqs(&sink);
        assert_eq!(
            got.iter().copied().collect::<BTreeSet<_>>(),
            (0..40).collect()
        );
        assert_eq!(got.len(), 40);
        assert!(sink.messages().iter().all(|m| m.tls.is_some() == tls));
    }
}

#[tokio::test]
async fn refused_messages_are_not_counted_as_accepted() {
    let mut o = SinkOptions::new(SinkTls::NotOffered);
    o.data_reply = Some(Reply::new(554, "5.7.1", "No").unwrap());
    let sink = Sink::start(o).await.unwrap();
    let mut o = LoadOptions::new(sink.addr());
    o.messages = 5;
    o.connections = 2;
    let report = run(o).await.unwrap();
    assert_eq!(report.sent.len(), 5);
    assert_eq!(report.accepted(), 0);
    assert!(
        report.sent.iter().all(|s| s.outcome.starts_with("554")),
        "{:?}",
        report.sent
    );
}

#[tokio::test]
async fn an_unreachable_relay_fails_every_message() {
    let port = portcullis_testkit::runner::free_tcp_port().unwrap();
    let mut o = LoadOptions::new(([127, 0, 0, 1], port).into());
    o.messages = 3;
    let report = run(o).await.unwrap();
    assert_eq!(report.accepted(), 0);
    assert!(report.sent.iter().all(|s| s.outcome.starts_with("connect")));
}
