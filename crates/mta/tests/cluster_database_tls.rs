//! TLS to the cluster database: a real PostgreSQL offering TLS with a
//! certificate from the test PKI. A node whose CA lists hold the PKI's root
//! connects over TLS (the server says so); a node that does not trust it
//! does not connect at all, and says why, rather than falling back to
//! plain TCP.

use std::sync::Arc;

use portcullis_mta::cluster::{Cluster, ClusterSettings, shared_config};
use portcullis_mta::config::{ClusterConfig, DatabaseTls};
use portcullis_testkit::pki::TestPki;
use portcullis_testkit::postgres::{PostgresOptions, PostgresServer, PostgresTls};

fn node(pg: &PostgresServer, roots: rustls::RootCertStore) -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let settings = ClusterSettings::new(
        &ClusterConfig {
            database: format!(
                "postgres://portcullis:portcullis@localhost:{}/portcullis?hostaddr=127.0.0.1",
                pg.port()
            ),
            node: "n1".into(),
            database_tls: DatabaseTls::Required,
            poll_seconds: 1,
            heartbeat_seconds: 1,
            timeout_seconds: 2,
        },
        dir.path().to_owned(),
        Arc::new(roots),
        Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
    )
    .unwrap();
    Cluster::new(settings).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_certificate_is_checked_against_the_ca_lists() {
    let pki = TestPki::new().unwrap();
    let leaf = pki.leaf(&["localhost"]).unwrap();
    let pg = PostgresServer::start(PostgresOptions {
        tls: Some(PostgresTls {
            cert_pem: leaf.chain_pem(),
            key_pem: leaf.key_pem(),
        }),
    })
    .unwrap();

    let trusting = node(&pg, pki.root_store().unwrap());
    assert_eq!(shared_config::newest_version(&trusting).await.unwrap(), 0);
    let over_tls = trusting
        .with(|client| async move {
            let row = client
                .query_one(
                    "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                    &[],
                )
                .await?;
            Ok(row.get::<_, bool>(0))
        })
        .await
        .unwrap();
    assert!(over_tls, "the connection must use TLS");

    let stranger = node(&pg, rustls::RootCertStore::empty());
    let refused = shared_config::newest_version(&stranger).await.unwrap_err();
    assert!(refused.is_unreachable(), "{refused}");
    assert!(!stranger.is_online());
}
