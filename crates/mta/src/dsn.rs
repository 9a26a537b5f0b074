//! Delivery status notifications (RFC 3464): the bounce a sender gets when a
//! message cannot be delivered.
//!
//! The report is a `multipart/report; report-type=delivery-status` with three
//! parts: a short explanation for the person who sent the message, the
//! machine-readable `message/delivery-status` fields, and the original
//! message's header section (`text/rfc822-headers`), so the sender can tell
//! which message it was without the gateway mailing the whole body back —
//! unless the sender asked for it with `RET=FULL` (RFC 3461).
//!
//! The sender's DSN requests are honoured: no report for a recipient whose
//! `NOTIFY` leaves it out (`NEVER`), a "relayed" notice for `NOTIFY=SUCCESS`
//! when the next hop does not take DSN, and `ENVID`/`ORCPT` reported back as
//! `Original-Envelope-Id`/`Original-Recipient`.
//! Messages sent with SMTPUTF8 get the RFC 6533 types
//! (`message/global-delivery-status`, `message/global-headers`), since their
//! addresses may not be ASCII.
//!
//! A message from the null sender is never bounced (RFC 5321 §6.1): that is
//! how bounce loops are prevented.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;

use portcullis_smtp_tls::{Notify, xtext_decode};

use crate::spool::{DsnRequest, Envelope, EnvelopeFlags};

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

/// A recipient the message was relayed to a next hop that does not
/// advertise DSN, though the sender asked `NOTIFY=SUCCESS`: RFC 3461 §5.2.3
/// makes the relaying MTA send a "relayed" notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayedRecipient {
    pub recipient: String,
    /// The next hop's host name.
    pub remote_mta: String,
    /// Its reply to the final dot.
    pub diagnostic: String,
}

/// One per-recipient block of a report.
struct Entry<'a> {
    recipient: &'a str,
    action: &'static str,
    status: &'a str,
    remote_mta: Option<&'a str>,
    diagnostic: &'a str,
    last_attempt: Option<u64>,
}

/// Builds the bounce for `failed`, or `None` when none is due: the sender
/// is the null sender, or every failed recipient asked for no failure
/// report (`NOTIFY=NEVER`, or a NOTIFY without FAILURE). `reporting_mta`
/// is the gateway's host name; `now` is seconds since the Unix epoch. The
/// returned envelope is from the null sender to the original sender.
pub fn bounce(
    reporting_mta: &str,
    failed: &FailedMessage<'_>,
    failures: &[RecipientFailure],
    now: u64,
) -> Option<(Envelope, Vec<u8>)> {
    let entries: Vec<Entry<'_>> = failures
        .iter()
        .filter(|f| wants(failed.envelope, &f.recipient, |n| n.failure))
        .map(|f| Entry {
            recipient: &f.recipient,
            action: "failed",
            status: &f.status,
            remote_mta: f.remote_mta.as_deref(),
            diagnostic: &f.diagnostic,
            last_attempt: f.last_attempt,
        })
        .collect();
    let full = failed.envelope.dsn.ret == Some(portcullis_smtp_tls::Ret::Full);
    let intro = if full {
        "Your message could not be delivered to one or more recipients.\r\n\
         It is attached below."
    } else {
        "Your message could not be delivered to one or more recipients.\r\n\
         Only its header section is included below, so you can tell which message it was."
    };
    report(
        reporting_mta,
        failed,
        &entries,
        now,
        ("Undelivered Mail Returned to Sender", intro),
        full,
    )
}

/// Builds the "relayed" notice (RFC 3461 §5.2.3) for recipients that asked
/// `NOTIFY=SUCCESS` and went to a next hop without DSN, or `None` when none
/// is due (null sender, nobody asked).
pub fn relayed(
    reporting_mta: &str,
    message: &FailedMessage<'_>,
    relayed: &[RelayedRecipient],
    now: u64,
) -> Option<(Envelope, Vec<u8>)> {
    let entries: Vec<Entry<'_>> = relayed
        .iter()
        .filter(|r| wants(message.envelope, &r.recipient, |n| n.success))
        .map(|r| Entry {
            recipient: &r.recipient,
            action: "relayed",
            status: "2.0.0",
            remote_mta: Some(&r.remote_mta),
            diagnostic: &r.diagnostic,
            last_attempt: None,
        })
        .collect();
    report(
        reporting_mta,
        message,
        &entries,
        now,
        (
            "Successful Mail Relay Report",
            "Your message was passed on to the recipients' next mail server.\r\n\
             That server does not take delivery notification requests, so this\r\n\
             is the last notice you will get about it. Only its header section\r\n\
             is included below.",
        ),
        false,
    )
}

/// Whether the sender of `envelope` asked for this kind of report about
/// `recipient`: with no NOTIFY, failure reports only (RFC 3461 §4.1).
fn wants(envelope: &Envelope, recipient: &str, kind: impl Fn(Notify) -> bool) -> bool {
    let notify = envelope
        .recipients
        .iter()
        .position(|r| r == recipient)
        .and_then(|i| envelope.dsn.recipient(i).notify);
    match notify {
        Some(n) => kind(n),
        None => kind(Notify {
            success: false,
            failure: true,
            delay: false,
        }),
    }
}

fn report(
    reporting_mta: &str,
    failed: &FailedMessage<'_>,
    entries: &[Entry<'_>],
    now: u64,
    (subject, intro): (&str, &str),
    full: bool,
) -> Option<(Envelope, Vec<u8>)> {
    let sender = &failed.envelope.sender;
    if sender.is_empty() || entries.is_empty() {
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
        ("Subject", subject.to_string()),
        (
            "Message-ID",
            format!("<{}.{now}.dsn@{reporting_mta}>", failed.queue_id),
        ),
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
        "This is the mail system at host {reporting_mta}.\r\n\r\n{intro}\r\n\r\n"
    ));
    for e in entries {
        let via = e
            .remote_mta
            .map(|host| format!(" (host {host})"))
            .unwrap_or_default();
        out.push_str(&format!(
            "<{}>{via}: {}\r\n",
            e.recipient,
            one_line(e.diagnostic)
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
    if let Some(envid) = &failed.envelope.dsn.envid {
        out.push_str(&format!(
            "Original-Envelope-Id: {}\r\n",
            one_line(&xtext_decode(envid))
        ));
    }
    out.push_str(&format!("Reporting-MTA: dns; {reporting_mta}\r\n"));
    out.push_str(&format!("X-Portcullis-Queue-ID: {}\r\n", failed.queue_id));
    out.push_str(&format!(
        "Arrival-Date: {}\r\n",
        rfc5322_date(failed.envelope.received_at)
    ));
    for e in entries {
        let address_type = if e.recipient.is_ascii() {
            "rfc822"
        } else {
            "utf-8"
        };
        out.push_str("\r\n");
        let orcpt = failed
            .envelope
            .recipients
            .iter()
            .position(|r| r == e.recipient)
            .and_then(|i| failed.envelope.dsn.recipient(i).orcpt);
        if let Some(o) = orcpt {
            out.push_str(&format!(
                "Original-Recipient: {}; {}\r\n",
                o.addr_type,
                one_line(&o.address())
            ));
        }
        out.push_str(&format!(
            "Final-Recipient: {address_type}; {}\r\nAction: {}\r\nStatus: {}\r\n",
            e.recipient, e.action, e.status
        ));
        if let Some(host) = e.remote_mta {
            out.push_str(&format!("Remote-MTA: dns; {host}\r\n"));
        }
        let diagnostic_type = if e.diagnostic.starts_with(|c: char| c.is_ascii_digit()) {
            "smtp"
        } else {
            "x-portcullis"
        };
        out.push_str(&format!(
            "Diagnostic-Code: {diagnostic_type}; {}\r\n",
            one_line(e.diagnostic)
        ));
        if let Some(at) = e.last_attempt {
            out.push_str(&format!("Last-Attempt-Date: {}\r\n", rfc5322_date(at)));
        }
    }

    // Part 3: which message it was (the whole of it with RET=FULL).
    let (part_type, description, returned) = match (full, global) {
        (true, true) => ("message/global", "Undelivered message", failed.message),
        (true, false) => ("message/rfc822", "Undelivered message", failed.message),
        (false, true) => (
            "message/global-headers",
            "Message headers",
            header_section(failed.message),
        ),
        (false, false) => (
            "text/rfc822-headers",
            "Message headers",
            header_section(failed.message),
        ),
    };
    out.push_str(&format!(
        "\r\n--{boundary}\r\nContent-Type: {part_type}\r\n\
         Content-Description: {description}\r\n\r\n"
    ));
    let mut body = out.into_bytes();
    body.extend_from_slice(returned);
    if !returned.ends_with(b"\r\n") {
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());

    let envelope = Envelope {
        sender: String::new(),
        recipients: vec![sender.clone()],
        received_at: now,
        flags: EnvelopeFlags {
            requiretls: false,
            smtputf8: global,
            eight_bit: global || !returned.is_ascii(),
        },
        dsn: DsnRequest::default(),
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
            dsn: DsnRequest::default(),
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

    fn with_dsn(mut env: Envelope, dsn: DsnRequest) -> Envelope {
        env.dsn = dsn;
        env
    }

    fn notify(success: bool, failure: bool) -> portcullis_smtp_tls::RcptParams {
        portcullis_smtp_tls::RcptParams {
            notify: Some(Notify {
                success,
                failure,
                delay: false,
            }),
            orcpt: None,
        }
    }

    #[test]
    fn notify_never_or_without_failure_means_no_bounce() {
        for params in [notify(false, false), notify(true, false)] {
            let env = with_dsn(
                envelope("alice@example.org", false),
                DsnRequest {
                    recipients: vec![params.clone()],
                    ..DsnRequest::default()
                },
            );
            let failed = FailedMessage {
                envelope: &env,
                message: MESSAGE,
                queue_id: "A1".into(),
            };
            assert!(
                bounce("gw.example.org", &failed, &[failure()], 1_795_000_200).is_none(),
                "{params}"
            );
        }
        // The other recipient did not say: it gets its failure report.
        let env = with_dsn(
            envelope("alice@example.org", false),
            DsnRequest {
                recipients: vec![notify(false, false)],
                ..DsnRequest::default()
            },
        );
        let failed = FailedMessage {
            envelope: &env,
            message: MESSAGE,
            queue_id: "A1".into(),
        };
        let mut carol = failure();
        carol.recipient = "carol@example.net".into();
        let (_, body) = bounce(
            "gw.example.org",
            &failed,
            &[failure(), carol],
            1_795_000_200,
        )
        .unwrap();
        let text = String::from_utf8(body).unwrap();
        assert!(text.contains("Final-Recipient: rfc822; carol@example.net"));
        assert!(!text.contains("Final-Recipient: rfc822; bob@example.com"));
    }

    #[test]
    fn ret_full_envid_and_orcpt_are_honoured() {
        let env = with_dsn(
            envelope("alice@example.org", false),
            DsnRequest {
                ret: Some(portcullis_smtp_tls::Ret::Full),
                envid: Some("QQ314159+2Bx".into()),
                recipients: vec![portcullis_smtp_tls::RcptParams {
                    notify: None,
                    orcpt: Some(portcullis_smtp_tls::OriginalRecipient {
                        addr_type: "rfc822".into(),
                        xtext: "Bob+2BSales@example.com".into(),
                    }),
                }],
            },
        );
        let failed = FailedMessage {
            envelope: &env,
            message: MESSAGE,
            queue_id: "A1".into(),
        };
        let (_, body) = bounce("gw.example.org", &failed, &[failure()], 1_795_000_200).unwrap();
        let text = String::from_utf8(body).unwrap();
        assert!(
            text.contains("Original-Envelope-Id: QQ314159+x\r\n"),
            "{text}"
        );
        assert!(text.contains("Original-Recipient: rfc822; Bob+Sales@example.com\r\n"));
        assert!(text.contains("Content-Type: message/rfc822\r\n"));
        assert!(
            text.contains("secret body"),
            "RET=FULL returns the whole message"
        );
        assert!(text.contains("It is attached below."));
    }

    #[test]
    fn headers_only_reports_say_so_and_carry_message_id_and_date() {
        let env = envelope("alice@example.org", false);
        let failed = FailedMessage {
            envelope: &env,
            message: MESSAGE,
            queue_id: "A1".into(),
        };
        let (_, body) = bounce("gw.example.org", &failed, &[failure()], 1_795_000_200).unwrap();
        let text = String::from_utf8(body).unwrap();
        assert!(text.contains("Message-ID: <A1.1795000200.dsn@gw.example.org>\r\n"));
        assert!(text.contains("Date: "));
        assert!(
            !text.contains("It is attached below."),
            "only headers are attached"
        );
        assert!(text.contains("Only its header section is included below"));
        assert!(text.contains("Remote-MTA: dns; mx1.example.com\r\n"));
    }

    #[test]
    fn relayed_notice_only_for_notify_success() {
        let relay = RelayedRecipient {
            recipient: "bob@example.com".into(),
            remote_mta: "mx.example.com".into(),
            diagnostic: "250 2.0.0 Ok: queued".into(),
        };
        let plain = envelope("alice@example.org", false);
        let failed = FailedMessage {
            envelope: &plain,
            message: MESSAGE,
            queue_id: "A1".into(),
        };
        assert!(relayed("gw.example.org", &failed, std::slice::from_ref(&relay), 1).is_none());
        let asked = with_dsn(
            envelope("alice@example.org", false),
            DsnRequest {
                recipients: vec![notify(true, true)],
                ..DsnRequest::default()
            },
        );
        let failed = FailedMessage {
            envelope: &asked,
            message: MESSAGE,
            queue_id: "A1".into(),
        };
        let (env, body) = relayed("gw.example.org", &failed, &[relay], 1).unwrap();
        assert_eq!(env.sender, "");
        let text = String::from_utf8(body).unwrap();
        assert!(
            text.contains(
                "Action: relayed\r\nStatus: 2.0.0\r\nRemote-MTA: dns; mx.example.com\r\n"
            ),
            "{text}"
        );
        assert!(!text.contains("secret body"));
    }

    #[test]
    fn header_section_stops_at_the_blank_line() {
        assert_eq!(header_section(b"A: 1\r\n\r\nbody"), b"A: 1\r\n");
        assert_eq!(header_section(b"A: 1\r\n"), b"A: 1\r\n");
    }
}
