//! One message through a real SMTP client (smtp-tls's `deliver` over
//! rustls): the e2e tests' way of handing mail to the gateway, optionally
//! from a chosen loopback source address (sender groups match on it).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use portcullis_smtp_tls::{
    ClientConfig, ClientConnection, ClientSession, Delivery, Envelope, Error as SmtpError,
    ForwardPath, MailParams, ReversePath, TlsRequirement, deliver,
};
use rustls_pki_types::ServerName;
use tokio::net::TcpSocket;
use tokio_rustls::TlsConnector;

use crate::Error;

/// How to send.
#[derive(Debug, Clone)]
pub struct SendOptions {
    /// Bind to this loopback address first (`None`: 127.0.0.1 by the kernel's choice).
    pub source: Option<IpAddr>,
    /// STARTTLS demand.
    pub requirement: TlsRequirement,
    /// Client configuration and server name for STARTTLS.
    pub tls: Option<(Arc<rustls::ClientConfig>, String)>,
}

impl Default for SendOptions {
    fn default() -> Self {
        Self {
            source: None,
            requirement: TlsRequirement::None,
            tls: None,
        }
    }
}

/// Why a send failed before SMTP could say anything.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Set-up (addresses, sockets, TLS configuration).
    #[error(transparent)]
    Setup(#[from] Error),
    /// The SMTP exchange.
    #[error("SMTP: {0}")]
    Smtp(#[from] SmtpError),
}

/// Sends one message from `from` to `to` with a `Subject:` and a short body.
pub async fn send(
    target: SocketAddr,
    from: &str,
    to: &[&str],
    subject: &str,
    options: &SendOptions,
) -> Result<Delivery, SendError> {
    let parse = |what: &str, e: portcullis_smtp_tls::AddressError| {
        Error::Other(format!("bad address {what}: {e}"))
    };
    let envelope = Envelope {
        from: ReversePath::parse(&format!("<{from}>")).map_err(|e| parse(from, e))?,
        params: MailParams::default(),
        to: to
            .iter()
            .map(|t| ForwardPath::parse(&format!("<{t}>")).map_err(|e| parse(t, e)))
            .collect::<Result<_, _>>()?,
    };
    let socket = TcpSocket::new_v4().map_err(Error::io("creating a client socket"))?;
    if let Some(ip) = options.source {
        socket
            .bind(SocketAddr::new(ip, 0))
            .map_err(Error::io(format!("binding the client to {ip}")))?;
    }
    let stream = socket
        .connect(target)
        .await
        .map_err(Error::io(format!("connecting to {target}")))?;
    let (config, name) = match &options.tls {
        Some((c, n)) => (Arc::clone(c), n.clone()),
        None => (
            Arc::new(
                rustls::ClientConfig::builder_with_provider(crate::provider())
                    .with_safe_default_protocol_versions()
                    .map_err(Error::from)?
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth(),
            ),
            "localhost".into(),
        ),
    };
    let name = ServerName::try_from(name.clone())
        .map_err(|e| Error::Other(format!("bad TLS server name {name}: {e}")))?;
    let session = ClientSession::new(ClientConfig::new("client.test"), Instant::now());
    let conn = ClientConnection::new(stream, session, TlsConnector::from(config), name);
    let body = format!(
        "From: <{from}>\r\nTo: <{}>\r\nSubject: {subject}\r\nMessage-ID: <{subject}@client.test>\r\n\r\nTest message {subject}.\r\n",
        to.join(">, <")
    );
    Ok(deliver(conn, options.requirement, envelope, body.as_bytes()).await?)
}
