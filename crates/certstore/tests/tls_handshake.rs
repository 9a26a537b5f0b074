//! A real TLS handshake over loopback between rustls configurations built
//! from the store: the server presents an entry issued by a private CA, the
//! client (the `dane` crate's PKIX verifier, as the gateway uses it) trusts
//! the store's custom CA list holding that CA. Disabling the custom list
//! makes the same client refuse the server.

use std::sync::Arc;

use portcullis_certstore::{CaListKind, Store, TlsSettings, TlsVersion};
use portcullis_dane::{PeerVerifier, PkixRoots, ReferenceId};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

struct Pki {
    ca_pem: String,
    leaf_pem: String,
    key_pem: String,
}

fn private_pki() -> Pki {
    let mut ca = CertificateParams::default();
    ca.distinguished_name
        .push(DnType::CommonName, "Portcullis Test Private CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(
        ca,
        KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap(),
    )
    .unwrap();
    let mut leaf = CertificateParams::new(vec!["mx1.example.test".to_owned()]).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, "mx1.example.test");
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let leaf = leaf.signed_by(&key, &ca).unwrap();
    Pki {
        ca_pem: ca.as_ref().pem(),
        leaf_pem: leaf.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// A client that verifies `mx1.example.test` against the store's enabled
/// CA lists, presenting the named store entry if given.
fn client_config(
    store: &Store,
    settings: &TlsSettings,
    client_cert: Option<&str>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = settings.provider().map_err(|e| e.to_string())?;
    let roots = Arc::new(store.root_store().map_err(|e| e.to_string())?);
    let roots = PkixRoots::new(roots, provider).map_err(|e| e.to_string())?;
    let verifier = Arc::new(PeerVerifier::pkix(
        roots,
        vec![ReferenceId::parse("mx1.example.test")],
    ));
    let key = match client_cert {
        Some(name) => Some(
            store
                .client_certificate(name, settings)
                .map_err(|e| e.to_string())?,
        ),
        None => None,
    };
    let versions = settings.protocol_versions().map_err(|e| e.to_string())?;
    let config = verifier
        .client_config(&versions, key)
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(config))
}

/// Handshake once: server built from `store` entry `mx1`, client from the store's CA lists.
async fn handshake(store: &Store, settings: &TlsSettings) -> Result<String, String> {
    let server_cfg = store
        .server_config("mx1", settings)
        .map_err(|e| e.to_string())?;
    let client_cfg = client_config(store, settings, None)?;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(server_cfg);
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        // An Err means the client refused us; the client side reports why.
        if let Ok(mut tls) = acceptor.accept(tcp).await {
            let mut buf = [0u8; 4];
            tls.read_exact(&mut buf).await.unwrap();
            tls.write_all(b"250 ").await.unwrap();
            tls.shutdown().await.ok();
        }
    });
    let connector = tokio_rustls::TlsConnector::from(Arc::clone(&client_cfg));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let result = match connector
        .connect(ServerName::try_from("mx1.example.test").unwrap(), tcp)
        .await
    {
        Ok(mut tls) => {
            tls.write_all(b"EHLO").await.unwrap();
            let mut buf = [0u8; 4];
            tls.read_exact(&mut buf).await.unwrap();
            let version = format!("{:?}", tls.get_ref().1.protocol_version());
            Ok(format!("{version} {}", String::from_utf8_lossy(&buf)))
        }
        Err(e) => Err(e.to_string()),
    };
    server.await.unwrap();
    result
}

#[tokio::test]
async fn handshake_trusts_custom_list_and_fails_when_it_is_disabled() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path().join("store")).unwrap();
    let pki = private_pki();
    store
        .import_pem(
            "mx1",
            pki.leaf_pem.as_bytes(),
            Some(pki.key_pem.as_bytes()),
            "leaf.pem",
            false,
        )
        .unwrap();
    store
        .ca_import_custom(pki.ca_pem.as_bytes(), "ca.pem")
        .unwrap();

    for versions in [
        vec![TlsVersion::Tls13],
        vec![TlsVersion::Tls12],
        vec![TlsVersion::Tls12, TlsVersion::Tls13],
    ] {
        let settings = TlsSettings {
            versions: versions.clone(),
            cipher_suites: Vec::new(),
        };
        let got = handshake(&store, &settings).await.unwrap();
        let expect = if versions == [TlsVersion::Tls12] {
            "TLSv1_2"
        } else {
            "TLSv1_3"
        };
        assert!(got.starts_with(&format!("Some({expect})")), "{got}");
        assert!(got.ends_with("250 "), "{got}");
    }

    // Custom list off, system list (Mozilla roots) on: our private CA is unknown.
    store.ca_set_enabled(CaListKind::Custom, false).unwrap();
    let err = handshake(&store, &TlsSettings::default())
        .await
        .unwrap_err();
    assert!(err.contains("unknown issuer"), "{err}");

    // Both off: every server is refused, with the fix.
    store.ca_set_enabled(CaListKind::System, false).unwrap();
    let err = handshake(&store, &TlsSettings::default())
        .await
        .unwrap_err();
    assert!(err.contains("no CA list is enabled"), "{err}");

    // Re-enabled: works again.
    store.ca_set_enabled(CaListKind::Custom, true).unwrap();
    handshake(&store, &TlsSettings::default()).await.unwrap();

    // Deleting the CA from the custom list also ends trust.
    let fp = store.ca_list(CaListKind::Custom).unwrap().certs[0]
        .info
        .sha256
        .clone();
    store.ca_delete_custom(&fp[..20]).unwrap();
    store.ca_set_enabled(CaListKind::System, true).unwrap();
    let err = handshake(&store, &TlsSettings::default())
        .await
        .unwrap_err();
    assert!(err.contains("unknown issuer"), "{err}");
}

#[tokio::test]
async fn configured_cipher_suite_is_the_only_one_offered() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path().join("store")).unwrap();
    let pki = private_pki();
    store
        .import_pem(
            "mx1",
            format!("{}{}", pki.leaf_pem, pki.key_pem).as_bytes(),
            None,
            "all.pem",
            false,
        )
        .unwrap();
    store
        .ca_import_custom(pki.ca_pem.as_bytes(), "ca.pem")
        .unwrap();
    let settings = TlsSettings {
        versions: vec![TlsVersion::Tls13],
        cipher_suites: vec!["TLS13_CHACHA20_POLY1305_SHA256".into()],
    };
    let server = store.server_config("mx1", &settings).unwrap();
    assert_eq!(server.crypto_provider().cipher_suites.len(), 1);
    handshake(&store, &settings).await.unwrap();
}

#[tokio::test]
async fn client_certificate_is_presented_when_the_server_asks() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path().join("store")).unwrap();
    let pki = private_pki();
    store
        .import_pem(
            "mx1",
            pki.leaf_pem.as_bytes(),
            Some(pki.key_pem.as_bytes()),
            "leaf.pem",
            false,
        )
        .unwrap();
    store
        .ca_import_custom(pki.ca_pem.as_bytes(), "ca.pem")
        .unwrap();
    let settings = TlsSettings::default();
    let entry = store.entry("mx1").unwrap();

    // A server that demands a client certificate from the same private CA.
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(store.root_store().unwrap()),
        settings.provider().unwrap(),
    )
    .build()
    .unwrap();
    let server_cfg = rustls::ServerConfig::builder_with_provider(settings.provider().unwrap())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(entry.chain.clone(), entry.key.to_rustls())
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_cfg));
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = acceptor.accept(tcp).await.unwrap();
        let peer = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
        tls.write_all(b"ok").await.unwrap();
        tls.shutdown().await.ok();
        peer
    });
    let client_cfg = client_config(&store, &settings, Some("mx1")).unwrap();
    let connector = tokio_rustls::TlsConnector::from(client_cfg);
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut tls = connector
        .connect(ServerName::try_from("mx1.example.test").unwrap(), tcp)
        .await
        .unwrap();
    let mut buf = [0u8; 2];
    tls.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ok");
    assert_eq!(
        server.await.unwrap(),
        entry.chain[0],
        "the server saw our client certificate"
    );

    assert!(store.client_certificate("nope", &settings).is_err());
}
