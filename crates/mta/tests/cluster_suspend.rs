//! Cluster-wide delivery suspensions against a real PostgreSQL: suspended
//! on one engine, applied by the other's learned-state sync (and kept in
//! its `suspended.json`); resumed on the other, ended on the first; refused
//! with a clear answer while the database is stopped.

mod engine_support;

use std::sync::Arc;
use std::time::Duration;

use engine_support::LogCapture;
use portcullis_mta::alerts::AlertSink;
use portcullis_mta::cluster::learned::LearnedSync;
use portcullis_mta::cluster::{Cluster, ClusterSettings};
use portcullis_mta::config::{ClusterConfig, DatabaseTls};
use portcullis_mta::engine::Engine;
use portcullis_testkit::postgres::{PostgresOptions, PostgresServer};

const WAIT: Duration = Duration::from_secs(30);

struct Node {
    _dir: tempfile::TempDir,
    data: std::path::PathBuf,
    engine: Engine,
    sync: LearnedSync,
}

async fn node(pg: &PostgresServer, name: &str) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let log = LogCapture::default();
    let settings = engine_support::settings(
        dir.path(),
        engine_support::relay_access("off"),
        None,
        Default::default(),
        rustls::RootCertStore::empty(),
        &log,
    );
    let data = settings.data_dir.clone();
    let cluster = Cluster::new(
        ClusterSettings::new(
            &ClusterConfig {
                database: pg.url(),
                node: name.into(),
                database_tls: DatabaseTls::Off,
                poll_seconds: 1,
                heartbeat_seconds: 1,
                timeout_seconds: 2,
            },
            data.clone(),
            Arc::new(rustls::RootCertStore::empty()),
            Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
        )
        .unwrap(),
    )
    .unwrap();
    let engine = Engine::start_in_cluster(settings, AlertSink::off(), Some(cluster.clone()))
        .await
        .unwrap();
    let sync = portcullis_mta::cluster::learned::start(cluster, &engine).unwrap();
    Node {
        _dir: dir,
        data,
        engine,
        sync,
    }
}

async fn cluster_suspended(n: &Node) -> Vec<String> {
    n.engine
        .status()
        .await
        .delivery_suspended_cluster
        .into_iter()
        .map(|(t, _)| t)
        .collect()
}

async fn eventually_suspended(n: &Node, want: &[&str]) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let got = cluster_suspended(n).await;
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "cluster suspensions {got:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_suspension_for_the_cluster_applies_on_every_node_until_resumed_on_any() {
    let mut pg = PostgresServer::start(PostgresOptions::default()).unwrap();
    let n1 = node(&pg, "n1").await;
    let n2 = node(&pg, "n2").await;

    let line = n1
        .engine
        .suspend_delivery_in_cluster(".Example.COM")
        .await
        .unwrap();
    assert!(line.contains("every node of the cluster"), "{line}");
    // At once here, within a poll on the other node; neither lists it as
    // its own suspension.
    assert_eq!(cluster_suspended(&n1).await, [".example.com"]);
    eventually_suspended(&n2, &[".example.com"]).await;
    assert!(n2.engine.status().await.delivery_suspended.is_empty());
    let file = std::fs::read_to_string(n2.data.join("suspended.json")).unwrap();
    assert!(file.contains(".example.com"), "{file}");
    let again = n2
        .engine
        .suspend_delivery_in_cluster(".example.com")
        .await
        .unwrap();
    assert!(again.contains("already"), "{again}");

    n2.engine
        .resume_delivery_in_cluster(".example.com")
        .await
        .unwrap();
    eventually_suspended(&n1, &[]).await;
    assert!(
        n1.engine
            .resume_delivery_in_cluster(".example.com")
            .await
            .unwrap_err()
            .contains("not suspended cluster-wide")
    );

    // Without the database the command says so and changes nothing.
    pg.stop().unwrap();
    let e = n1
        .engine
        .suspend_delivery_in_cluster("ALL")
        .await
        .unwrap_err();
    assert!(e.contains("not stored in the cluster database"), "{e}");
    assert!(cluster_suspended(&n1).await.is_empty());

    for n in [n1, n2] {
        n.sync.stop().await;
        n.engine.shutdown(Duration::ZERO).await;
    }
}
