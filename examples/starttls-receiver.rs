//! A STARTTLS receiver built on `portcullis-smtp-tls`: listens on
//! 127.0.0.1:2525 (or the port given), offers STARTTLS with a certificate
//! generated at start, and streams each message to stdout while the client
//! sends it (the way an MTA writes it to disk), accepting it at the final dot.
//!
//!     cargo run -p portcullis-examples --example starttls-receiver [-- PORT [off|preferred|required]]
//!     swaks --server 127.0.0.1 --port 2525 --to you@example.org --tls

use std::io::Write;
use std::{sync::Arc, time::Instant};

use portcullis_smtp_tls::{ServerConfig, ServerConnection, ServerEvent, ServerSession, TlsMode};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let port: u16 = match args.next() {
        Some(p) => p
            .parse()
            .map_err(|_| format!("{p:?} is not a port number"))?,
        None => 2525,
    };
    let mode: TlsMode = args.next().as_deref().unwrap_or("preferred").parse()?;

    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let tls = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    eprintln!("listening on {} with TLS {mode:?}", listener.local_addr()?);
    eprintln!("warning: self-signed demonstration certificate, for testing only");
    loop {
        let (tcp, peer) = listener.accept().await?;
        let mut config = ServerConfig::new("localhost");
        config.tls = mode;
        config.stream_message_data = true;
        let session = ServerSession::new(config, Instant::now());
        let mut conn = ServerConnection::new(tcp, session, Some(acceptor.clone()));
        tokio::spawn(async move {
            let mut octets = 0;
            loop {
                let event = match conn.next_event().await {
                    Ok(event) => event,
                    Err(e) => return eprintln!("[{peer}] session failed: {e}"),
                };
                let tls = conn
                    .session()
                    .tls()
                    .map_or("none".to_string(), |t| t.to_string());
                let decided = match event {
                    ServerEvent::Mail { from, params } => {
                        println!("[{peer}] MAIL FROM:{from}{params} (TLS: {tls})");
                        conn.accept()
                    }
                    ServerEvent::Rcpt { to } => {
                        println!("[{peer}] RCPT TO:{to}");
                        conn.accept()
                    }
                    ServerEvent::MessageStart { envelope } => {
                        println!("[{peer}] message from {} (TLS: {tls}):", envelope.from);
                        octets = 0;
                        Ok(())
                    }
                    // Text arrives in pieces of whole lines; none is accepted yet.
                    ServerEvent::MessageData(text) => {
                        octets += text.len();
                        let _ = std::io::stdout().lock().write_all(&text);
                        Ok(())
                    }
                    ServerEvent::MessageEnd => {
                        println!("[{peer}] end of message, {octets} octets: accepted");
                        conn.accept()
                    }
                    ServerEvent::MessageRefused { reason } => {
                        println!("[{peer}] message refused by the session: {reason}");
                        Ok(())
                    }
                    ServerEvent::InjectionAttempt { discarded } => {
                        eprintln!(
                            "[{peer}] STARTTLS injection attempt: {discarded} bytes discarded"
                        );
                        Ok(())
                    }
                    ServerEvent::StartTls => Ok(()),
                    ServerEvent::Closed(end) => return println!("[{peer}] closed: {end:?}"),
                    // Events a newer smtp-tls may add: accept nothing on a guess.
                    other => return eprintln!("[{peer}] unexpected event {other:?}; closing"),
                };
                if let Err(e) = decided {
                    return eprintln!("[{peer}] {e}");
                }
            }
        });
    }
}
