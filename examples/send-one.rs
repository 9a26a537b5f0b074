//! Sends one message with `portcullis-smtp-tls` under a TLS requirement
//! (none, preferred, required); prints the typed TLS outcome and the replies.
//!
//!     cargo run -p portcullis-examples --example send-one -- required [127.0.0.1:2525 [FROM [TO]]]
//!
//! Like SPEC §2's `preferred`/`required` levels it does not check the server's
//! certificate (the receiver's is self-signed); handshake signatures are checked.

use std::{sync::Arc, time::Instant};

use portcullis_smtp_tls::*;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{DigitallySignedStruct, Error as TlsError, SignatureScheme, crypto::CryptoProvider};
use rustls_pki_types::{CertificateDer as Cert, ServerName, UnixTime};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &str| args.get(i).map_or(default, |a| a.as_str()).to_string();
    let requirement: TlsRequirement = arg(0, "preferred").parse()?;
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
    let host = server.rsplit_once(':').map_or(server.as_str(), |(h, _)| h);
    let name = ServerName::try_from(host.to_string())?;
    let tcp = tokio::net::TcpStream::connect(&server).await?;
    let session = ClientSession::new(ClientConfig::new("client.example.org"), Instant::now());
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let conn = ClientConnection::new(tcp, session, connector, name);

    let delivery = deliver(conn, requirement, envelope, body).await?;
    let show = |r: &Reply| r.to_string().trim_end().to_string();
    println!("TLS: {}", delivery.tls);
    println!("MAIL: {}", show(&delivery.result.mail));
    for (rcpt, reply) in &delivery.result.recipients {
        println!(
            "RCPT {rcpt}: {}",
            reply.as_ref().map_or("not sent".into(), show)
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
        _: &Cert<'_>,
        _: &[Cert<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        msg: &[u8],
        cert: &Cert<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        let algs = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(msg, cert, dss, algs)
    }
    fn verify_tls13_signature(
        &self,
        msg: &[u8],
        cert: &Cert<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        let algs = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(msg, cert, dss, algs)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
