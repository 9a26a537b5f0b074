//! One outbound connection, opened under a hop's plan: TCP connect with a
//! deadline, then smtp-tls's [`establish`] (greeting, EHLO, STARTTLS, EHLO,
//! REQUIRETLS check) asking the plan at every TLS shortfall. The result is a
//! connection ready for mail, or what stopped it, in the decision's terms.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use portcullis_dane::PeerAuthentication;
use portcullis_policy::{HopHost, PeerFailure};
use portcullis_smtp_tls::{
    Capabilities, ClientConfig, ClientConnection, ClientSession, Error as SmtpError,
    EstablishError, MessageResult, TlsOutcome, establish, quit, send_with,
};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::envelope::Outgoing;
use super::plan::{HopPlan, peer_failure};

/// Where and how to connect.
pub(crate) struct Target<'a> {
    /// The host (its name is also the one the exemption list records).
    pub host: HopHost,
    pub addr: SocketAddr,
    pub server_name: ServerName<'static>,
    pub helo: &'a str,
    pub connector: TlsConnector,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    pub data_timeout: Duration,
    pub tls_handshake_timeout: Duration,
}

/// A connection ready for mail (greeting, EHLO, STARTTLS as planned), idle
/// between messages.
pub(crate) struct Open {
    conn: ClientConnection<TcpStream>,
    pub tls: TlsOutcome,
    /// How the peer was authenticated: `none`, `pkix`, `dane`, or
    /// `pkix-failed(report-only)` when opportunistic TLS went on anyway.
    pub auth: String,
    /// What the server advertised (after TLS, when TLS is up).
    pub caps: Capabilities,
    /// The TLS session was resumed: no certificate was checked this time.
    pub resumed: bool,
    /// Messages sent on it so far.
    pub sent: u32,
    /// What a TLS-RPT failure detail says about the session.
    pub facts: SessionFacts,
}

/// The session's addresses and names for TLS-RPT (RFC 8460 §4.4).
#[derive(Debug, Clone, Default)]
pub(crate) struct SessionFacts {
    /// The local address (`sending-mta-ip`).
    pub local_ip: Option<std::net::IpAddr>,
    /// The host name in the server's `220` greeting (`receiving-mx-helo`).
    pub mx_helo: Option<String>,
}

/// A message the next hop took (or refused) on an open connection.
#[derive(Debug)]
pub(crate) struct Sent {
    pub result: MessageResult,
    /// Whether the DSN parameters went with it (the server advertises DSN);
    /// if not, the gateway owes `NOTIFY=SUCCESS` senders a "relayed" notice.
    pub dsn_passed: bool,
}

impl std::fmt::Debug for Open {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Open")
            .field("tls", &self.tls)
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

/// Why no connection is ready.
#[derive(Debug)]
pub(crate) enum OpenFailure {
    /// The peer fell short of the plan where the decision says stop (or
    /// the handshake failed); nothing was sent, the connection is closed.
    Tls(TlsFailure),
    /// The connection or session failed: next host.
    Connection(String),
}

/// A TLS shortfall in the decision's terms, with what the peer did.
#[derive(Debug)]
pub(crate) struct TlsFailure {
    pub failure: PeerFailure,
    pub detail: String,
    /// The session's addresses and names for TLS-RPT.
    pub facts: SessionFacts,
}

/// Why a message did not go through on an open connection.
#[derive(Debug)]
pub(crate) enum SendFailure {
    /// The message cannot be sent to this server for good (SMTPUTF8 not
    /// offered, larger than its SIZE): bounce, with this status.
    Unsendable {
        status: &'static str,
        detail: String,
    },
    /// The connection failed: try the next host.
    Connection(String),
}

/// Connects to `t` and establishes the session as `plan` says. Also returns
/// the plaintext bytes the server sent behind its `220` to STARTTLS.
pub(crate) async fn open(t: &Target<'_>, plan: &HopPlan<'_>) -> (Result<Open, OpenFailure>, usize) {
    let tcp = match tokio::time::timeout(t.connect_timeout, TcpStream::connect(t.addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let detail = format!("connect to {} failed: {e}", t.addr);
            return (Err(OpenFailure::Connection(detail)), 0);
        }
        Err(_) => {
            let detail = format!(
                "connect to {} timed out after {}s",
                t.addr,
                t.connect_timeout.as_secs()
            );
            return (Err(OpenFailure::Connection(detail)), 0);
        }
    };
    let _ = tcp.set_nodelay(true);
    let local_ip = tcp.local_addr().ok().map(|a| a.ip());
    let mut config = ClientConfig::new(t.helo);
    config.command_timeout = t.command_timeout;
    config.data_timeout = t.data_timeout;
    config.tls_handshake_timeout = t.tls_handshake_timeout;
    let session = ClientSession::new(config, Instant::now());
    let mut conn = ClientConnection::new(tcp, session, t.connector.clone(), t.server_name.clone());
    let result = establish(&mut conn, plan.starttls, |s| plan.on_shortfall(s)).await;
    let injected = conn.injected_bytes();
    let facts = SessionFacts {
        local_ip,
        mx_helo: conn
            .session_mut()
            .greeting()
            .and_then(|r| r.lines().first())
            .and_then(|l| l.split_whitespace().next())
            .filter(|name| name.len() <= 255)
            .map(str::to_owned),
    };
    let result = match result {
        Ok(ready) => Ok(Open {
            auth: auth_word(plan, &ready.tls),
            tls: ready.tls,
            caps: ready.capabilities,
            resumed: conn.tls_resumed(),
            conn,
            sent: 0,
            facts,
        }),
        Err(EstablishError::Shortfall(s)) => {
            let verifier = plan.verifier.as_deref();
            let failure = peer_failure(&s, verifier);
            let detail = match (failure, verifier.map(|v| v.outcome())) {
                (PeerFailure::AuthenticationFailed, Some(PeerAuthentication::Failed(why))) => {
                    why.to_string()
                }
                _ => s.to_string(),
            };
            Err(OpenFailure::Tls(TlsFailure {
                failure,
                detail,
                facts,
            }))
        }
        Err(e) => Err(OpenFailure::Connection(e.to_string())),
    };
    (result, injected)
}

/// Connects in cleartext (no STARTTLS): the decision's retry after a failed
/// handshake.
pub(crate) async fn open_cleartext(t: &Target<'_>, plan: &HopPlan<'_>) -> Result<Open, String> {
    let cleartext = plan.cleartext_retry();
    match open(t, &cleartext).await.0 {
        Ok(open) => Ok(open),
        Err(OpenFailure::Connection(detail) | OpenFailure::Tls(TlsFailure { detail, .. })) => {
            Err(detail)
        }
    }
}

fn auth_word(plan: &HopPlan<'_>, tls: &TlsOutcome) -> String {
    match (&plan.verifier, tls.is_established()) {
        (Some(v), true) => match v.outcome() {
            PeerAuthentication::Verified(_) => v.kind().as_str().to_owned(),
            PeerAuthentication::Failed(_) => format!("{}-failed(report-only)", v.kind().as_str()),
            _ => "none".to_owned(),
        },
        _ => "none".to_owned(),
    }
}

impl Open {
    /// Sends one message; the connection stays open for the next one. DSN
    /// parameters go only to a server that advertises DSN (RFC 3461 §4.2);
    /// a message larger than the server's SIZE is not sent at all.
    pub(crate) async fn send(
        &mut self,
        outgoing: &Outgoing,
        body: &[u8],
    ) -> Result<Sent, SendFailure> {
        let mut envelope = outgoing.envelope.clone();
        let dsn_passed = self.caps.dsn;
        let rcpt_params = if dsn_passed {
            outgoing.rcpt_params.clone()
        } else {
            envelope.params = envelope.params.without_dsn();
            Vec::new()
        };
        match send_with(&mut self.conn, envelope, rcpt_params, body).await {
            Ok(result) => {
                self.sent = self.sent.saturating_add(1);
                Ok(Sent { result, dsn_passed })
            }
            Err(e @ SmtpError::MessageTooLarge { .. }) => Err(SendFailure::Unsendable {
                status: "5.3.4",
                detail: e.to_string(),
            }),
            Err(e @ SmtpError::ExtensionNotOffered("SMTPUTF8")) => Err(SendFailure::Unsendable {
                status: "5.6.7",
                detail: e.to_string(),
            }),
            Err(e @ SmtpError::ExtensionNotOffered(_)) => Err(SendFailure::Unsendable {
                status: "5.6.3",
                detail: e.to_string(),
            }),
            Err(e) => Err(SendFailure::Connection(e.to_string())),
        }
    }

    /// Says QUIT and waits for the close.
    pub(crate) async fn close(mut self) {
        quit(&mut self.conn).await;
    }
}
