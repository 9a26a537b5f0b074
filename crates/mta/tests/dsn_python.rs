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
