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

/// Runs one conversation. `injected` counts plaintext discarded behind the
/// server's `220` to STARTTLS.
pub(crate) async fn converse(
    a: &Attempt<'_>,
    envelope: Envelope,
    body: &[u8],
    injected: &mut usize,
) -> Conversation {
    let tcp = match tokio::time::timeout(a.connect_timeout, TcpStream::connect(a.addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            return Conversation::Failed {
                detail: format!("connect to {} failed: {e}", a.addr),
            };
        }
        Err(_) => {
            return Conversation::Failed {
                detail: format!(
                    "connect to {} timed out after {}s",
                    a.addr,
                    a.connect_timeout.as_secs()
                ),
            };
        }
    };
    let _ = tcp.set_nodelay(true);
    let mut config = ClientConfig::new(a.helo);
    config.command_timeout = a.command_timeout;
    config.data_timeout = a.data_timeout;
    let session = ClientSession::new(config, Instant::now());
    let mut conn = ClientConnection::new(tcp, session, a.connector.clone(), a.server_name.clone());
    let mut tls_tried = a.starttls == StartTls::Never;
    let mut envelope = Some(envelope);
    loop {
        let event = match conn.next_event().await {
            Ok(ev) => ev,
            Err(e) => {
                return Conversation::Failed {
                    detail: e.to_string(),
                };
            }
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
                            return Conversation::Failed {
                                detail: e.to_string(),
                            };
                        }
                    }
                }
                let outcome = session.tls_outcome();
                if let StartTls::Required { requiretls } = a.starttls {
                    if !outcome.is_established() {
                        quit(&mut conn).await;
                        return Conversation::TlsShortfall {
                            failure: failure_of(&outcome),
                            detail: outcome.to_string(),
                        };
                    }
                    if requiretls && !caps.requiretls {
                        quit(&mut conn).await;
                        return Conversation::TlsShortfall {
                            failure: PeerFailure::RequireTlsNotOffered,
                            detail: "the server does not advertise REQUIRETLS after STARTTLS"
                                .into(),
                        };
                    }
                }
                let Some(env) = envelope.take() else {
                    quit(&mut conn).await;
                    return Conversation::Failed {
                        detail: "the server asked for a second transaction".into(),
                    };
                };
                if let Err(e) = conn.session_mut().send_message(env, body) {
                    quit(&mut conn).await;
                    return match e {
                        SmtpError::ExtensionNotOffered(_) => Conversation::Unsendable {
                            detail: e.to_string(),
                        },
                        e => Conversation::Failed {
                            detail: e.to_string(),
                        },
                    };
                }
            }
            ClientEvent::InjectionAttempt { discarded } => *injected += discarded,
            ClientEvent::StartTls => {}
            ClientEvent::MessageDone(result) => {
                let tls = conn.session_mut().tls_outcome();
                quit(&mut conn).await;
                return Conversation::Sent { tls, result };
            }
            ClientEvent::Closed { error } => {
                let enforced_auth_failure = a.verifier.as_ref().and_then(|v| match v.result() {
                    super::verify::AuthResult::Failed(why) if a.starttls != StartTls::IfOffered => {
                        Some(why)
                    }
                    _ => None,
                });
                return match (error, enforced_auth_failure) {
                    (Some(SmtpError::Handshake(_)), Some(why)) => {
                        Conversation::AuthFailed { detail: why }
                    }
                    (Some(SmtpError::Handshake(e)), None) => Conversation::TlsShortfall {
                        failure: PeerFailure::HandshakeFailed,
                        detail: format!("the TLS handshake failed: {e}"),
                    },
                    (Some(e), _) => Conversation::Failed {
                        detail: e.to_string(),
                    },
                    (None, _) => Conversation::Failed {
                        detail: "the server closed the connection".into(),
                    },
                };
            }
        }
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
