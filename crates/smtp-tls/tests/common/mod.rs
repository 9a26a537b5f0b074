//! Shared by the integration tests: certificates generated with rcgen for
//! each test, rustls configs, and a real server on a loopback socket that
//! accepts everything and reports what it received.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use portcullis_smtp_tls::*;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// A self-signed certificate for `mx.test`, `localhost` and 127.0.0.1, with its key.
pub struct Pki {
    pub cert: CertificateDer<'static>,
    pub cert_pem: String,
    key: Vec<u8>,
}

impl Pki {
    pub fn new() -> Self {
        let ck = rcgen::generate_simple_self_signed(vec![
            "mx.test".to_string(),
            "localhost".to_string(),
            "127.0.0.1".to_string(),
        ])
        .unwrap();
        Self {
            cert: ck.cert.der().clone(),
            cert_pem: ck.cert.pem(),
            key: ck.signing_key.serialize_der(),
        }
    }

    pub fn acceptor(&self) -> TlsAcceptor {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.clone()));
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![self.cert.clone()], key)
            .unwrap();
        TlsAcceptor::from(Arc::new(config))
    }

    /// A client that trusts exactly this certificate.
    pub fn connector(&self) -> TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.cert.clone()).unwrap();
        let config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        TlsConnector::from(Arc::new(config))
    }
}

/// What the test server saw on one connection.
#[derive(Debug, Default)]
pub struct Received {
    pub messages: Vec<(Envelope, Vec<u8>)>,
    pub tls: Option<TlsInfo>,
    pub end: Option<SessionEnd>,
    pub injected: usize,
    pub error: Option<Error>,
}

/// Serves one connection on 127.0.0.1 (port 0), accepting every decision.
pub async fn serve_one(
    mode: TlsMode,
    pki: &Pki,
) -> (SocketAddr, tokio::task::JoinHandle<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = pki.acceptor();
    let handle = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut config = ServerConfig::new("mx.test");
        config.tls = mode;
        let session = ServerSession::new(config, std::time::Instant::now());
        let mut conn = ServerConnection::new(tcp, session, Some(acceptor));
        let mut got = Received::default();
        loop {
            match conn.next_event().await {
                Ok(ServerEvent::Mail { .. } | ServerEvent::Rcpt { .. }) => conn.accept().unwrap(),
                Ok(ServerEvent::Message { envelope, body }) => {
                    got.messages.push((envelope, body));
                    conn.accept().unwrap();
                }
                Ok(ServerEvent::InjectionAttempt { discarded }) => got.injected += discarded,
                Ok(
                    ServerEvent::StartTls
                    | ServerEvent::MessageRefused { .. }
                    | ServerEvent::CommandRefused { .. }
                    | ServerEvent::TlsEstablished(_),
                ) => {}
                Ok(ServerEvent::Closed(end)) => {
                    got.tls = conn.session().tls().cloned();
                    got.end = Some(end);
                    break;
                }
                Ok(other) => panic!("unexpected server event {other:?}"),
                Err(e) => {
                    got.error = Some(e);
                    break;
                }
            }
            got.tls = conn.session().tls().cloned();
        }
        got
    });
    (addr, handle)
}

pub fn envelope() -> Envelope {
    Envelope {
        from: ReversePath::parse("<sender@client.test>").unwrap(),
        params: MailParams::default(),
        to: vec![ForwardPath::parse("<rcpt@mx.test>").unwrap()],
    }
}

pub async fn client(addr: SocketAddr, connector: TlsConnector) -> ClientConnection<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let session = ClientSession::new(ClientConfig::new("client.test"), std::time::Instant::now());
    ClientConnection::new(
        tcp,
        session,
        connector,
        ServerName::try_from("mx.test").unwrap(),
    )
}
