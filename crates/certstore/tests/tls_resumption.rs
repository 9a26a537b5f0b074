//! Issue 10 item 12, the server side: a configuration built from the store
//! prefers its own cipher-suite order to the client's, and lets a client
//! resume its session (TLS 1.3 tickets, TLS 1.2 too), in memory with
//! rustls on both ends.

use std::sync::Arc;

use portcullis_certstore::{SelfSignedRequest, Store, TlsSettings, TlsVersion};
use portcullis_dane::PeerVerifier;
use rustls::{ClientConnection, HandshakeKind, ServerConnection};

/// How a listener's configuration is built: once from the entry, or
/// following the store (what the gateway's listeners use).
#[derive(Debug, Clone, Copy)]
enum Built {
    Fixed,
    Live,
}

fn server(versions: Vec<TlsVersion>, built: Built) -> Arc<rustls::ServerConfig> {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path().join("certs")).unwrap();
    store
        .create_self_signed("mx", &SelfSignedRequest::new("mx.example.test"))
        .unwrap();
    let settings = TlsSettings {
        versions,
        cipher_suites: Vec::new(),
    };
    match built {
        Built::Fixed => store.server_config("mx", &settings).unwrap(),
        Built::Live => store.live_server_config("mx", &settings).unwrap().0,
    }
}

/// A client that offers ChaCha20 first (the server's default order puts
/// AES-GCM first) and checks no certificate.
fn client(versions: &[&'static rustls::SupportedProtocolVersion]) -> Arc<rustls::ClientConfig> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider
        .cipher_suites
        .sort_by_key(|s| !format!("{:?}", s.suite()).contains("CHACHA20"));
    let provider = Arc::new(provider);
    let verifier = Arc::new(PeerVerifier::any_certificate(provider.clone()));
    Arc::new(verifier.client_config(versions, None).unwrap())
}

/// Runs a handshake in memory, then lets the client read what the server
/// sends after it (TLS 1.3 tickets).
fn connect(
    client: &Arc<rustls::ClientConfig>,
    server: &Arc<rustls::ServerConfig>,
) -> (ClientConnection, ServerConnection) {
    let mut c =
        ClientConnection::new(client.clone(), "mx.example.test".try_into().unwrap()).unwrap();
    let mut s = ServerConnection::new(server.clone()).unwrap();
    for _ in 0..10 {
        let mut buf = Vec::new();
        c.write_tls(&mut buf).unwrap();
        s.read_tls(&mut &buf[..]).unwrap();
        s.process_new_packets().unwrap();
        let mut buf = Vec::new();
        s.write_tls(&mut buf).unwrap();
        c.read_tls(&mut &buf[..]).unwrap();
        c.process_new_packets().unwrap();
        if !c.is_handshaking() && !s.is_handshaking() && !s.wants_write() {
            break;
        }
    }
    assert!(!c.is_handshaking() && !s.is_handshaking());
    (c, s)
}

#[test]
fn the_servers_cipher_order_wins_and_sessions_resume() {
    for (versions, client_versions, built) in [
        (
            vec![TlsVersion::Tls13],
            vec![&rustls::version::TLS13],
            Built::Fixed,
        ),
        (
            vec![TlsVersion::Tls12],
            vec![&rustls::version::TLS12],
            Built::Fixed,
        ),
        (
            vec![TlsVersion::Tls13],
            vec![&rustls::version::TLS13],
            Built::Live,
        ),
        (
            vec![TlsVersion::Tls12],
            vec![&rustls::version::TLS12],
            Built::Live,
        ),
    ] {
        let server = server(versions, built);
        assert!(server.ignore_client_order);
        assert!(server.ticketer.enabled(), "session tickets are issued");
        let client = client(&client_versions);
        let (c, _) = connect(&client, &server);
        let suite = format!("{:?}", c.negotiated_cipher_suite().unwrap().suite());
        assert!(
            suite.contains("AES_256_GCM"),
            "the client's order won: {suite}"
        );
        assert_eq!(c.handshake_kind(), Some(HandshakeKind::Full));
        let (again, _) = connect(&client, &server);
        assert_eq!(
            again.handshake_kind(),
            Some(HandshakeKind::Resumed),
            "{client_versions:?} {built:?}"
        );
    }
}
