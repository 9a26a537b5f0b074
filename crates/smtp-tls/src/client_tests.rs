//! Byte-level tests of the client session, with server replies fed whole
//! and one byte at a time.

use super::*;
use crate::address::{Mailbox, ReversePath};
use crate::envelope::MailParams;
use crate::reply::{MAX_REPLY_LINES, ReplyError};

const EHLO_FULL: &[u8] =
    b"250-mx.test greets c.test\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 STARTTLS\r\n";

fn now() -> Instant {
    Instant::now()
}

fn tls_info() -> TlsInfo {
    TlsInfo {
        protocol: "TLSv1.3".into(),
        cipher: "TLS_AES_128_GCM_SHA256".into(),
        peer_certificates: vec![],
    }
}

fn rcpt(s: &str) -> ForwardPath {
    ForwardPath::Mailbox(Mailbox::parse(s).unwrap())
}

fn envelope(to: &[&str]) -> Envelope {
    Envelope {
        from: ReversePath::Mailbox(Mailbox::parse("a@c.test").unwrap()),
        params: MailParams::default(),
        to: to.iter().map(|t| rcpt(t)).collect(),
    }
}

/// Feeds server bytes, whole or byte by byte; returns what the client wrote and the events.
fn feed(c: &mut ClientSession, input: &[u8], bytewise: bool) -> (String, Vec<ClientEvent>) {
    let chunks: Vec<&[u8]> = if bytewise {
        input.chunks(1).collect()
    } else {
        vec![input]
    };
    let mut out = Vec::new();
    let mut events = Vec::new();
    for ch in chunks {
        let _ = c.handle_input(now(), ch);
        out.extend(c.poll_transmit().unwrap_or_default());
        events.extend(std::iter::from_fn(|| c.poll_event()));
    }
    out.extend(c.poll_transmit().unwrap_or_default());
    (String::from_utf8_lossy(&out).into_owned(), events)
}

fn greeted(ehlo: &[u8], bytewise: bool) -> (ClientSession, Capabilities) {
    let mut c = ClientSession::new(ClientConfig::new("c.test"), now());
    assert_eq!(c.poll_transmit(), None, "the client waits for the greeting");
    let (out, ev) = feed(&mut c, b"220 mx.test ESMTP\r\n", bytewise);
    assert_eq!(out, "EHLO c.test\r\n");
    assert!(ev.is_empty());
    let (out, ev) = feed(&mut c, ehlo, bytewise);
    assert_eq!(out, "");
    let [ClientEvent::Ready(caps)] = &ev[..] else {
        panic!("{ev:?}")
    };
    (c, caps.clone())
}

#[test]
fn pipelined_delivery_with_dot_stuffing() {
    for bytewise in [false, true] {
        let (mut c, caps) = greeted(EHLO_FULL, bytewise);
        assert!(caps.pipelining && caps.starttls && caps.eight_bit_mime && caps.smtputf8);
        assert_eq!(caps.size, Some(1000));
        assert_eq!(c.tls_outcome(), TlsOutcome::NotAttempted);
        c.send_message(
            envelope(&["b@mx.test", "x@mx.test"]),
            b"Subject: t\n\n.dot\nend",
        )
        .unwrap();
        let out = String::from_utf8(c.poll_transmit().unwrap()).unwrap();
        assert_eq!(
            out,
            "MAIL FROM:<a@c.test> SIZE=26\r\nRCPT TO:<b@mx.test>\r\nRCPT TO:<x@mx.test>\r\nDATA\r\n"
        );
        let (out, ev) = feed(
            &mut c,
            b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 no such user\r\n354 go ahead\r\n",
            bytewise,
        );
        assert_eq!(out, "Subject: t\r\n\r\n..dot\r\nend\r\n.\r\n");
        assert!(ev.is_empty());
        let (_, ev) = feed(&mut c, b"250 2.0.0 queued\r\n", bytewise);
        let [ClientEvent::MessageDone(result)] = &ev[..] else {
            panic!("{ev:?}")
        };
        assert!(result.is_accepted());
        assert_eq!(
            result.delivered_to().collect::<Vec<_>>(),
            [&rcpt("b@mx.test")]
        );
        assert_eq!(result.recipients[1].1.as_ref().unwrap().code(), 550);
        c.quit().unwrap();
        assert_eq!(c.poll_transmit().unwrap(), b"QUIT\r\n");
        let (_, ev) = feed(&mut c, b"221 bye\r\n", bytewise);
        assert_eq!(ev, [ClientEvent::Closed { error: None }]);
    }
}

#[test]
fn sequential_delivery_without_pipelining() {
    let (mut c, _) = greeted(b"250-mx.test\r\n250 8BITMIME\r\n", false);
    c.send_message(envelope(&["x@mx.test", "b@mx.test"]), b"hi\r\n")
        .unwrap();
    assert_eq!(c.poll_transmit().unwrap(), b"MAIL FROM:<a@c.test>\r\n");
    let (out, _) = feed(&mut c, b"250 ok\r\n", false);
    assert_eq!(out, "RCPT TO:<x@mx.test>\r\n");
    let (out, _) = feed(&mut c, b"550 no\r\n", true);
    assert_eq!(out, "RCPT TO:<b@mx.test>\r\n");
    let (out, _) = feed(&mut c, b"250 ok\r\n", false);
    assert_eq!(out, "DATA\r\n");
    let (out, _) = feed(&mut c, b"354 go\r\n", false);
    assert_eq!(out, "hi\r\n.\r\n");
    let (_, ev) = feed(&mut c, b"250 ok\r\n", false);
    assert!(matches!(&ev[..], [ClientEvent::MessageDone(r)] if r.is_accepted()));
}

#[test]
fn all_recipients_refused_sends_rset_and_no_data() {
    let (mut c, _) = greeted(b"250-mx.test\r\n250 SIZE\r\n", false);
    c.send_message(envelope(&["x@mx.test"]), b"hi\r\n").unwrap();
    let _ = c.poll_transmit();
    let _ = feed(&mut c, b"250 ok\r\n", false);
    let (out, ev) = feed(&mut c, b"550 no\r\n", false);
    assert_eq!(out, "RSET\r\n");
    assert!(ev.is_empty());
    let (_, ev) = feed(&mut c, b"250 ok\r\n", false);
    let [ClientEvent::MessageDone(r)] = &ev[..] else {
        panic!("{ev:?}")
    };
    assert!(!r.is_accepted() && r.data.is_none());
    assert!(c.is_idle());
}

#[test]
fn pipelined_354_without_accepted_recipients_sends_empty_terminator() {
    let (mut c, _) = greeted(b"250-mx.test\r\n250 PIPELINING\r\n", false);
    c.send_message(envelope(&["x@mx.test"]), b"secret\r\n")
        .unwrap();
    let _ = c.poll_transmit();
    let (out, _) = feed(&mut c, b"250 ok\r\n550 no\r\n354 go\r\n", false);
    assert_eq!(out, ".\r\n", "the body must not be sent");
    let (_, ev) = feed(&mut c, b"250 ok\r\n", false);
    assert!(matches!(&ev[..], [ClientEvent::MessageDone(r)] if !r.is_accepted()));
}

#[test]
fn helo_fallback_means_no_esmtp() {
    let mut c = ClientSession::new(ClientConfig::new("c.test"), now());
    let _ = feed(&mut c, b"220 old.test\r\n", false);
    let (out, _) = feed(&mut c, b"502 5.5.1 what\r\n", true);
    assert_eq!(out, "HELO c.test\r\n");
    let (_, ev) = feed(&mut c, b"250 old.test\r\n", false);
    assert!(matches!(&ev[..], [ClientEvent::Ready(caps)] if !caps.esmtp));
    assert_eq!(c.tls_outcome(), TlsOutcome::NoEsmtp);
    assert_eq!(
        c.start_tls(),
        Err(Error::TlsUnavailable(TlsOutcome::NoEsmtp))
    );
    assert_eq!(c.poll_transmit(), None, "nothing sent");
    let mut env = envelope(&["b@mx.test"]);
    env.params.requiretls = true;
    assert_eq!(
        c.send_message(env, b"x"),
        Err(Error::ExtensionNotOffered("REQUIRETLS"))
    );
    c.send_message(envelope(&["b@mx.test"]), b"x").unwrap();
    assert_eq!(c.poll_transmit().unwrap(), b"MAIL FROM:<a@c.test>\r\n");
}

#[test]
fn starttls_not_offered_and_refused() {
    let (mut c, _) = greeted(b"250-mx.test\r\n250 PIPELINING\r\n", false);
    assert_eq!(c.tls_outcome(), TlsOutcome::StartTlsNotOffered);
    assert_eq!(
        c.start_tls(),
        Err(Error::TlsUnavailable(TlsOutcome::StartTlsNotOffered))
    );

    let (mut c, _) = greeted(EHLO_FULL, false);
    c.start_tls().unwrap();
    assert_eq!(c.poll_transmit().unwrap(), b"STARTTLS\r\n");
    let (_, ev) = feed(&mut c, b"454 4.7.0 TLS not available\r\n", true);
    assert!(matches!(&ev[..], [ClientEvent::Ready(_)]));
    let TlsOutcome::StartTlsRefused(r) = c.tls_outcome() else {
        panic!()
    };
    assert_eq!(r.code(), 454);
    assert!(matches!(
        c.start_tls(),
        Err(Error::TlsUnavailable(TlsOutcome::StartTlsRefused(_)))
    ));
}

#[test]
fn starttls_upgrade_reissues_ehlo() {
    let (mut c, _) = greeted(EHLO_FULL, true);
    c.start_tls().unwrap();
    let _ = c.poll_transmit();
    let (_, ev) = feed(&mut c, b"220 2.0.0 Ready to start TLS\r\n", true);
    assert_eq!(ev, [ClientEvent::StartTls]);
    assert!(c.is_awaiting_tls());
    assert_eq!(c.poll_timeout(), None);
    assert!(c.send_message(envelope(&["b@mx.test"]), b"x").is_err());
    c.handle_tls_established(now(), tls_info()).unwrap();
    assert_eq!(c.poll_transmit().unwrap(), b"EHLO c.test\r\n");
    let (_, ev) = feed(&mut c, b"250-mx.test\r\n250 REQUIRETLS\r\n", false);
    assert!(matches!(&ev[..], [ClientEvent::Ready(caps)] if caps.requiretls && !caps.starttls));
    assert_eq!(c.tls_outcome(), TlsOutcome::Established(tls_info()));
    assert!(matches!(c.start_tls(), Err(Error::InvalidState(..))));
}

#[test]
fn response_injection_after_220_is_discarded() {
    let injected = b"250-mx.test\r\n250 PIPELINING\r\n";
    for bytewise in [false, true] {
        let (mut c, _) = greeted(EHLO_FULL, false);
        c.start_tls().unwrap();
        let _ = c.poll_transmit();
        let mut input = b"220 2.0.0 Ready\r\n".to_vec();
        input.extend_from_slice(injected);
        let (_, ev) = feed(&mut c, &input, bytewise);
        assert_eq!(ev.first(), Some(&ClientEvent::StartTls));
        let discarded: usize = ev
            .iter()
            .map(|e| match e {
                ClientEvent::InjectionAttempt { discarded } => *discarded,
                _ => 0,
            })
            .sum();
        assert_eq!(discarded, injected.len(), "bytewise={bytewise}");
        c.handle_tls_established(now(), tls_info()).unwrap();
        assert_eq!(c.poll_transmit().unwrap(), b"EHLO c.test\r\n");
        // The real post-TLS EHLO reply is what counts; the injected one was not kept.
        let (_, ev) = feed(&mut c, b"250-mx.test\r\n250 SMTPUTF8\r\n", false);
        assert!(
            matches!(&ev[..], [ClientEvent::Ready(caps)] if caps.smtputf8 && !caps.pipelining),
            "{ev:?}"
        );
    }
}

#[test]
fn handshake_failure_is_typed_and_sticky() {
    let (mut c, _) = greeted(EHLO_FULL, false);
    c.start_tls().unwrap();
    let _ = c.poll_transmit();
    let _ = feed(&mut c, b"220 go\r\n", false);
    let _ = c.poll_event();
    c.handle_tls_failed("invalid peer certificate: UnknownIssuer");
    assert_eq!(
        c.tls_outcome(),
        TlsOutcome::HandshakeFailed("invalid peer certificate: UnknownIssuer".into())
    );
    let err = Error::Handshake("invalid peer certificate: UnknownIssuer".into());
    assert_eq!(
        c.poll_event(),
        Some(ClientEvent::Closed {
            error: Some(err.clone())
        })
    );
    assert_eq!(c.quit(), Err(err.clone()));
    assert_eq!(c.handle_input(now(), b"250 ok\r\n"), Err(err));
}

#[test]
fn malformed_and_unsolicited_replies_are_sticky_errors() {
    let mut c = ClientSession::new(ClientConfig::new("c.test"), now());
    let e = c.handle_input(now(), b"hello there\r\n").unwrap_err();
    assert!(
        matches!(e, Error::MalformedReply(ReplyError::BadCode { .. })),
        "{e}"
    );
    assert_eq!(c.handle_input(now(), b"220 ok\r\n"), Err(e.clone()));
    assert_eq!(c.start_tls(), Err(e));

    let (mut c, _) = greeted(EHLO_FULL, false);
    let e = c.handle_input(now(), b"250 surprise\r\n").unwrap_err();
    assert!(matches!(e, Error::UnsolicitedReply(_)));

    let mut c = ClientSession::new(ClientConfig::new("c.test"), now());
    let e = c.handle_input(now(), b"554 5.7.1 go away\r\n").unwrap_err();
    assert!(matches!(e, Error::GreetingRefused(_)), "{e}");
}

#[test]
fn extensions_required_by_the_message_must_be_offered() {
    let (mut c, _) = greeted(b"250-mx.test\r\n250 PIPELINING\r\n", false);
    assert_eq!(
        c.send_message(envelope(&["jösé@bücher.test"]), b"x"),
        Err(Error::ExtensionNotOffered("SMTPUTF8"))
    );
    assert_eq!(
        c.send_message(envelope(&["b@mx.test"]), "é".as_bytes()),
        Err(Error::ExtensionNotOffered("8BITMIME"))
    );
    assert_eq!(c.poll_transmit(), None);
    let (mut c, _) = greeted(EHLO_FULL, false);
    c.send_message(envelope(&["jösé@bücher.test"]), "é".as_bytes())
        .unwrap();
    let out = String::from_utf8(c.poll_transmit().unwrap()).unwrap();
    assert!(
        out.starts_with("MAIL FROM:<a@c.test> SIZE=4 SMTPUTF8\r\n"),
        "{out}"
    );
}

#[test]
fn timeouts_and_eof() {
    let t = now();
    let mut c = ClientSession::new(ClientConfig::new("c.test"), t);
    assert_eq!(c.poll_timeout(), Some(t + Duration::from_secs(300)));
    c.handle_timeout(t + Duration::from_secs(300));
    assert!(matches!(
        c.poll_event(),
        Some(ClientEvent::Closed {
            error: Some(Error::Timeout(_))
        })
    ));

    let mut c = ClientSession::new(ClientConfig::new("c.test"), t);
    c.handle_eof();
    assert!(matches!(
        c.poll_event(),
        Some(ClientEvent::Closed {
            error: Some(Error::ConnectionClosed(_))
        })
    ));
}

#[test]
fn dot_stuffing() {
    assert_eq!(dot_stuff(b""), b".\r\n");
    assert_eq!(dot_stuff(b".\r\n"), b"..\r\n.\r\n");
    assert_eq!(dot_stuff(b"a\rb\n.c"), b"a\r\nb\r\n..c\r\n.\r\n");
}

#[test]
fn dribbled_replies_are_parsed_once_per_line() {
    // Regression: every read re-parsed all buffered reply lines, so a
    // server sending a long multiline reply one byte per read cost
    // quadratic CPU.
    let mut reply = Vec::new();
    for _ in 0..MAX_REPLY_LINES - 1 {
        reply.extend_from_slice(b"250-");
        reply.extend_from_slice(&[b'x'; 1000]);
        reply.extend_from_slice(b"\r\n");
    }
    reply.extend_from_slice(b"250 PIPELINING\r\n");
    let (c, caps) = greeted(&reply, true);
    assert!(caps.pipelining);
    assert!(
        c.parses <= 2 * MAX_REPLY_LINES + 2,
        "{} parses for {} bytes",
        c.parses,
        reply.len()
    );

    // A line that never ends is still refused once it passes the limit.
    let mut c = ClientSession::new(ClientConfig::new("c.test"), now());
    feed(&mut c, b"220 mx.test ESMTP\r\n", false);
    let (_, events) = feed(&mut c, &[b'2'; MAX_REPLY_LINE + 1], true);
    assert!(c.is_closed());
    assert!(matches!(
        events.last(),
        Some(ClientEvent::Closed {
            error: Some(Error::MalformedReply(ReplyError::LineTooLong))
        })
    ));
}
