//! CHUNKING/BDAT (RFC 3030) through the public server API (issue 10, item
//! 10): chunks framed by length and read as they are, the last one ending
//! the message; `BDAT 0 LAST`; BDAT pipelined with the envelope; the same
//! checks and limits as DATA (bare line endings, NUL, size, 8-bit); refused
//! chunks skipped, never executed; DATA and BDAT not mixed; and, however
//! the input is split, streamed delivery gives the same message as whole
//! delivery.

use std::time::Instant;

use portcullis_smtp_tls::{MessageRefusal, ServerConfig, ServerEvent, ServerSession, TlsMode};
use proptest::prelude::*;

fn session(streamed: bool) -> ServerSession {
    let mut c = ServerConfig::new("mx.test");
    c.tls = TlsMode::Off;
    c.max_message_size = 1000;
    c.chunking = true;
    c.stream_message_data = streamed;
    ServerSession::new(c, Instant::now())
}

/// Feeds the chunks, accepting every decision; returns the replies and the
/// events, streamed messages folded into whole ones.
fn drive(s: &mut ServerSession, chunks: &[&[u8]]) -> (String, Vec<ServerEvent>) {
    let mut out = Vec::new();
    let mut events = Vec::new();
    let mut current: Option<(portcullis_smtp_tls::Envelope, Vec<u8>)> = None;
    let mut drain = |s: &mut ServerSession, events: &mut Vec<ServerEvent>| loop {
        if let Some(o) = s.poll_transmit() {
            out.extend_from_slice(&o);
        }
        let Some(ev) = s.poll_event() else { break };
        match ev {
            ServerEvent::Mail { .. } | ServerEvent::Rcpt { .. } | ServerEvent::Message { .. } => {
                s.accept().unwrap();
                events.push(ev);
            }
            ServerEvent::MessageStart { envelope } => current = Some((envelope, Vec::new())),
            ServerEvent::MessageData(piece) => current.as_mut().unwrap().1.extend(piece),
            ServerEvent::MessageEnd => {
                let (envelope, body) = current.take().unwrap();
                s.accept().unwrap();
                events.push(ServerEvent::Message { envelope, body });
            }
            ServerEvent::MessageAbandoned => current = None,
            ServerEvent::MessageRefused { .. } => {
                current = None;
                events.push(ev);
            }
            ServerEvent::CommandRefused { .. } => {}
            other => events.push(other),
        }
    };
    drain(s, &mut events);
    for c in chunks {
        if s.is_closed() {
            break;
        }
        s.handle_input(Instant::now(), c).unwrap();
        drain(s, &mut events);
    }
    (String::from_utf8_lossy(&out).into_owned(), events)
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

fn codes(out: &str) -> Vec<&str> {
    out.split("\r\n")
        .filter(|l| l.len() >= 4 && l.as_bytes().get(3) == Some(&b' '))
        .map(|l| &l[..3])
        .collect()
}

const TX: &[u8] = b"EHLO c.test\r\nMAIL FROM:<a@c.test>\r\nRCPT TO:<b@mx.test>\r\n";

fn both(input: &[u8]) -> (String, Vec<ServerEvent>) {
    let whole = drive(&mut session(false), &[input]);
    let streamed = drive(&mut session(true), &[input]);
    assert_eq!(whole, streamed, "streamed and whole delivery differ");
    whole
}

#[test]
fn chunks_make_one_message_and_chunking_is_advertised() {
    let mut input = TX.to_vec();
    input.extend_from_slice(
        b"BDAT 15\r\nSubject: hi\r\n\r\nBDAT 11 LAST\r\n.dot\r\nend\r\nQUIT\r\n",
    );
    let (out, events) = both(&input);
    assert!(
        out.contains(" CHUNKING\r\n") || out.contains("-CHUNKING\r\n"),
        "{out}"
    );
    assert_eq!(
        codes(&out),
        ["220", "250", "250", "250", "250", "250", "221"],
        "{out}"
    );
    assert!(out.contains("250 2.0.0 15 octets received\r\n"), "{out}");
    assert!(out.contains("250 2.0.0 Message accepted for delivery\r\n"));
    assert_eq!(
        bodies(&events),
        [b"Subject: hi\r\n\r\n.dot\r\nend\r\n".to_vec()],
        "no dot-unstuffing in BDAT"
    );
}

/// Found by fuzzing (`smtp_server_bdat`): a RCPT between chunks was
/// accepted and joined the whole message's envelope but not the streamed
/// one's, which the embedder had been given at the first chunk.
#[test]
fn rcpt_between_chunks_is_refused_and_the_envelope_stays() {
    let mut input = TX.to_vec();
    input.extend_from_slice(b"BDAT 4\r\nabcdRCPT TO:<c@mx.test>\r\nBDAT 2 LAST\r\n\r\n");
    let (out, events) = both(&input);
    assert!(
        out.contains("503 5.5.1 RCPT not allowed after BDAT"),
        "{out}"
    );
    assert!(
        out.ends_with("250 2.0.0 Message accepted for delivery\r\n"),
        "{out}"
    );
    let envelopes: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Message { envelope, .. } => Some(envelope.to.len()),
            _ => None,
        })
        .collect();
    assert_eq!(envelopes, [1], "{events:?}");
}

#[test]
fn bdat_last_with_zero_octets_ends_the_message() {
    let mut input = TX.to_vec();
    input.extend_from_slice(b"BDAT 6\r\nA: b\r\n");
    input.extend_from_slice(b"BDAT 0 LAST\r\n");
    let (out, events) = both(&input);
    assert!(
        out.ends_with("250 2.0.0 6 octets received\r\n250 2.0.0 Message accepted for delivery\r\n"),
        "{out}"
    );
    assert_eq!(bodies(&events), [b"A: b\r\n".to_vec()]);
    // A message of nothing at all.
    let mut input = TX.to_vec();
    input.extend_from_slice(b"BDAT 0 LAST\r\n");
    let (_, events) = both(&input);
    assert_eq!(bodies(&events), [Vec::<u8>::new()]);
}

#[test]
fn pipelined_with_the_envelope_and_a_second_message_with_data() {
    // One write: envelope, two chunks, then a DATA transaction.
    let input = b"EHLO c.test\r\nMAIL FROM:<a@c.test>\r\nRCPT TO:<b@mx.test>\r\nBDAT 3\r\nA: BDAT 5 LAST\r\nb\r\n\r\nMAIL FROM:<c@c.test>\r\nRCPT TO:<d@mx.test>\r\nDATA\r\nX: y\r\n.\r\n";
    let (out, events) = both(input);
    assert_eq!(
        codes(&out),
        [
            "220", "250", "250", "250", "250", "250", "250", "250", "354", "250"
        ],
        "{out}"
    );
    assert_eq!(
        bodies(&events),
        [b"A: b\r\n\r\n".to_vec(), b"X: y\r\n".to_vec()]
    );
    // Split byte by byte, the same.
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(
        drive(&mut session(true), &bytes),
        drive(&mut session(false), &[input])
    );
}

#[test]
fn chunks_get_the_data_checks() {
    for (chunk, refusal) in [
        (&b"a\nb\r\n"[..], MessageRefusal::BareLineEnding),
        (b"a\r\n\0.\r\n", MessageRefusal::NulCharacter),
        (b"caf\xc3\xa9\r\n", MessageRefusal::Undeclared8Bit),
    ] {
        let mut input = TX.to_vec();
        input.extend_from_slice(format!("BDAT {} LAST\r\n", chunk.len()).as_bytes());
        input.extend_from_slice(chunk);
        input.extend_from_slice(b"NOOP\r\n");
        let (out, events) = both(&input);
        assert!(
            out.ends_with(&format!("{}250 2.0.0 OK\r\n", refusal.reply())),
            "{out}"
        );
        assert!(bodies(&events).is_empty());
    }
    // Over the size limit: refused at the chunk that passes it.
    let mut input = TX.to_vec();
    input.extend_from_slice(format!("BDAT 600\r\n{}", "x".repeat(598) + "\r\n").as_bytes());
    input.extend_from_slice(format!("BDAT 600 LAST\r\n{}", "y".repeat(598) + "\r\n").as_bytes());
    input.extend_from_slice(b"BDAT 2 LAST\r\nz\n");
    let (out, events) = both(&input);
    assert!(
        out.ends_with("250 2.0.0 600 octets received\r\n552 5.3.4 Message size exceeds fixed maximum message size\r\n503 5.5.1 Need MAIL and RCPT before BDAT\r\n"),
        "{out}"
    );
    assert!(bodies(&events).is_empty());
}

#[test]
fn refused_chunks_are_skipped_and_bdat_does_not_mix_with_data() {
    // No transaction: 503, and the chunk (which looks like commands) is
    // discarded.
    let (out, _) = both(b"EHLO c.test\r\nBDAT 6\r\nQUIT\r\nNOOP\r\n");
    assert!(
        out.ends_with("503 5.5.1 Need MAIL and RCPT before BDAT\r\n250 2.0.0 OK\r\n"),
        "{out}"
    );
    // DATA after BDAT resets the transaction.
    let mut input = TX.to_vec();
    input.extend_from_slice(b"BDAT 3\r\nA: DATA\r\n");
    let (out, events) = both(&input);
    assert!(
        out.ends_with("503 5.5.1 DATA not allowed after BDAT; transaction reset\r\n"),
        "{out}"
    );
    assert!(bodies(&events).is_empty());
    // RSET between chunks abandons the message.
    let mut input = TX.to_vec();
    input.extend_from_slice(b"BDAT 3\r\nA: RSET\r\nBDAT 1 LAST\r\nx");
    let (out, events) = both(&input);
    assert!(
        out.ends_with("250 2.0.0 OK\r\n503 5.5.1 Need MAIL and RCPT before BDAT\r\n"),
        "{out}"
    );
    assert!(bodies(&events).is_empty());
    // A size that cannot be read: the end of the chunk is unknown.
    let mut s = session(false);
    let (out, _) = drive(&mut s, &[b"EHLO c.test\r\nBDAT lots\r\nQUIT\r\n"]);
    assert!(s.is_closed());
    assert!(
        out.ends_with(
            "421 4.5.4 mx.test Cannot find the end of the BDAT chunk, closing connection\r\n"
        ),
        "{out}"
    );
    // CHUNKING off: not advertised, BDAT not implemented, chunk skipped.
    let mut c = ServerConfig::new("mx.test");
    c.chunking = false;
    let mut s = ServerSession::new(c, Instant::now());
    let (out, _) = drive(&mut s, &[b"EHLO c.test\r\nBDAT 6\r\nQUIT\r\nNOOP\r\n"]);
    assert!(!out.contains("250-CHUNKING") && !out.contains("250 CHUNKING"));
    assert!(
        out.ends_with(
            "502 5.5.1 BDAT not implemented (CHUNKING is not offered)\r\n250 2.0.0 OK\r\n"
        ),
        "{out}"
    );
}

proptest! {
    /// Any chunking of any text, any split of the input: streamed and whole
    /// delivery agree on every reply and message.
    #[test]
    fn any_chunking_and_split_agree(
        text in prop::collection::vec(prop::sample::select(&b"ab.\r\n\0\xe9 "[..]), 0..400),
        cuts in prop::collection::vec(any::<usize>(), 0..6),
        points in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let mut sizes: Vec<usize> = cuts.iter().map(|c| c % (text.len() + 1)).collect();
        sizes.sort_unstable();
        let mut input = TX.to_vec();
        let mut start = 0;
        for end in sizes.into_iter().chain([text.len()]) {
            let last = end == text.len() && start <= end;
            let piece = &text[start..end.max(start)];
            input.extend_from_slice(format!("BDAT {}{}\r\n", piece.len(), if last { " LAST" } else { "" }).as_bytes());
            input.extend_from_slice(piece);
            start = end.max(start);
            if last { break; }
        }
        let mut splits: Vec<usize> = points.iter().map(|p| p % (input.len() + 1)).collect();
        splits.sort_unstable();
        let mut pieces = Vec::new();
        let mut at = 0;
        for p in splits.into_iter().chain([input.len()]) {
            pieces.push(&input[at..p]);
            at = p;
        }
        let whole = drive(&mut session(false), &[&input]);
        let streamed = drive(&mut session(true), &pieces);
        prop_assert_eq!(whole, streamed);
    }
}
