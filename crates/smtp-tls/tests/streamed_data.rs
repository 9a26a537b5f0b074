//! Streamed message data through the public server API: the text arrives as
//! `MessageData` pieces while the client sends it, nothing is accepted
//! before the final dot, the smuggling checks are those of whole delivery,
//! and however the input is split, the embedder gets the same message.

use std::time::Instant;

use portcullis_smtp_tls::{MessageRefusal, ServerConfig, ServerEvent, ServerSession, TlsMode};
use proptest::prelude::*;

fn session(streamed: bool) -> ServerSession {
    let mut c = ServerConfig::new("mx.test");
    c.tls = TlsMode::Off;
    c.max_message_size = 10_000;
    c.stream_message_data = streamed;
    ServerSession::new(c, Instant::now())
}

/// Feeds the chunks, accepting every decision; returns what was written and
/// every event in order.
fn drive(s: &mut ServerSession, chunks: &[&[u8]]) -> (String, Vec<ServerEvent>) {
    let now = Instant::now();
    let mut out = Vec::new();
    let mut events = Vec::new();
    let mut drain = |s: &mut ServerSession, events: &mut Vec<ServerEvent>| loop {
        if let Some(o) = s.poll_transmit() {
            out.extend_from_slice(&o);
        }
        let Some(ev) = s.poll_event() else { break };
        if matches!(
            ev,
            ServerEvent::Mail { .. }
                | ServerEvent::Rcpt { .. }
                | ServerEvent::Message { .. }
                | ServerEvent::MessageEnd
        ) {
            s.accept().unwrap();
        }
        events.push(ev);
    };
    drain(s, &mut events);
    for c in chunks {
        if s.is_closed() {
            break;
        }
        s.handle_input(now, c).unwrap();
        drain(s, &mut events);
    }
    (String::from_utf8_lossy(&out).into_owned(), events)
}

/// Streamed events folded into what whole delivery reports, so both modes
/// can be compared event for event.
fn fold(events: Vec<ServerEvent>) -> Vec<ServerEvent> {
    let mut folded = Vec::new();
    let mut current: Option<(portcullis_smtp_tls::Envelope, Vec<u8>)> = None;
    for ev in events {
        match ev {
            ServerEvent::MessageStart { envelope } => {
                assert!(current.is_none(), "MessageStart inside a message");
                current = Some((envelope, Vec::new()));
            }
            ServerEvent::MessageData(piece) => {
                assert!(!piece.is_empty(), "empty MessageData");
                assert!(piece.ends_with(b"\r\n"), "MessageData is whole lines");
                current
                    .as_mut()
                    .expect("MessageData outside a message")
                    .1
                    .extend_from_slice(&piece);
            }
            ServerEvent::MessageEnd => {
                let (envelope, body) = current.take().expect("MessageEnd without start");
                folded.push(ServerEvent::Message { envelope, body });
            }
            ServerEvent::MessageRefused { reason } => {
                assert!(current.take().is_some(), "refusal without start");
                folded.push(ServerEvent::MessageRefused { reason });
            }
            other => folded.push(other),
        }
    }
    folded
}

/// One input run whole (one chunk), streamed in one chunk and streamed byte
/// by byte: all three must agree on the wire and on the messages.
fn agree(input: &[u8]) -> (String, Vec<ServerEvent>) {
    let whole = drive(&mut session(false), &[input]);
    let streamed = drive(&mut session(true), &[input]);
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    let bytewise = drive(&mut session(true), &bytes);
    assert_eq!(whole.0, streamed.0, "{:?}", String::from_utf8_lossy(input));
    assert_eq!(whole.0, bytewise.0, "{:?}", String::from_utf8_lossy(input));
    let (streamed, bytewise) = (fold(streamed.1), fold(bytewise.1));
    assert_eq!(whole.1, streamed);
    assert_eq!(whole.1, bytewise);
    whole
}

const TX: &[u8] = b"EHLO c.test\r\nMAIL FROM:<a@c.test>\r\nRCPT TO:<b@mx.test>\r\nDATA\r\n";

fn with_tx(text: &[u8]) -> Vec<u8> {
    let mut v = TX.to_vec();
    v.extend_from_slice(text);
    v
}

fn bodies(events: &[ServerEvent]) -> Vec<Vec<u8>> {
    events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Message { body, .. } => Some(body.clone()),
            _ => None,
        })
        .collect()
}

fn refusals(events: &[ServerEvent]) -> Vec<MessageRefusal> {
    events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::MessageRefused { reason } => Some(*reason),
            _ => None,
        })
        .collect()
}

#[test]
fn text_is_handed_over_as_it_arrives_and_accepted_only_after_the_dot() {
    let mut s = session(true);
    let (out, events) = drive(&mut s, &[&with_tx(b"Subject: x\r\n\r\n..one\r\ntw")]);
    assert!(
        out.ends_with("354 End data with <CR><LF>.<CR><LF>\r\n"),
        "{out}"
    );
    let pieces: Vec<&[u8]> = events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::MessageData(p) => Some(&p[..]),
            _ => None,
        })
        .collect();
    assert_eq!(
        pieces,
        [&b"Subject: x\r\n\r\n.one\r\n"[..]],
        "whole lines, unstuffed"
    );
    assert!(matches!(&events[2], ServerEvent::MessageStart { envelope } if envelope.to.len() == 1));
    assert!(!events.contains(&ServerEvent::MessageEnd));
    assert!(s.wants_input() && !s.is_decision_pending());

    // The rest of the line, then the dot split from its CRLF.
    let (out, events) = drive(&mut s, &[b"o\r\n.", b"\r"]);
    assert_eq!(out, "", "nothing is answered before the final dot");
    assert_eq!(events, [ServerEvent::MessageData(b"two\r\n".to_vec())]);

    s.handle_input(Instant::now(), b"\nQUIT\r\n").unwrap();
    assert_eq!(s.poll_event(), Some(ServerEvent::MessageEnd));
    assert_eq!(
        s.poll_transmit(),
        None,
        "no 250 before the embedder accepts"
    );
    assert_eq!(s.poll_event(), None, "QUIT waits behind the decision");
    assert_eq!(s.envelope().map(|e| e.to.len()), Some(1));
    s.accept().unwrap();
    let out = String::from_utf8(s.poll_transmit().unwrap()).unwrap();
    assert_eq!(
        out,
        "250 2.0.0 Message accepted for delivery\r\n221 2.0.0 mx.test closing connection\r\n"
    );
}

#[test]
fn smuggling_is_refused_the_same_way_and_its_text_is_never_handed_over() {
    for variant in [
        &b"\n.\n"[..],
        b"\r.\r",
        b"\n.\r\n",
        b"\r\n.\n",
        b"\r.\r\n",
        b"\n.\r\r\n",
    ] {
        let mut text = b"Subject: first\r\n\r\nbody".to_vec();
        text.extend_from_slice(variant);
        text.extend_from_slice(
            b"MAIL FROM:<admin@bank.test>\r\nRCPT TO:<victim@mx.test>\r\nDATA\r\nsmuggled\r\n.\r\nNOOP\r\n",
        );
        let input = with_tx(&text);
        let (out, events) = agree(&input);
        assert!(
            out.contains("554 5.6.0 Message refused: bare CR or LF")
                && out.ends_with("250 2.0.0 OK\r\n"),
            "{variant:?}: {out}"
        );
        assert_eq!(
            refusals(&events),
            [MessageRefusal::BareLineEnding],
            "{variant:?}"
        );
        assert!(bodies(&events).is_empty(), "{variant:?}");
        let mails = events
            .iter()
            .filter(|e| matches!(e, ServerEvent::Mail { .. }))
            .count();
        assert_eq!(mails, 1, "{variant:?}: smuggled MAIL was executed");

        // Streamed, only the clean lines before the first bare CR or LF
        // were handed over; the smuggled "commands" never were.
        let (_, events) = drive(&mut session(true), &[&input]);
        let handed: Vec<u8> = events
            .iter()
            .filter_map(|e| match e {
                ServerEvent::MessageData(p) => Some(p.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        assert!(
            b"Subject: first\r\n\r\nbody\r\n".starts_with(&handed),
            "{variant:?}: {:?}",
            String::from_utf8_lossy(&handed)
        );
        assert!(!events.contains(&ServerEvent::MessageEnd));
    }
}

#[test]
fn other_refusals_agree_between_whole_and_streamed() {
    let mut long = vec![b'y'; 1200];
    long.extend_from_slice(b"\r\n.\r\n");
    let mut big = Vec::new();
    for _ in 0..200 {
        big.extend_from_slice(&[b'z'; 98]);
        big.extend_from_slice(b"\r\n");
    }
    big.extend_from_slice(b".\r\n");
    for (text, reason, reply) in [
        (long, MessageRefusal::LineTooLong, "554 5.6.0 "),
        (big, MessageRefusal::TooBig, "552 5.3.4 "),
        (
            "caf\u{e9}\r\n.\r\n".as_bytes().to_vec(),
            MessageRefusal::Undeclared8Bit,
            "554 5.6.1 ",
        ),
    ] {
        let (out, events) = agree(&with_tx(&text));
        assert_eq!(refusals(&events), [reason]);
        assert!(out.contains(reply), "{reason:?}: {out}");
        assert_eq!(reason.reply().to_string().get(..10), Some(reply));
    }
}

#[test]
fn pipelined_messages_and_dot_stuffing_agree() {
    let mut input = with_tx(b"..a\r\n...\r\n.\r\n");
    input.extend_from_slice(b"MAIL FROM:<a@c.test> BODY=8BITMIME\r\nRCPT TO:<b@mx.test>\r\nDATA\r\n\xc3\xa9\r\n\r\n.\r\nQUIT\r\n");
    let (_, events) = agree(&input);
    assert_eq!(
        bodies(&events),
        [b".a\r\n..\r\n".to_vec(), b"\xc3\xa9\r\n\r\n".to_vec()]
    );
    let (_, events) = agree(&with_tx(b".\r\n"));
    assert_eq!(bodies(&events), [Vec::<u8>::new()]);
}

#[test]
fn a_connection_lost_mid_message_ends_without_message_end() {
    let mut s = session(true);
    drive(&mut s, &[&with_tx(b"partial\r\n")]);
    s.handle_eof();
    let ev = s.poll_event();
    assert!(matches!(ev, Some(ServerEvent::Closed(_))), "{ev:?}");
    assert_eq!(s.poll_event(), None);
}

/// Message lines a client could send (no CR or LF inside a line, short
/// enough), with leading dots to exercise dot-stuffing.
fn lines() -> impl Strategy<Value = Vec<Vec<u8>>> {
    let line = (
        prop::option::of(Just(b".".to_vec())),
        prop::collection::vec(
            // CR, LF and NUL are refused in message text (NUL since issue 10)
            any::<u8>().prop_map(|b| {
                if b == b'\r' || b == b'\n' || b == 0 {
                    b'x'
                } else {
                    b
                }
            }),
            0..80,
        ),
    )
        .prop_map(|(dot, rest)| dot.into_iter().flatten().chain(rest).collect::<Vec<u8>>());
    prop::collection::vec(line, 0..30)
}

fn split_at_points<'a>(input: &'a [u8], points: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = points.iter().map(|p| p % (input.len() + 1)).collect();
    cuts.sort_unstable();
    let mut pieces = Vec::new();
    let mut start = 0;
    for c in cuts.into_iter().chain([input.len()]) {
        pieces.push(&input[start..c]);
        start = c;
    }
    pieces
}

proptest! {
    /// A valid message, split anywhere, arrives as exactly the lines sent.
    #[test]
    fn any_split_gives_the_same_body(lines in lines(), points in prop::collection::vec(any::<usize>(), 0..12)) {
        let mut text = Vec::new();
        let mut expected = Vec::new();
        for l in &lines {
            if l.first() == Some(&b'.') {
                text.push(b'.');
            }
            text.extend_from_slice(l);
            text.extend_from_slice(b"\r\n");
            expected.extend_from_slice(l);
            expected.extend_from_slice(b"\r\n");
        }
        text.extend_from_slice(b".\r\n");
        let mut input = b"EHLO c.test\r\nMAIL FROM:<a@c.test> BODY=8BITMIME\r\nRCPT TO:<b@mx.test>\r\nDATA\r\n".to_vec();
        input.extend_from_slice(&text);
        let (out, events) = drive(&mut session(true), &split_at_points(&input, &points));
        prop_assert!(out.ends_with("250 2.0.0 Message accepted for delivery\r\n"), "{}", out);
        prop_assert_eq!(bodies(&fold(events)), vec![expected]);
    }

    /// Any bytes after DATA, split anywhere, give the same replies and the
    /// same messages (or refusals) as one unsplit whole-delivery run.
    #[test]
    fn any_split_of_any_bytes_agrees(text in prop::collection::vec(prop::sample::select(&b"a.\r\n\xe9 Q"[..]), 0..300), points in prop::collection::vec(any::<usize>(), 0..12)) {
        let mut input = with_tx(&text);
        input.extend_from_slice(b"\r\n.\r\n");
        let whole = drive(&mut session(false), &[&input]);
        let (out, events) = drive(&mut session(true), &split_at_points(&input, &points));
        prop_assert_eq!(&whole.0, &out);
        prop_assert_eq!(whole.1, fold(events));
    }
}
