//! What a server session refuses by itself, and how it says so (issue 10,
//! items 3, 4 and 6): NUL in message data is refused like a bare line
//! ending, every refusal the session makes on its own is a
//! `CommandRefused` event an embedder can log, and with TLS required every
//! command but EHLO, HELO, NOOP, STARTTLS and QUIT gets `530`, commands it
//! does not know included (EXPN gets `502` otherwise).

use std::time::Instant;

use portcullis_smtp_tls::{
    MessageRefusal, Reply, ServerConfig, ServerEvent, ServerSession, TlsMode,
};

fn session(mode: TlsMode) -> ServerSession {
    let mut c = ServerConfig::new("mx.test");
    c.tls = mode;
    c.max_message_size = 1000;
    c.max_errors = 100;
    c.chunking = true;
    ServerSession::new(c, Instant::now())
}

fn run(s: &mut ServerSession, input: &[u8]) -> (String, Vec<ServerEvent>) {
    s.handle_input(Instant::now(), input).unwrap();
    let mut out = Vec::new();
    let mut events = Vec::new();
    loop {
        if let Some(o) = s.poll_transmit() {
            out.extend_from_slice(&o);
        }
        let Some(ev) = s.poll_event() else { break };
        if matches!(
            ev,
            ServerEvent::Mail { .. } | ServerEvent::Rcpt { .. } | ServerEvent::Message { .. }
        ) {
            s.accept().unwrap();
        }
        events.push(ev);
    }
    (String::from_utf8_lossy(&out).into_owned(), events)
}

fn refusals(events: &[ServerEvent]) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::CommandRefused { command, reply } => {
                Some((command.clone(), reply.to_string().trim_end().to_owned()))
            }
            _ => None,
        })
        .collect()
}

const TX: &[u8] = b"EHLO c.test\r\nMAIL FROM:<a@c.test>\r\nRCPT TO:<b@mx.test>\r\n";

#[test]
fn smtpsmug_nul_variants_are_refused_and_nothing_behind_them_runs() {
    for variant in [&b"\r\n\0.\r\n"[..], b"\r\n.\0\r\n"] {
        let mut input = TX.to_vec();
        input.extend_from_slice(b"DATA\r\nSubject: x\r\n\r\nbody");
        input.extend_from_slice(variant);
        input.extend_from_slice(
            b"MAIL FROM:<evil@x.test>\r\nRCPT TO:<victim@mx.test>\r\nDATA\r\nsmuggled\r\n.\r\n",
        );
        let mut s = session(TlsMode::Off);
        let (out, events) = run(&mut s, &input);
        assert!(
            out.ends_with("554 5.6.0 Message refused: NUL character in message data (SMTP smuggling protection)\r\n"),
            "{variant:?}: {out}"
        );
        assert!(events.iter().any(|e| matches!(
            e,
            ServerEvent::MessageRefused {
                reason: MessageRefusal::NulCharacter
            }
        )));
        let mails = events
            .iter()
            .filter(|e| matches!(e, ServerEvent::Mail { .. }))
            .count();
        let messages = events
            .iter()
            .filter(|e| matches!(e, ServerEvent::Message { .. }))
            .count();
        assert_eq!(
            (mails, messages),
            (1, 0),
            "{variant:?}: the smuggled transaction ran"
        );
    }
}

#[test]
fn every_refusal_the_session_makes_is_an_event_with_command_and_reply() {
    let mut s = session(TlsMode::Preferred);
    let long = format!("NOOP {}\r\n", "x".repeat(2000));
    let mut input = b"MAIL FROM:<a@c.test>\r\nEHLO c.test\r\nMAIL FROM:<a@c.test> SIZE=999999\r\nMAIL FROM:<j\xc3\xb6@c.test>\r\nMAIL FROM:a@c.test\r\nEXPN staff\r\nFOO\r\n".to_vec();
    input.extend_from_slice(long.as_bytes());
    input.extend_from_slice(b"MAIL FROM:<a@c.test> NOTIFY=NEVER\r\n");
    let (_, events) = run(&mut s, &input);
    let got = refusals(&events);
    let codes: Vec<&str> = got.iter().map(|(_, r)| &r[..3]).collect();
    assert_eq!(
        codes,
        ["503", "552", "553", "501", "502", "500", "500", "555"],
        "{got:#?}"
    );
    assert_eq!(got[0].0, "MAIL FROM:<a@c.test>");
    assert_eq!(got[1].0, "MAIL FROM:<a@c.test> SIZE=999999");
    assert!(got[6].0.starts_with("NOOP xxx") && got[6].0.ends_with('…'));
    assert!(got[6].0.chars().count() <= 81);
}

#[test]
fn with_tls_required_only_five_commands_pass_and_the_rest_get_530() {
    for cmd in [
        "AUTH PLAIN AGJvYgBwdw==",
        "EXPN staff",
        "ETRN example.com",
        "BDAT 5 LAST",
        "XYZZY now",
        "VRFY bob",
    ] {
        let mut s = session(TlsMode::Required);
        let (out, events) = run(&mut s, format!("EHLO c.test\r\n{cmd}\r\n").as_bytes());
        assert!(
            out.ends_with("530 5.7.0 Must issue a STARTTLS command first\r\n"),
            "{cmd}: {out}"
        );
        assert_eq!(refusals(&events).len(), 1, "{cmd}");
    }
    let mut s = session(TlsMode::Required);
    let (out, _) = run(&mut s, b"HELO c.test\r\nNOOP\r\nEHLO c.test\r\n");
    assert!(out.contains("\r\n250 mx.test\r\n250 2.0.0 OK\r\n"), "{out}");
    // Syntax errors of the commands allowed before TLS are still theirs.
    let (out, _) = run(&mut s, b"HELO\r\n");
    assert!(
        out.ends_with("501 5.5.4 Syntax: HELO <hostname> (missing hostname)\r\n"),
        "{out}"
    );
    // Without TLS required, EXPN is a command we do not implement.
    let mut s = session(TlsMode::Off);
    let (out, _) = run(&mut s, b"EXPN staff\r\n");
    assert!(
        out.ends_with("502 5.5.1 Command EXPN not implemented\r\n"),
        "{out}"
    );
}

#[test]
fn the_chunk_of_a_bdat_refused_before_tls_is_skipped_not_executed() {
    let mut s = session(TlsMode::Required);
    let chunk = b"QUIT\r\nRSET\r\n";
    let mut input = format!("EHLO c.test\r\nBDAT {}\r\n", chunk.len()).into_bytes();
    input.extend_from_slice(chunk);
    input.extend_from_slice(b"NOOP\r\n");
    let (out, events) = run(&mut s, &input);
    assert!(!s.is_closed(), "QUIT inside the chunk was executed: {out}");
    assert!(
        out.ends_with("530 5.7.0 Must issue a STARTTLS command first\r\n250 2.0.0 OK\r\n"),
        "{out}"
    );
    assert_eq!(refusals(&events).len(), 1);
}

#[test]
fn refusal_replies_are_the_ones_sent() {
    let mut s = session(TlsMode::Off);
    let (out, events) = run(&mut s, b"RCPT TO:<b@mx.test>\r\n");
    let (_, reply) = &refusals(&events)[0];
    assert!(out.ends_with(&format!("{reply}\r\n")));
    let parsed = Reply::parse(out.split_once("\r\n").unwrap().1.as_bytes())
        .unwrap()
        .unwrap()
        .0;
    assert_eq!(parsed.code(), 503);
}
