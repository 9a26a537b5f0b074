//! Untrusted server bytes against the client side of smtp-tls: the reply
//! parser on the raw input (with a round-trip check on what parses), then a
//! client session fed the input in input-chosen chunks, issuing STARTTLS,
//! a message and QUIT whenever it is idle, with a simulated handshake.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use portcullis_smtp_tls::{
    ClientConfig, ClientEvent, ClientSession, Envelope, ForwardPath, MailParams, Reply,
    ReversePath, TlsInfo,
};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok(Some((reply, used))) = Reply::parse(rest) {
        assert!(used > 0 && used <= rest.len());
        let again = Reply::parse(&reply.encode());
        assert_eq!(again, Ok(Some((reply.clone(), reply.encode().len()))));
        rest = &rest[used..];
    }

    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(selector % 32) + 1;
    let mut now = Instant::now();
    let mut c = ClientSession::new(ClientConfig::new("client.fuzz"), now);
    let envelope = Envelope {
        from: ReversePath::parse("<a@client.fuzz>").unwrap(),
        params: MailParams::default(),
        to: vec![
            ForwardPath::parse("<b@mx.fuzz>").unwrap(),
            ForwardPath::parse("<c@mx.fuzz>").unwrap(),
        ],
    };
    let mut sent = 0;
    for piece in input.chunks(chunk) {
        now += Duration::from_secs(1);
        if c.handle_input(now, piece).is_err() {
            assert!(c.is_closed());
            break;
        }
        while let Some(ev) = c.poll_event() {
            match ev {
                ClientEvent::StartTls => {
                    let info = TlsInfo {
                        protocol: "TLSv1_3".into(),
                        cipher: "x".into(),
                        peer_certificates: vec![],
                    };
                    c.handle_tls_established(now, info).unwrap();
                }
                ClientEvent::Ready(_) | ClientEvent::MessageDone(_) => {
                    if selector & 0x80 != 0 && c.start_tls().is_ok() {
                        continue;
                    }
                    if sent < 2 {
                        sent += 1;
                        let _ = c.send_message(envelope.clone(), b"Subject: x\n.\n..\n\xc3\xa9\n");
                    } else {
                        let _ = c.quit();
                    }
                }
                ClientEvent::InjectionAttempt { .. } | ClientEvent::Closed { .. } => {}
                other => panic!("an event this target does not know: {other:?}"),
            }
        }
        let _ = c.poll_transmit();
        let _ = c.tls_outcome();
    }
    c.handle_eof();
    assert!(c.is_closed());
});
