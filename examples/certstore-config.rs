//! Certificates for an MTA with `portcullis-certstore`: a key and CSR for
//! `mx1.example.com`, signed by a CA (made here with rcgen, standing in for
//! the organisation's CA), installed with the CA trusted, then the rustls
//! server and client configurations built from the store, proven by a TLS
//! handshake between them in memory (no network).
//!
//!     cargo run -p portcullis-examples --example certstore-config [-- STORE_DIR]
//!
//! Without STORE_DIR the store lives in a temporary directory, removed at exit.

use std::sync::Arc;

use portcullis_certstore::{KeySpec, SelfSignedRequest, Store, TlsSettings};
use rustls_pki_types::ServerName;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let dir = std::env::args()
        .nth(1)
        .map_or(tmp.path().join("certs"), Into::into);
    let store = Store::open_or_create(&dir)?;

    // The organisation's CA, trusted through the store's custom CA list.
    let mut ca = rcgen::CertificateParams::new(Vec::new())?;
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "Example Mail CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca, rcgen::KeyPair::generate()?)?;
    let imported = store.ca_import_custom(ca.pem().as_bytes(), "example-ca.pem")?;
    for added in &imported.added {
        println!("trusted CA: {}", added.label());
    }

    // A key, its CSR, the CA's answer, installed.
    let mut request = SelfSignedRequest::new("mx1.example.com");
    request.key = KeySpec::EcdsaP256;
    request.sans = vec!["mail.example.com".into()];
    store.create_self_signed("mx1", &request)?;
    let csr = store.make_csr("mx1", None)?;
    let signed = rcgen::CertificateSigningRequestParams::from_pem(&csr)?.signed_by(&ca)?;
    let report = store.install_signed("mx1", signed.pem().as_bytes(), "mx1.crt")?;
    for problem in &report.problems {
        println!("warning: {problem}");
    }
    let leaf = report
        .entry
        .leaf()
        .ok_or("installed entry has no certificate")?;
    println!("installed mx1: {}", leaf.label());

    // The configurations an MTA hands to rustls / tokio-rustls.
    let settings = TlsSettings::default();
    let server = store.server_config("mx1", &settings)?;
    let client = rustls::ClientConfig::builder_with_provider(settings.provider()?)
        .with_protocol_versions(&settings.protocol_versions()?)?
        .with_root_certificates(store.root_store()?)
        .with_no_client_auth();
    let client = Arc::new(client);

    // Both ends in memory: the client verifies the server against the CA lists.
    let name = ServerName::try_from("mail.example.com")?;
    let mut c = rustls::ClientConnection::new(client, name)?;
    let mut s = rustls::ServerConnection::new(Arc::clone(&server))?;
    for _ in 0..10 {
        if !c.is_handshaking() && !s.is_handshaking() {
            break;
        }
        let mut wire = Vec::new();
        c.write_tls(&mut wire)?;
        s.read_tls(&mut wire.as_slice())?;
        s.process_new_packets()?;
        wire.clear();
        s.write_tls(&mut wire)?;
        c.read_tls(&mut wire.as_slice())?;
        c.process_new_packets()?;
    }
    if c.is_handshaking() {
        return Err("the handshake did not finish".into());
    }
    println!(
        "handshake: {:?} {:?}; the client verified {} for mail.example.com",
        c.protocol_version().ok_or("no protocol version")?,
        c.negotiated_cipher_suite()
            .ok_or("no cipher suite")?
            .suite(),
        leaf.label()
    );
    Ok(())
}
