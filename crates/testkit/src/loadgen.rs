//! A TLS-capable SMTP load generator on `portcullis-smtp-tls`'s client
//! session: `connections` concurrent workers each open connections to one
//! relay, optionally STARTTLS, send messages, and time each message from
//! the start of its connection (or, for later messages on a reused
//! connection, from its `MAIL FROM`) to the `250` after its data. Used by
//! the relay benchmark (both relays get the same generator) and by the
//! durability test, which needs to know exactly which messages got `250`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use portcullis_smtp_tls::{
    ClientConfig, ClientConnection, ClientEvent, ClientSession, Envelope, ForwardPath, MailParams,
    ReversePath,
};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::Error;

/// What to send.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The relay.
    pub target: SocketAddr,
    /// Total messages.
    pub messages: usize,
    /// Sequence number of the first message (the others follow).
    pub first_seq: usize,
    /// Concurrent connections.
    pub connections: usize,
    /// Messages per connection before QUIT (1 = a connection per message).
    pub per_connection: usize,
    /// Approximate body size in bytes (headers included).
    pub size: usize,
    /// `MAIL FROM` mailbox.
    pub from: String,
    /// `RCPT TO` mailbox.
    pub to: String,
    /// STARTTLS with this configuration and server name; `None` = cleartext.
    pub tls: Option<(Arc<rustls::ClientConfig>, String)>,
    /// Per-connection deadline (a stuck relay must not hang the run).
    pub timeout: Duration,
}

impl LoadOptions {
    /// Cleartext, 100 messages, 10 connections, one message each, 2000 bytes.
    pub fn new(target: SocketAddr) -> Self {
        Self {
            target,
            messages: 100,
            first_seq: 0,
            connections: 10,
            per_connection: 1,
            size: 2000,
            from: "load@bench.test".into(),
            to: "sink@sink.test".into(),
            tls: None,
            timeout: Duration::from_secs(60),
        }
    }
}

/// One message's fate.
#[derive(Debug, Clone)]
pub struct Sent {
    /// Its sequence number (also in its `Message-ID` and `X-Seq` header).
    pub seq: usize,
    /// Accepted with `250` (durable at the relay, by contract).
    pub accepted: bool,
    /// Time to the final reply, when there was one.
    pub latency: Option<Duration>,
    /// The final reply or the error.
    pub outcome: String,
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Every message attempted, by sequence number.
    pub sent: Vec<Sent>,
    /// Wall time of the whole run.
    pub elapsed: Duration,
}

impl LoadReport {
    /// Messages that got `250`.
    pub fn accepted(&self) -> usize {
        self.sent.iter().filter(|s| s.accepted).count()
    }

    /// Accepted messages per second over the run.
    pub fn rate(&self) -> f64 {
        self.accepted() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `q` quantile (0..=1) of the latency of accepted messages.
    pub fn latency_quantile(&self, q: f64) -> Option<Duration> {
        let mut l: Vec<Duration> = self
            .sent
            .iter()
            .filter(|s| s.accepted)
            .filter_map(|s| s.latency)
            .collect();
        l.sort();
        let last = l.len().checked_sub(1)?;
        let idx = ((last as f64) * q.clamp(0.0, 1.0)).round() as usize;
        l.get(idx.min(last)).copied()
    }
}

/// The message with sequence number `seq`, about `size` bytes.
pub fn message(seq: usize, size: usize, from: &str, to: &str) -> Vec<u8> {
    let mut m = format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: load message {seq}\r\n\
         Message-ID: <load-{seq}@bench.test>\r\nX-Seq: {seq}\r\n\r\n"
    );
    let line = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\r\n";
    while m.len() + line.len() <= size {
        m.push_str(line);
    }
    m.into_bytes()
}

/// Sends the load; returns when every message has an outcome.
pub async fn run(options: LoadOptions) -> Result<LoadReport, Error> {
    let from = ReversePath::parse(&format!("<{}>", options.from))
        .map_err(|e| Error::Other(format!("load generator sender {}: {e}", options.from)))?;
    let to = ForwardPath::parse(&format!("<{}>", options.to))
        .map_err(|e| Error::Other(format!("load generator recipient {}: {e}", options.to)))?;
    let envelope = Envelope {
        from,
        params: MailParams::default(),
        to: vec![to],
    };
    // Cleartext runs never start TLS, but the connection type wants a connector.
    let (connector, name) = match &options.tls {
        Some((config, name)) => (TlsConnector::from(Arc::clone(config)), name.clone()),
        None => (
            TlsConnector::from(Arc::new(
                rustls::ClientConfig::builder_with_provider(crate::provider())
                    .with_safe_default_protocol_versions()?
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth(),
            )),
            "localhost".to_string(),
        ),
    };
    let next = Arc::new(AtomicUsize::new(0));
    let options = Arc::new(options);
    let start = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..options.connections.max(1) {
        let (next, options, envelope) = (Arc::clone(&next), Arc::clone(&options), envelope.clone());
        let (connector, name) = (connector.clone(), name.clone());
        workers.spawn(async move {
            let mut sent = Vec::new();
            loop {
                let first = next.fetch_add(options.per_connection.max(1), Ordering::SeqCst);
                if first >= options.messages {
                    break;
                }
                let last = (first + options.per_connection.max(1)).min(options.messages);
                let seqs: Vec<usize> = (first..last).map(|i| i + options.first_seq).collect();
                let run = tokio::time::timeout(
                    options.timeout,
                    connection(&options, connector.clone(), &name, &envelope, &seqs),
                );
                match run.await {
                    Ok(results) => sent.extend(results),
                    Err(_) => sent.extend(seqs.iter().map(|&seq| Sent {
                        seq,
                        accepted: false,
                        latency: None,
                        outcome: "timed out".into(),
                    })),
                }
            }
            sent
        });
    }
    let mut sent = Vec::with_capacity(options.messages);
    while let Some(r) = workers.join_next().await {
        sent.extend(r.map_err(|e| Error::Other(format!("load worker failed: {e}")))?);
    }
    sent.sort_by_key(|s| s.seq);
    Ok(LoadReport {
        sent,
        elapsed: start.elapsed(),
    })
}

/// One connection: sends `seqs` in order, returns each outcome. A message
/// whose reply never came counts as not accepted.
async fn connection(
    options: &LoadOptions,
    connector: TlsConnector,
    name: &str,
    envelope: &Envelope,
    seqs: &[usize],
) -> Vec<Sent> {
    let mut results: Vec<Sent> = Vec::new();
    let fail_rest = |results: &mut Vec<Sent>, why: String| {
        for &seq in seqs.iter().skip(results.len()) {
            results.push(Sent {
                seq,
                accepted: false,
                latency: None,
                outcome: why.clone(),
            });
        }
    };
    let mut t0 = Instant::now();
    let socket = match TcpStream::connect(options.target).await {
        Ok(s) => s,
        Err(e) => {
            fail_rest(&mut results, format!("connect: {e}"));
            return results;
        }
    };
    let _ = socket.set_nodelay(true);
    let Ok(server_name) = ServerName::try_from(name.to_string()) else {
        fail_rest(&mut results, format!("bad TLS server name {name:?}"));
        return results;
    };
    let session = ClientSession::new(ClientConfig::new("loadgen.bench.test"), Instant::now());
    let mut conn = ClientConnection::new(socket, session, connector, server_name);
    let mut tls_tried = options.tls.is_none();
    loop {
        match conn.next_event().await {
            Ok(ClientEvent::Ready(_)) => {
                let session = conn.session_mut();
                if !tls_tried {
                    tls_tried = true;
                    if let Err(e) = session.start_tls() {
                        fail_rest(&mut results, format!("STARTTLS: {e}"));
                        let _ = session.quit();
                        continue;
                    }
                    continue;
                }
                if options.tls.is_some() && !session.tls_outcome().is_established() {
                    let why = session.tls_outcome().to_string();
                    fail_rest(&mut results, why);
                    let _ = session.quit();
                    continue;
                }
                send_next(session, options, envelope, seqs, &mut results, &mut t0);
            }
            Ok(ClientEvent::MessageDone(result)) => {
                let accepted = result.is_accepted();
                // The first refusal says why: a refused MAIL makes the
                // pipelined DATA fail with 503 too.
                let first_refusal = if result.mail.is_positive() {
                    result.data.as_ref()
                } else {
                    Some(&result.mail)
                };
                let outcome = first_refusal
                    .map(|r| r.to_string().trim_end().to_string())
                    .unwrap_or_else(|| format!("{:?}", result));
                if let Some(&seq) = seqs.get(results.len()) {
                    results.push(Sent {
                        seq,
                        accepted,
                        latency: Some(t0.elapsed()),
                        outcome,
                    });
                }
                // The session is idle again: next message or QUIT.
                let session = conn.session_mut();
                send_next(session, options, envelope, seqs, &mut results, &mut t0);
            }
            Ok(ClientEvent::Closed { error }) => {
                fail_rest(
                    &mut results,
                    error.map_or("connection closed".into(), |e| e.to_string()),
                );
                return results;
            }
            Ok(_) => {}
            Err(e) => {
                fail_rest(&mut results, e.to_string());
                return results;
            }
        }
    }
}

/// Sends the next of `seqs` on an idle session, or QUITs when all are done.
fn send_next(
    session: &mut ClientSession,
    options: &LoadOptions,
    envelope: &Envelope,
    seqs: &[usize],
    results: &mut Vec<Sent>,
    t0: &mut Instant,
) {
    let Some(&seq) = seqs.get(results.len()) else {
        let _ = session.quit();
        return;
    };
    if !results.is_empty() {
        *t0 = Instant::now();
    }
    let body = message(seq, options.size, &options.from, &options.to);
    if let Err(e) = session.send_message(envelope.clone(), &body) {
        let why = format!("send: {e}");
        for &seq in seqs.iter().skip(results.len()) {
            results.push(Sent {
                seq,
                accepted: false,
                latency: None,
                outcome: why.clone(),
            });
        }
        let _ = session.quit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_has_its_sequence_number_and_roughly_the_size() {
        let m = message(42, 2000, "a@b.test", "c@d.test");
        let text = String::from_utf8(m.clone()).unwrap();
        assert!(text.contains("X-Seq: 42\r\n"));
        assert!(text.contains("Message-ID: <load-42@bench.test>"));
        assert!(m.len() >= 2000 - 80 && m.len() <= 2000, "{}", m.len());
        assert!(text.ends_with("\r\n"));
    }

    #[test]
    fn quantiles_pick_from_accepted_messages() {
        let sent = (0..100)
            .map(|i| Sent {
                seq: i,
                accepted: i != 99,
                latency: Some(Duration::from_millis(i as u64)),
                outcome: String::new(),
            })
            .collect();
        let r = LoadReport {
            sent,
            elapsed: Duration::from_secs(1),
        };
        assert_eq!(r.accepted(), 99);
        assert_eq!(r.latency_quantile(0.0), Some(Duration::from_millis(0)));
        assert_eq!(r.latency_quantile(1.0), Some(Duration::from_millis(98)));
        assert_eq!(r.latency_quantile(0.5), Some(Duration::from_millis(49)));
    }
}
