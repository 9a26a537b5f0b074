//! The MTA-STS policy cache shared through the cluster database: two
//! engines (nodes n1 and n2) against one real PostgreSQL; n1 fetches the
//! policy from the testkit's HTTPS server (TXT record from the signed test
//! zone) and delivers under it; n2 then delivers to the same domain under
//! the policy n1 fetched, without fetching it.

mod engine_support;

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine_support::*;
use portcullis_dane::dns::ResolverSettings;
use portcullis_mta::cluster::{Cluster, ClusterSettings, shared_config};
use portcullis_mta::config::{ClusterConfig, DatabaseTls};
use portcullis_mta::engine::Engine;
use portcullis_smtp_tls::TlsRequirement;
use portcullis_testkit::dns_zone::ZoneBuilder;
use portcullis_testkit::mta_sts_server::{MtaStsServer, policy_text};
use portcullis_testkit::pki::TestPki;
use portcullis_testkit::postgres::{PostgresOptions, PostgresServer};

async fn node(pg: &PostgresServer, name: &str, data_dir: &Path) -> Cluster {
    let settings = ClusterSettings::new(
        &ClusterConfig {
            database: pg.url(),
            node: name.into(),
            database_tls: DatabaseTls::Off,
            poll_seconds: 1,
            heartbeat_seconds: 1,
            timeout_seconds: 2,
        },
        data_dir.to_owned(),
        Arc::new(rustls::RootCertStore::empty()),
        Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
    )
    .unwrap();
    let cluster = Cluster::new(settings).unwrap();
    // As at a gateway's start: the first exchange migrates the schema and
    // marks the database reachable.
    shared_config::newest_version(&cluster).await.unwrap();
    cluster
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_fetched_by_one_node_is_used_by_the_other_without_a_fetch() {
    let pg = PostgresServer::start(PostgresOptions::default()).unwrap();
    let pki = TestPki::new().unwrap();
    let mx = pki.leaf(&["mx.enforce.test"]).unwrap();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(mx.chain().to_vec(), mx.key())
        .unwrap();
    let sink = Sink::start(SinkOptions {
        tls: Some(Arc::new(config)),
        ..Default::default()
    })
    .await;
    let sts = MtaStsServer::start(
        &pki.leaf(&["mta-sts.enforce.test"]).unwrap(),
        &policy_text("enforce", &["mx.enforce.test"], 86400),
    )
    .await
    .unwrap();
    let zone = ZoneBuilder::new()
        .mx("enforce.test", 10, "mx.enforce.test")
        .a("mx.enforce.test", Ipv4Addr::LOCALHOST)
        .txt("_mta-sts.enforce.test", "v=STSv1; id=20261201;")
        .start()
        .unwrap();

    let ca = Ca::new("Gateway CA");
    let gw = ca.leaf(&["gw.test"], false);
    let mut engines = Vec::new();
    let mut logs = Vec::new();
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    for (name, dir) in ["n1", "n2"].iter().zip(&dirs) {
        let log = LogCapture::default();
        let mut s = settings(
            dir.path(),
            relay_access("preferred"),
            Some(gw.server_config()),
            policy("[[destination]]\ndomain = \"default\"\ntls = \"preferred\"\n"),
            pki.root_store().unwrap(),
            &log,
        );
        let mut dns = ResolverSettings::new(vec![zone.authoritative_addr()]);
        dns.trust_anchor_file = Some(zone.trust_anchor_file());
        dns.probe_name = Some("test.".into());
        dns.timeout = Duration::from_secs(5);
        s.delivery.dns = Some(dns);
        s.delivery.mx_port = sink.addr.port();
        s.delivery.mta_sts.enabled = true;
        s.delivery.mta_sts.addresses = vec![("mta-sts.enforce.test".into(), sts.addr())];
        let cluster = node(&pg, name, &dir.path().join("data")).await;
        let engine =
            Engine::start_in_cluster(s, portcullis_mta::alerts::AlertSink::off(), Some(cluster))
                .await
                .unwrap();
        engines.push(engine);
        logs.push(log);
    }

    let to = |engine: &Engine, rcpt: &'static str| {
        let addr = engine.local_addrs()[0];
        let connector = ca.connector();
        async move {
            send(
                addr,
                connector,
                TlsRequirement::Required,
                "alice@local.test",
                &[rcpt],
                b"Subject: sts\r\n\r\nMTA-STS in a cluster.\r\n",
            )
            .await
            .unwrap()
        }
    };
    assert!(to(&engines[0], "a@enforce.test").await.result.is_accepted());
    logs[0]
        .wait_for(&["MTA-STS enforce.test: mode enforce", "fetched, id 20261201"])
        .await;
    let l = logs[0].wait_for(&["delivered to <a@enforce.test>"]).await;
    assert!(l.contains("auth=pkix"), "{l}");
    assert_eq!(sts.requests(), 1);

    // n1 stores the policy in the background: wait for the row.
    let deadline = Instant::now() + Duration::from_secs(30);
    while pg
        .psql("SELECT fetched_by FROM sts_policy WHERE domain = 'enforce.test'")
        .unwrap()
        != "n1"
    {
        assert!(Instant::now() < deadline, "n1 never stored the policy");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    assert!(to(&engines[1], "b@enforce.test").await.result.is_accepted());
    logs[1]
        .wait_for(&[
            "MTA-STS enforce.test: mode enforce",
            "from the cluster (fetched by n1), id 20261201",
        ])
        .await;
    let l = logs[1].wait_for(&["delivered to <b@enforce.test>"]).await;
    assert!(l.contains("auth=pkix"), "{l}");
    assert_eq!(sts.requests(), 1, "n2 used n1's policy without a fetch");
    // And keeps it in its own cache for its next deliveries.
    let cache = std::fs::read_to_string(dirs[1].path().join("data/mta-sts/cache.json")).unwrap();
    assert!(cache.contains("20261201"), "{cache}");
    for e in engines {
        e.shutdown(Duration::from_secs(5)).await;
    }
}
