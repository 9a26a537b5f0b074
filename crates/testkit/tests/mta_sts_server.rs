//! The MTA-STS server answers the policy path over TLS with a certificate
//! a client trusting the test PKI accepts for `mta-sts.<domain>`, 404s
//! anything else, and counts requests.

use std::sync::Arc;

use portcullis_testkit::mta_sts_server::{MtaStsServer, policy_text};
use portcullis_testkit::pki::TestPki;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

async fn get(
    server: &MtaStsServer,
    pki: &TestPki,
    host: &str,
    path: &str,
) -> Result<String, std::io::Error> {
    let socket = TcpStream::connect(server.addr()).await?;
    let connector = TlsConnector::from(Arc::clone(&pki.client_config().unwrap()));
    let mut tls = connector
        .connect(ServerName::try_from(host.to_string()).unwrap(), socket)
        .await?;
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out).await;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[tokio::test]
async fn serves_the_policy_as_text_plain_and_counts_requests() {
    let pki = TestPki::new().unwrap();
    let leaf = pki.leaf(&["mta-sts.sts.test"]).unwrap();
    let policy = policy_text("enforce", &["mx.sts.test", "*.backup.sts.test"], 86400);
    assert_eq!(
        policy,
        "version: STSv1\r\nmode: enforce\r\nmx: mx.sts.test\r\nmx: *.backup.sts.test\r\nmax_age: 86400\r\n"
    );
    let server = MtaStsServer::start(&leaf, &policy).await.unwrap();
    assert!(server.addr().ip().is_loopback());

    let r = get(
        &server,
        &pki,
        "mta-sts.sts.test",
        "/.well-known/mta-sts.txt",
    )
    .await
    .unwrap();
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(
        r.to_ascii_lowercase().contains("content-type: text/plain"),
        "{r}"
    );
    assert!(r.ends_with(&policy), "{r}");

    server.set_policy(&policy_text("testing", &["mx.sts.test"], 60));
    let r = get(
        &server,
        &pki,
        "mta-sts.sts.test",
        "/.well-known/mta-sts.txt",
    )
    .await
    .unwrap();
    assert!(r.contains("mode: testing"), "{r}");

    let r = get(&server, &pki, "mta-sts.sts.test", "/other")
        .await
        .unwrap();
    assert!(r.starts_with("HTTP/1.1 404"), "{r}");
    assert_eq!(server.requests(), 3);

    // A client asking for another name refuses the certificate.
    assert!(
        get(
            &server,
            &pki,
            "mta-sts.other.test",
            "/.well-known/mta-sts.txt"
        )
        .await
        .is_err()
    );
}
