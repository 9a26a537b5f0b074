//! The private PostgreSQL server answers as `portcullis`, goes away on
//! `stop` and comes back on `start_again` on the same port, and with a
//! certificate from the test PKI serves TLS that verifies against the
//! PKI's root. Needs the Debian package `postgresql`
//! (scripts/install-test-deps.sh); a missing package fails, not skips.

use portcullis_testkit::pki::TestPki;
use portcullis_testkit::postgres::{PostgresOptions, PostgresServer, PostgresTls};

#[test]
fn answers_stops_and_starts_again() {
    let mut pg = PostgresServer::start(PostgresOptions::default()).unwrap();
    assert_eq!(pg.psql("select 1").unwrap(), "1");
    assert_eq!(pg.psql("select current_user").unwrap(), "portcullis");
    assert_eq!(
        pg.url(),
        format!(
            "postgres://portcullis:portcullis@127.0.0.1:{}/portcullis",
            pg.port()
        )
    );
    // The role owns its database, so the cluster mode can create tables.
    pg.psql("create table t (n int); insert into t values (7)")
        .unwrap();

    pg.stop().unwrap();
    pg.stop().unwrap();
    assert!(pg.psql("select 1").is_err());

    pg.start_again().unwrap();
    assert_eq!(
        pg.psql("select n from t").unwrap(),
        "7",
        "{}",
        pg.log_tail(20)
    );
}

#[test]
fn offers_tls_with_the_test_pki() {
    let pki = TestPki::new().unwrap();
    let leaf = pki.leaf(&["localhost"]).unwrap();
    let tls = PostgresTls {
        cert_pem: leaf.chain_pem(),
        key_pem: leaf.key_pem(),
    };
    let pg = PostgresServer::start(PostgresOptions { tls: Some(tls) }).unwrap();
    let ssl_in_use = "select ssl from pg_stat_ssl where pid = pg_backend_pid()";

    let require = format!(
        "host=127.0.0.1 port={} sslmode=require user=portcullis dbname=portcullis",
        pg.port()
    );
    assert_eq!(pg.psql_with(&require, ssl_in_use).unwrap(), "t");

    // The chain verifies for the leaf's name against the PKI's root.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root.pem");
    pki.write_root_pem(&root).unwrap();
    let verify = format!(
        "host=localhost hostaddr=127.0.0.1 port={} sslmode=verify-full sslrootcert={} \
         user=portcullis dbname=portcullis",
        pg.port(),
        root.display()
    );
    assert_eq!(pg.psql_with(&verify, ssl_in_use).unwrap(), "t");

    // TLS is offered, not demanded: the client's sslmode decides.
    let plain = format!(
        "host=127.0.0.1 port={} sslmode=disable user=portcullis dbname=portcullis",
        pg.port()
    );
    assert_eq!(pg.psql_with(&plain, ssl_in_use).unwrap(), "f");
}
