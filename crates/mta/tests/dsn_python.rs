//! A bounce must parse as RFC 3464 in a mail library we did not write:
//! Python's `email` package reads it back here.

use std::io::Write;
use std::process::{Command, Stdio};

use portcullis_mta::dsn::{FailedMessage, RecipientFailure, bounce};
use portcullis_mta::spool::{Envelope, EnvelopeFlags};

const READ_REPORT: &str = r#"
import email, sys
from email import policy
msg = email.message_from_bytes(sys.stdin.buffer.read(), policy=policy.compat32)
print(msg.get_content_type(), msg.get_param("report-type"))
parts = msg.get_payload()
print(len(parts), *[p.get_content_type() for p in parts])
status = parts[1].get_payload()
print(len(status))
for block in status:
    print(block.get("Final-Recipient"), "|", block.get("Action"), "|", block.get("Status"))
print(parts[2].get_payload()[0]["Subject"] if parts[2].is_multipart() else parts[2].get_payload().splitlines()[1])
"#;

#[test]
fn python_email_reads_our_delivery_status_notification() {
    let envelope = Envelope {
        sender: "alice@example.org".into(),
        recipients: vec!["bob@example.com".into(), "carol@example.net".into()],
        received_at: 1_795_000_000,
        flags: EnvelopeFlags::default(),
        dsn: Default::default(),
    };
    let message = b"From: alice@example.org\r\nSubject: Quarterly\r\n\r\nbody\r\n";
    let failures = [
        RecipientFailure {
            recipient: "bob@example.com".into(),
            status: "5.1.1".into(),
            remote_mta: Some("mx.example.com".into()),
            diagnostic: "550 5.1.1 <bob@example.com>: no such user".into(),
            last_attempt: Some(1_795_000_050),
        },
        RecipientFailure {
            recipient: "carol@example.net".into(),
            status: "4.7.5".into(),
            remote_mta: None,
            diagnostic:
                "queue lifetime expired: TLS required but mx.example.net offered no STARTTLS".into(),
            last_attempt: None,
        },
    ];
    let failed = FailedMessage {
        envelope: &envelope,
        message,
        queue_id: "5F3A".into(),
    };
    let (_, report) = bounce("gw.example.org", &failed, &failures, 1_795_000_100).unwrap();

    let mut python = Command::new("python3")
        .args(["-c", READ_REPORT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is part of the test machine");
    python.stdin.take().unwrap().write_all(&report).unwrap();
    let out = python.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    // The header block plus one block per recipient.
    assert_eq!(
        lines,
        [
            "multipart/report delivery-status",
            "3 text/plain message/delivery-status text/rfc822-headers",
            "3",
            "None | None | None",
            "rfc822; bob@example.com | failed | 5.1.1",
            "rfc822; carol@example.net | failed | 4.7.5",
            "Subject: Quarterly",
        ],
        "{stdout}"
    );
}

const READ_FIELDS: &str = r#"
import email, sys
from email import policy
from email.utils import parsedate_to_datetime
msg = email.message_from_bytes(sys.stdin.buffer.read(), policy=policy.compat32)
print("message-id", msg["Message-ID"])
print("date", parsedate_to_datetime(msg["Date"]).isoformat())
parts = msg.get_payload()
print("notification", "attached below" in parts[0].get_payload(), "header section" in parts[0].get_payload())
status = parts[1].get_payload()
print("envid", status[0].get("Original-Envelope-Id"))
for block in status[1:]:
    print("rcpt", block.get("Original-Recipient"), "|", block.get("Final-Recipient"), "|", block.get("Status"), "|", block.get("Remote-MTA"))
"#;

/// Issue 10 item 8/9: the fields Python reads back — Message-ID, a Date it
/// can parse, `Remote-MTA: dns; <host>`, the sender's ENVID and ORCPT, and
/// a text that does not promise the whole message when only headers come.
#[test]
fn python_email_reads_message_id_date_remote_mta_and_dsn_fields() {
    use portcullis_mta::spool::DsnRequest;
    use portcullis_smtp_tls::{OriginalRecipient, RcptParams};
    let envelope = Envelope {
        sender: "alice@example.org".into(),
        recipients: vec!["bob@example.com".into()],
        received_at: 1_795_000_000,
        flags: EnvelopeFlags::default(),
        dsn: DsnRequest {
            ret: None,
            envid: Some("Q+2B42".into()),
            recipients: vec![RcptParams {
                notify: None,
                orcpt: Some(OriginalRecipient {
                    addr_type: "rfc822".into(),
                    xtext: "bob+40example.com".into(),
                }),
            }],
        },
    };
    let failures = [RecipientFailure {
        recipient: "bob@example.com".into(),
        status: "5.4.7".into(),
        remote_mta: Some("mx.example.com".into()),
        diagnostic: "message expired after 5 day(s) in the queue".into(),
        last_attempt: Some(1_795_000_050),
    }];
    let failed = FailedMessage {
        envelope: &envelope,
        message: b"From: alice@example.org\r\nSubject: Quarterly\r\n\r\nbody\r\n",
        queue_id: "5F3A".into(),
    };
    let (_, report) = bounce("gw.example.org", &failed, &failures, 1_795_000_100).unwrap();
    let mut python = Command::new("python3")
        .args(["-c", READ_FIELDS])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is part of the test machine");
    python.stdin.take().unwrap().write_all(&report).unwrap();
    let out = python.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "message-id <5F3A.1795000100.dsn@gw.example.org>",
            "date 2026-11-18T11:08:20+00:00",
            "notification False True",
            "envid Q+42",
            "rcpt rfc822; bob@example.com | rfc822; bob@example.com | 5.4.7 | dns; mx.example.com",
        ],
        "{stdout}"
    );
}
