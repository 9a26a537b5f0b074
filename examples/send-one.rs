//! Sends one message with `portcullis-smtp-tls` under a chosen TLS
//! requirement, and prints the typed TLS outcome and per-recipient results.
//!
//!     cargo run -p portcullis-examples --example send-one -- required [127.0.0.1:2525 [FROM [TO]]]
//!
//! Like the `preferred` and `required` TLS levels of SPEC §2, this does not
//! check the server's certificate (the receiver example's is self-signed);
//! the handshake signatures are still verified.

use std::{sync::Arc, time::Instant};

use portcullis_smtp_tls::{
    ClientConfig, ClientConnection, ClientSession, Envelope, ForwardPath, MailParams, ReversePath,
    TlsRequirement, deliver,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{DigitallySignedStruct, SignatureScheme, crypto::CryptoProvider};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or_else(|| default.to_string());
    let requirement = match arg(0, "preferred").as_str() {
        "none" => TlsRequirement::None,
        "preferred" => TlsRequirement::Preferred,
        "required" => TlsRequirement::Required,
        other => {
            return Err(format!(
                "unknown TLS requirement {other:?}: use none, preferred or required"
            )
            .into());
        }
    };
    let server = arg(1, "127.0.0.1:2525");
    let envelope = Envelope {
        from: ReversePath::parse(&format!("<{}>", arg(2, "sender@example.org")))?,
        params: MailParams::default(),
        to: vec![ForwardPath::parse(&format!(
            "<{}>",
            arg(3, "rcpt@example.org")
        ))?],
    };
    let body = b"Subject: Portcullis send-one example\r\n\r\nHello over SMTP.\r\n";

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(NoCertificateCheck(provider)))
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(&server).await?;
    let session = ClientSession::new(ClientConfig::new("client.example.org"), Instant::now());
    let name = ServerName::try_from(
        server
            .rsplit_once(':')
            .map_or(server.as_str(), |(h, _)| h)
            .to_string(),
    )?;
    let conn = ClientConnection::new(
        tcp,
        session,
        tokio_rustls::TlsConnector::from(Arc::new(tls)),
        name,
    );

    let delivery = deliver(conn, requirement, envelope, body).await?;
    println!("TLS: {}", delivery.tls);
    println!("MAIL: {}", delivery.result.mail.to_string().trim_end());
    for (rcpt, reply) in &delivery.result.recipients {
        println!(
            "RCPT {rcpt}: {}",
            reply
                .as_ref()
                .map_or("not sent".into(), |r| r.to_string().trim_end().to_string())
        );
    }
    println!("accepted: {}", delivery.result.is_accepted());
    Ok(())
}

/// Accepts any certificate but still checks handshake signatures.
#[derive(Debug)]
struct NoCertificateCheck(Arc<CryptoProvider>);

impl ServerCertVerifier for NoCertificateCheck {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        msg: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            msg,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        msg: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            msg,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
