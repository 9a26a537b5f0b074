//! Delivery status notifications (RFC 3464): the bounce a sender gets when a
//! message cannot be delivered.
//!
//! The report is a `multipart/report; report-type=delivery-status` with three
//! parts: a short explanation for the person who sent the message, the
//! machine-readable `message/delivery-status` fields, and the original
//! message's header section (`text/rfc822-headers`), so the sender can tell
//! which message it was without the gateway mailing the whole body back.
//! Messages sent with SMTPUTF8 get the RFC 6533 types
//! (`message/global-delivery-status`, `message/global-headers`), since their
//! addresses may not be ASCII.
//!
//! A message from the null sender is never bounced (RFC 5321 §6.1): that is
//! how bounce loops are prevented.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;

use crate::spool::{Envelope, EnvelopeFlags};

/// Why one recipient failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientFailure {
    pub recipient: String,
    /// Enhanced status code (RFC 3463), e.g. `5.7.10`.
    pub status: String,
    /// The host that gave the final answer, if one did.
    pub remote_mta: Option<String>,
    /// The remote SMTP reply, or Portcullis's own reason (e.g. which TLS
    /// check failed).
    pub diagnostic: String,
    /// When delivery was last tried, in seconds since the Unix epoch.
    pub last_attempt: Option<u64>,
}

/// What the gateway knows about the failed message.
#[derive(Debug, Clone)]
pub struct FailedMessage<'a> {
    pub envelope: &'a Envelope,
    /// The original message as received (only its header section is used).
    pub message: &'a [u8],
    pub queue_id: String,
}

/// Builds the bounce for `failed`, or `None` when the sender is the null
/// sender. `reporting_mta` is the gateway's host name; `now` is seconds since
/// the Unix epoch. The returned envelope is from the null sender to the
/// original sender.
pub fn bounce(
    reporting_mta: &str,
    failed: &FailedMessage<'_>,
    failures: &[RecipientFailure],
    now: u64,
) -> Option<(Envelope, Vec<u8>)> {
    let sender = &failed.envelope.sender;
    if sender.is_empty() || failures.is_empty() {
        return None;
    }
    let global = failed.envelope.flags.smtputf8;
    let boundary = format!("{}/{}", failed.queue_id, reporting_mta);
    let mut out = String::new();

    let headers = [
        (
            "From",
            format!("Mail Delivery System <MAILER-DAEMON@{reporting_mta}>"),
        ),
        ("To", format!("<{sender}>")),
        ("Subject", "Undelivered Mail Returned to Sender".to_string()),
        ("Date", rfc5322_date(now)),
        ("Auto-Submitted", "auto-replied".to_string()),
        ("MIME-Version", "1.0".to_string()),
        (
            "Content-Type",
            format!("multipart/report; report-type=delivery-status;\r\n\tboundary=\"{boundary}\""),
        ),
    ];
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\nThis is a MIME-encapsulated delivery status notification.\r\n");

    // Part 1: for the person.
    out.push_str(&format!(
        "\r\n--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Description: Notification\r\n\r\n"
    ));
    out.push_str(&format!(
        "This is the mail system at host {reporting_mta}.\r\n\r\n\
         Your message could not be delivered to one or more recipients.\r\n\
         It is attached below.\r\n\r\n"
    ));
    for failure in failures {
        let via = failure
            .remote_mta
            .as_deref()
            .map(|host| format!(" (host {host})"))
            .unwrap_or_default();
        out.push_str(&format!(
            "<{}>{via}: {}\r\n",
            failure.recipient,
            one_line(&failure.diagnostic)
        ));
    }

    // Part 2: for the machine.
    let status_type = if global {
        "message/global-delivery-status"
    } else {
        "message/delivery-status"
    };
    out.push_str(&format!(
        "\r\n--{boundary}\r\nContent-Type: {status_type}\r\n\
         Content-Description: Delivery report\r\n\r\n"
    ));
    out.push_str(&format!("Reporting-MTA: dns; {reporting_mta}\r\n"));
    out.push_str(&format!("X-Portcullis-Queue-ID: {}\r\n", failed.queue_id));
    out.push_str(&format!(
        "Arrival-Date: {}\r\n",
        rfc5322_date(failed.envelope.received_at)
    ));
    for failure in failures {
        let address_type = if failure.recipient.is_ascii() {
            "rfc822"
        } else {
            "utf-8"
        };
        out.push_str(&format!(
            "\r\nFinal-Recipient: {address_type}; {}\r\nAction: failed\r\nStatus: {}\r\n",
            failure.recipient, failure.status
        ));
        if let Some(host) = &failure.remote_mta {
            out.push_str(&format!("Remote-MTA: dns; {host}\r\n"));
        }
        let diagnostic_type = if failure.diagnostic.starts_with(|c: char| c.is_ascii_digit()) {
            "smtp"
        } else {
            "x-portcullis"
        };
        out.push_str(&format!(
            "Diagnostic-Code: {diagnostic_type}; {}\r\n",
            one_line(&failure.diagnostic)
        ));
        if let Some(at) = failure.last_attempt {
            out.push_str(&format!("Last-Attempt-Date: {}\r\n", rfc5322_date(at)));
        }
    }

    // Part 3: which message it was.
    let headers_type = if global {
        "message/global-headers"
    } else {
        "text/rfc822-headers"
    };
    out.push_str(&format!(
        "\r\n--{boundary}\r\nContent-Type: {headers_type}\r\n\
         Content-Description: Undelivered message headers\r\n\r\n"
    ));
    let mut body = out.into_bytes();
    body.extend_from_slice(header_section(failed.message));
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());

    let envelope = Envelope {
        sender: String::new(),
        recipients: vec![sender.clone()],
        received_at: now,
        flags: EnvelopeFlags {
            requiretls: false,
            smtputf8: global,
            eight_bit: global || !failed.message.is_ascii(),
        },
    };
    Some((envelope, body))
}

/// The header section of a message, up to and including the line break that
/// ends it; the whole message when it has no body.
fn header_section(message: &[u8]) -> &[u8] {
    let end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| at + 2)
        .unwrap_or(message.len());
    &message[..end]
}

/// Reply text may span lines; a DSN field may not.
fn one_line(text: &str) -> String {
    text.split(['\r', '\n'])
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn rfc5322_date(unix_seconds: u64) -> String {
    i64::try_from(unix_seconds)
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| t.format(&Rfc2822).ok())
        .unwrap_or_else(|| "Thu, 01 Jan 1970 00:00:00 +0000".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(sender: &str, smtputf8: bool) -> Envelope {
        Envelope {
            sender: sender.into(),
            recipients: vec!["bob@example.com".into(), "carol@example.net".into()],
            received_at: 1_795_000_000,
            flags: EnvelopeFlags {
                smtputf8,
                ..EnvelopeFlags::default()
            },
        }
    }

    const MESSAGE: &[u8] = b"From: alice@example.org\r\nSubject: Quarterly\r\nMessage-ID: <q1@example.org>\r\n\r\nsecret body\r\n";

    fn failure() -> RecipientFailure {
        RecipientFailure {
            recipient: "bob@example.com".into(),
            status: "5.7.10".into(),
            remote_mta: Some("mx1.example.com".into()),
            diagnostic: "TLS failed: STARTTLS not advertised\r\nby the peer".into(),
            last_attempt: Some(1_795_000_100),
        }
    }

    #[test]
    fn null_sender_is_never_bounced() {
        let env = envelope("", false);
        let failed = FailedMessage {
            envelope: &env,
            message: MESSAGE,
            queue_id: "A1".into(),
        };
        assert!(bounce("gw.example.org", &failed, &[failure()], 1_795_000_200).is_none());
    }

    #[test]
    fn report_goes_to_the_sender_from_the_null_sender_without_the_body() {
        let env = envelope("alice@example.org", false);
        let failed = FailedMessage {
            envelope: &env,
            message: MESSAGE,
            queue_id: "A1".into(),
        };
        let (bounce_env, body) =
            bounce("gw.example.org", &failed, &[failure()], 1_795_000_200).unwrap();
        assert_eq!(bounce_env.sender, "");
        assert_eq!(bounce_env.recipients, vec!["alice@example.org".to_string()]);
        let text = String::from_utf8(body).unwrap();
        assert!(text.contains("report-type=delivery-status"));
        assert!(text.contains("Status: 5.7.10\r\n"));
        assert!(text.contains(
            "Diagnostic-Code: x-portcullis; TLS failed: STARTTLS not advertised by the peer\r\n"
        ));
        assert!(text.contains("Subject: Quarterly\r\n"));
        assert!(!text.contains("secret body"), "only headers are returned");
        let bytes = text.as_bytes();
        for (i, b) in bytes.iter().enumerate() {
            match b {
                b'\r' => assert_eq!(bytes.get(i + 1), Some(&b'\n'), "bare CR at {i}"),
                b'\n' => assert_eq!(bytes[i - 1], b'\r', "bare LF at {i}"),
                _ => {}
            }
        }
    }

    #[test]
    fn smtputf8_messages_get_global_types() {
        let env = envelope("dörte@bücher.example", true);
        let failed = FailedMessage {
            envelope: &env,
            message: MESSAGE,
            queue_id: "A1".into(),
        };
        let mut f = failure();
        f.recipient = "jörg@example.com".into();
        let (bounce_env, body) = bounce("gw.example.org", &failed, &[f], 1_795_000_200).unwrap();
        assert!(bounce_env.flags.smtputf8);
        let text = String::from_utf8(body).unwrap();
        assert!(text.contains("message/global-delivery-status"));
        assert!(text.contains("Final-Recipient: utf-8; jörg@example.com"));
    }

    #[test]
    fn header_section_stops_at_the_blank_line() {
        assert_eq!(header_section(b"A: 1\r\n\r\nbody"), b"A: 1\r\n");
        assert_eq!(header_section(b"A: 1\r\n"), b"A: 1\r\n");
    }
}
