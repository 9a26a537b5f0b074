//! Untrusted client bytes against the server side of smtp-tls: every line
//! through the command parser (with a round-trip check on what parses), then
//! the whole input through a server session in every TLS mode, split at
//! input-chosen points, with decisions alternating between accept and reject
//! and a simulated TLS handshake whenever STARTTLS is accepted.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use portcullis_smtp_tls::{
    Command, Reply, ServerConfig, ServerEvent, ServerSession, TlsInfo, TlsMode,
};

fuzz_target!(|data: &[u8]| {
    for line in data.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match Command::parse(line) {
            Ok(cmd) => {
                let again = Command::parse(cmd.to_string().as_bytes());
                assert_eq!(
                    again.as_ref(),
                    Ok(&cmd),
                    "round trip of {:?}",
                    String::from_utf8_lossy(line)
                );
            }
            Err(e) => {
                let _ = e.reply();
            }
        }
    }

    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    let mode = match selector % 3 {
        0 => TlsMode::Off,
        1 => TlsMode::Preferred,
        _ => TlsMode::Required,
    };
    let mut config = ServerConfig::new("mx.fuzz");
    config.tls = mode;
    config.max_message_size = 4096;
    let mut now = Instant::now();
    let mut s = ServerSession::new(config, now);
    let chunk = usize::from(selector / 3 % 16) + 1;
    let mut accept = true;
    for piece in input.chunks(chunk) {
        now += Duration::from_secs(1);
        if s.handle_input(now, piece).is_err() {
            assert!(s.is_closed());
            break;
        }
        while let Some(ev) = s.poll_event() {
            match ev {
                ServerEvent::Mail { .. }
                | ServerEvent::Rcpt { .. }
                | ServerEvent::Message { .. } => {
                    let r = if accept {
                        s.accept()
                    } else {
                        s.reject(Reply::new(550, "5.7.1", "no").unwrap())
                    };
                    r.unwrap();
                    accept = !accept;
                }
                ServerEvent::StartTls => {
                    assert!(mode != TlsMode::Off);
                    let info = TlsInfo {
                        protocol: "TLSv1_3".into(),
                        cipher: "x".into(),
                        peer_certificates: vec![],
                    };
                    s.handle_tls_established(now, info).unwrap();
                }
                ServerEvent::InjectionAttempt { .. } | ServerEvent::Closed(_) => {}
                other => panic!("an event this target does not know: {other:?}"),
            }
        }
        let _ = s.poll_transmit();
    }
    s.handle_timeout(now + Duration::from_secs(3600));
    assert!(s.is_closed());
});
