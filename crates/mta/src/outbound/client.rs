//! One SMTP client conversation on one connection, with the STARTTLS
//! behaviour the hop's decision asks for: never, if offered, or required
//! (plus REQUIRETLS offered after TLS). It reports what happened; what to
//! do about a TLS shortfall is the decision's `on_peer_failure`, applied by
//! the caller.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis_policy::PeerFailure;
use portcullis_smtp_tls::{
    ClientConfig, ClientConnection, ClientEvent, ClientSession, Envelope, Error as SmtpError,
    MessageResult, TlsOutcome,
};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::verify::HopVerifier;

/// STARTTLS behaviour for one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StartTls {
    Never,
    IfOffered,
    Required { requiretls: bool },
}

/// How the conversation ended.
#[derive(Debug)]
pub(crate) enum Conversation {
    /// The message went through MAIL/RCPT/DATA (accepted or not).
    Sent {
        tls: TlsOutcome,
        result: MessageResult,
        auth: String,
    },
    /// Nothing was sent because of TLS; the connection is closed.
    TlsShortfall {
        failure: PeerFailure,
        detail: String,
    },
    /// TLS is up but the certificate check failed (enforced) — also nothing
    /// sent.
    AuthFailed { detail: String },
    /// The message cannot be sent to this server for good (e.g. SMTPUTF8 not
    /// offered): bounce.
    Unsendable { detail: String },
    /// Connection-level failure: try the next host.
    Failed { detail: String },
}

/// Everything one connection needs.
pub(crate) struct Attempt<'a> {
    pub addr: SocketAddr,
    pub server_name: ServerName<'static>,
    pub helo: &'a str,
    pub starttls: StartTls,
    pub connector: TlsConnector,
    pub verifier: Option<Arc<HopVerifier>>,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    pub data_timeout: Duration,
}

fn failure_of(outcome: &TlsOutcome) -> PeerFailure {
    match outcome {
        TlsOutcome::StartTlsRefused(_) => PeerFailure::StarttlsRefused,
        TlsOutcome::HandshakeFailed(_) => PeerFailure::HandshakeFailed,
        _ => PeerFailure::StarttlsNotOffered,
    }
}

/// A connection that reached the point of sending mail (greeting, EHLO,
/// STARTTLS as demanded), idle between messages.
pub(crate) struct Open {
    conn: ClientConnection<TcpStream>,
    pub tls: TlsOutcome,
    /// How the peer was authenticated: `none`, `pkix`, `dane`, or
    /// `pkix-failed(report-only)` when opportunistic TLS went on anyway.
    pub auth: String,
    /// Messages sent on it so far.
    pub sent: u32,
}

impl std::fmt::Debug for Open {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Open")
            .field("tls", &self.tls)
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

/// Runs one conversation on a new connection, leaving it open for reuse
/// when the message went through. `injected` counts plaintext discarded
/// behind the server's `220` to STARTTLS.
pub(crate) async fn converse(
    a: &Attempt<'_>,
    envelope: Envelope,
    body: &[u8],
    injected: &mut usize,
) -> (Conversation, Option<Open>) {
    let mut open = match open(a, injected).await {
        Ok(o) => o,
        Err(c) => return (c, None),
    };
    match send(&mut open, envelope, body).await {
        c @ Conversation::Sent { .. } => (c, Some(open)),
        other => {
            close(open).await;
            (other, None)
        }
    }
}

/// Sends one message on an open connection.
pub(crate) async fn send(open: &mut Open, envelope: Envelope, body: &[u8]) -> Conversation {
    if let Err(e) = open.conn.session_mut().send_message(envelope, body) {
        return match e {
            SmtpError::ExtensionNotOffered(_) => Conversation::Unsendable {
                detail: e.to_string(),
            },
            e => Conversation::Failed {
                detail: e.to_string(),
            },
        };
    }
    loop {
        match open.conn.next_event().await {
            Ok(ClientEvent::MessageDone(result)) => {
                open.sent = open.sent.saturating_add(1);
                return Conversation::Sent {
                    tls: open.tls.clone(),
                    result,
                    auth: open.auth.clone(),
                };
            }
            Ok(ClientEvent::Closed { error }) => {
                return Conversation::Failed {
                    detail: error
                        .map(|e| e.to_string())
                        .unwrap_or_else(|| "the server closed the connection".into()),
                };
            }
            Ok(_) => {}
            Err(e) => {
                return Conversation::Failed {
                    detail: e.to_string(),
                };
            }
        }
    }
}

/// Says QUIT and waits for the close.
pub(crate) async fn close(mut open: Open) {
    quit(&mut open.conn).await;
}

/// Connects and runs greeting, EHLO and STARTTLS as `a.starttls` demands.
async fn open(a: &Attempt<'_>, injected: &mut usize) -> Result<Open, Conversation> {
    let tcp = match tokio::time::timeout(a.connect_timeout, TcpStream::connect(a.addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            return Err(Conversation::Failed {
                detail: format!("connect to {} failed: {e}", a.addr),
            });
        }
        Err(_) => {
            return Err(Conversation::Failed {
                detail: format!(
                    "connect to {} timed out after {}s",
                    a.addr,
                    a.connect_timeout.as_secs()
                ),
            });
        }
    };
    let _ = tcp.set_nodelay(true);
    let mut config = ClientConfig::new(a.helo);
    config.command_timeout = a.command_timeout;
    config.data_timeout = a.data_timeout;
    let session = ClientSession::new(config, Instant::now());
    let mut conn = ClientConnection::new(tcp, session, a.connector.clone(), a.server_name.clone());
    let mut tls_tried = a.starttls == StartTls::Never;
    loop {
        let event = match conn.next_event().await {
            Ok(ev) => ev,
            Err(e) => return Err(failed_after(&mut conn, e.to_string())),
        };
        match event {
            ClientEvent::Ready(caps) => {
                let session = conn.session_mut();
                if !tls_tried {
                    tls_tried = true;
                    match session.start_tls() {
                        Ok(()) => continue,
                        Err(SmtpError::TlsUnavailable(_)) => {}
                        Err(e) => {
                            return Err(Conversation::Failed {
                                detail: e.to_string(),
                            });
                        }
                    }
                }
                let outcome = session.tls_outcome();
                if let StartTls::Required { requiretls } = a.starttls {
                    if !outcome.is_established() {
                        quit(&mut conn).await;
                        return Err(Conversation::TlsShortfall {
                            failure: failure_of(&outcome),
                            detail: outcome.to_string(),
                        });
                    }
                    if requiretls && !caps.requiretls {
                        quit(&mut conn).await;
                        return Err(Conversation::TlsShortfall {
                            failure: PeerFailure::RequireTlsNotOffered,
                            detail: "the server does not advertise REQUIRETLS after STARTTLS"
                                .into(),
                        });
                    }
                }
                let auth = match (&a.verifier, outcome.is_established()) {
                    (Some(v), true) => match v.result() {
                        super::verify::AuthResult::NotChecked => "none".to_owned(),
                        super::verify::AuthResult::Passed(_) => v.kind().as_str().to_owned(),
                        super::verify::AuthResult::Failed(_) => {
                            format!("{}-failed(report-only)", v.kind().as_str())
                        }
                    },
                    _ => "none".to_owned(),
                };
                return Ok(Open {
                    conn,
                    tls: outcome,
                    auth,
                    sent: 0,
                });
            }
            ClientEvent::InjectionAttempt { discarded } => *injected += discarded,
            ClientEvent::StartTls | ClientEvent::MessageDone(_) => {}
            ClientEvent::Closed { error } => {
                let enforced_auth_failure = a.verifier.as_ref().and_then(|v| match v.result() {
                    super::verify::AuthResult::Failed(why) if a.starttls != StartTls::IfOffered => {
                        Some(why)
                    }
                    _ => None,
                });
                return Err(match (error, enforced_auth_failure) {
                    (Some(SmtpError::Handshake(_)), Some(why)) => {
                        Conversation::AuthFailed { detail: why }
                    }
                    (Some(SmtpError::Handshake(e)), None) => Conversation::TlsShortfall {
                        failure: PeerFailure::HandshakeFailed,
                        detail: format!("the TLS handshake failed: {e}"),
                    },
                    (Some(e), _) => failed_after(&mut conn, e.to_string()),
                    (None, _) => failed_after(&mut conn, "the server closed the connection".into()),
                });
            }
            // An event this build does not know (non_exhaustive): nothing
            // was sent yet; fail the hop rather than guess.
            other => {
                quit(&mut conn).await;
                return Err(Conversation::Failed {
                    detail: format!("unexpected SMTP client event {other:?}"),
                });
            }
        }
    }
}

/// A failure while opening. Once TLS is up, `open` returns at the first
/// post-TLS EHLO; a failure before that is the TLS session failing as it
/// starts (with TLS 1.3 the server's verdict on the handshake, e.g. a
/// demanded client certificate, arrives only then), so it counts as a
/// handshake failure and gets the decision's handshake rule (cleartext
/// retry at `preferred`, next host when TLS is mandatory).
fn failed_after(conn: &mut ClientConnection<TcpStream>, detail: String) -> Conversation {
    if conn.session_mut().tls_outcome().is_established() {
        Conversation::TlsShortfall {
            failure: PeerFailure::HandshakeFailed,
            detail: format!("the TLS session failed as it started: {detail}"),
        }
    } else {
        Conversation::Failed { detail }
    }
}

async fn quit(conn: &mut ClientConnection<TcpStream>) {
    if conn.session_mut().quit().is_ok() {
        while let Ok(ev) = conn.next_event().await {
            if matches!(ev, ClientEvent::Closed { .. }) {
                break;
            }
        }
    }
}
