//! A line-level shim between a client socket and the sink's SMTP session for
//! the two behaviours `portcullis-smtp-tls` deliberately cannot produce:
//! answering `STARTTLS` with a refusal although it was advertised, and
//! refusing `EHLO` (a server without ESMTP). The shim reads client lines,
//! answers the intercepted command itself and passes everything else to the
//! session through an in-memory pipe.
//!
//! Ordering is safe because both commands end a pipelining group (RFC 2920,
//! RFC 3207): the client has read every earlier reply before sending them.
//! Message data (between a `DATA` line and the final `.`) is never inspected.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, DuplexStream};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

/// Which command the shim answers itself.
#[derive(Debug, Clone)]
pub(crate) enum Intercept {
    /// Answer `STARTTLS` with this reply line (e.g. `454 4.7.0 TLS not available`).
    StartTls(String),
    /// Answer `EHLO` with `502 5.5.1` so the client must fall back to `HELO`.
    Ehlo,
}

fn verb(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    text.trim_end_matches(['\r', '\n'])
        .split(' ')
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase()
}

/// Starts the shim on `socket`; the returned stream is the session's end,
/// the flag turns true once the intercepted command was seen.
pub(crate) fn spawn(socket: TcpStream, intercept: Intercept) -> (DuplexStream, Arc<AtomicBool>) {
    let seen = Arc::new(AtomicBool::new(false));
    let seen_by_reader = Arc::clone(&seen);
    let (session_end, shim_end) = tokio::io::duplex(64 * 1024);
    let (sock_read, sock_write) = socket.into_split();
    let sock_write = Arc::new(Mutex::new(sock_write));
    let (mut from_session, mut to_session) = tokio::io::split(shim_end);

    // session → client: copy replies.
    let w = Arc::clone(&sock_write);
    tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match from_session.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let mut w = w.lock().await;
                    if w.write_all(buf.get(..n).unwrap_or_default()).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = w.lock().await.shutdown().await;
    });

    // client → session: line by line, answering the intercepted command.
    tokio::spawn(async move {
        let mut reader = BufReader::new(sock_read);
        let mut in_data = false;
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if in_data {
                if line == b".\r\n" {
                    in_data = false;
                }
            } else {
                let v = verb(&line);
                let answer = match (&intercept, v.as_str()) {
                    (Intercept::StartTls(reply), "STARTTLS") => Some(format!("{reply}\r\n")),
                    (Intercept::Ehlo, "EHLO") => {
                        Some("502 5.5.1 EHLO not supported, use HELO\r\n".to_string())
                    }
                    _ => None,
                };
                if let Some(answer) = answer {
                    seen_by_reader.store(true, Ordering::SeqCst);
                    if sock_write
                        .lock()
                        .await
                        .write_all(answer.as_bytes())
                        .await
                        .is_err()
                    {
                        break;
                    }
                    continue;
                }
                in_data = v == "DATA";
            }
            if to_session.write_all(&line).await.is_err() {
                break;
            }
        }
        let _ = to_session.shutdown().await;
    });
    (session_end, seen)
}

#[cfg(test)]
mod tests {
    use super::verb;

    #[test]
    fn verb_is_the_first_word_upper_cased() {
        assert_eq!(verb(b"starttls\r\n"), "STARTTLS");
        assert_eq!(verb(b"EHLO relay.test\r\n"), "EHLO");
        assert_eq!(verb(b"\r\n"), "");
    }
}
