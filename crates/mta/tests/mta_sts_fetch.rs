//! MTA-STS policy fetches against a real HTTPS server on loopback, with a
//! certificate from a test CA the client trusts (or not).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use portcullis_mta::mta_sts_fetch::{FetchError, MAX_POLICY_BYTES, PolicyFetcher};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const POLICY: &str =
    "version: STSv1\r\nmode: enforce\r\nmx: mx1.example.test\r\nmax_age: 86400\r\n";

struct Pki {
    ca: CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

fn pki(name: &str) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec![name.to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    Pki {
        ca: ca.der().clone(),
        chain: vec![leaf.der().clone()],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    }
}

fn client_trusting(ca: &CertificateDer<'static>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

/// Serves one HTTPS connection: reads the request head and answers with
/// `response`, or stays silent when it is `None`.
async fn serve_once(
    pki: &Pki,
    response: Option<Vec<u8>>,
) -> (SocketAddr, tokio::task::JoinHandle<String>) {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(pki.chain.clone(), pki.key.clone_key())
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let Ok(mut tls) = acceptor.accept(tcp).await else {
            return String::new();
        };
        let mut head = Vec::new();
        let mut buf = [0; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        match response {
            Some(bytes) => {
                let _ = tls.write_all(&bytes).await;
                let _ = tls.shutdown().await;
            }
            None => tokio::time::sleep(Duration::from_secs(5)).await,
        }
        String::from_utf8_lossy(&head).into_owned()
    });
    (addr, task)
}

fn response(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len());
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("Connection: close\r\n\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

const HOST: &str = "mta-sts.example.test";

async fn fetch(
    pki: &Pki,
    reply: Option<Vec<u8>>,
    trust: &CertificateDer<'static>,
) -> (Result<String, FetchError>, String) {
    let (addr, server) = serve_once(pki, reply).await;
    let fetcher = PolicyFetcher::new(client_trusting(trust), Duration::from_millis(1500))
        .with_address(HOST, addr);
    let result = fetcher.fetch("example.test").await;
    server.abort();
    let request = server.await.unwrap_or_default();
    (result, request)
}

#[tokio::test]
async fn a_policy_served_as_text_plain_is_returned_verbatim() {
    let pki = pki(HOST);
    let reply = response(
        "200 OK",
        &[("Content-Type", "text/plain; charset=utf-8")],
        POLICY.as_bytes(),
    );
    let (addr, server) = serve_once(&pki, Some(reply)).await;
    let fetcher = PolicyFetcher::new(client_trusting(&pki.ca), Duration::from_secs(5))
        .with_address(HOST, addr);
    assert_eq!(fetcher.fetch("example.test.").await.unwrap(), POLICY);
    let request = server.await.unwrap();
    assert!(
        request.starts_with("GET /.well-known/mta-sts.txt HTTP/1.1\r\n"),
        "{request}"
    );
    assert!(
        request
            .to_ascii_lowercase()
            .contains("host: mta-sts.example.test\r\n"),
        "{request}"
    );
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let pki = pki(HOST);
    let reply = response(
        "301 Moved Permanently",
        &[("Location", "https://evil.example/policy")],
        b"",
    );
    let (result, _) = fetch(&pki, Some(reply), &pki.ca).await;
    match result {
        Err(e @ FetchError::Status { status: 301, .. }) => {
            assert!(e.to_string().contains("redirects are not followed"), "{e}")
        }
        other => panic!("expected a refused redirect, got {other:?}"),
    }
}

#[tokio::test]
async fn a_policy_over_64_kib_is_refused() {
    let pki = pki(HOST);
    let big = vec![b'a'; MAX_POLICY_BYTES + 1];
    let reply = response("200 OK", &[("Content-Type", "text/plain")], &big);
    let (result, _) = fetch(&pki, Some(reply), &pki.ca).await;
    assert!(
        matches!(result, Err(FetchError::TooLarge { .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn other_media_types_are_refused() {
    let pki = pki(HOST);
    let reply = response(
        "200 OK",
        &[("Content-Type", "text/html")],
        POLICY.as_bytes(),
    );
    let (result, _) = fetch(&pki, Some(reply), &pki.ca).await;
    assert!(
        matches!(result, Err(FetchError::ContentType { .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn an_untrusted_certificate_fails_before_any_request() {
    let pki = pki(HOST);
    let stranger = self::pki(HOST);
    let reply = response(
        "200 OK",
        &[("Content-Type", "text/plain")],
        POLICY.as_bytes(),
    );
    let (result, request) = fetch(&pki, Some(reply), &stranger.ca).await;
    assert!(matches!(result, Err(FetchError::Tls { .. })), "{result:?}");
    assert!(
        request.is_empty(),
        "no request may reach an unverified server"
    );
}

#[tokio::test]
async fn a_certificate_for_another_name_fails() {
    let pki = pki("www.example.test");
    let reply = response(
        "200 OK",
        &[("Content-Type", "text/plain")],
        POLICY.as_bytes(),
    );
    let (result, _) = fetch(&pki, Some(reply), &pki.ca).await;
    match result {
        Err(FetchError::Tls { reason, .. }) => {
            assert!(reason.contains("not valid for name"), "{reason}")
        }
        other => panic!("expected a name mismatch, got {other:?}"),
    }
}

#[tokio::test]
async fn a_silent_server_hits_the_deadline() {
    let pki = pki(HOST);
    let (result, _) = fetch(&pki, None, &pki.ca).await;
    assert!(
        matches!(result, Err(FetchError::Timeout { .. })),
        "{result:?}"
    );
}
