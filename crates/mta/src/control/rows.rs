//! Turning spool entries into the rows and details operators see, the same
//! for the online and the offline path.

use super::{MessageDetail, QueueRow, RecipientStatus};
use crate::outbound::unix_now;
use crate::spool::QueuedMessage;

/// The largest header section `queue show` prints.
const MAX_HEADERS: usize = 64 << 10;

pub(super) fn row(m: &QueuedMessage, delivering: bool) -> QueueRow {
    let now = unix_now();
    let s = &m.schedule;
    let next = if delivering {
        "delivering now".to_owned()
    } else if m.held {
        "held".to_owned()
    } else if s.next_attempt <= now {
        "now".to_owned()
    } else {
        format!("in {}", span(s.next_attempt - now))
    };
    QueueRow {
        id: m.id.to_string(),
        received_at: m.envelope.received_at,
        received: utc(m.envelope.received_at),
        age_seconds: now.saturating_sub(m.envelope.received_at),
        size: m.size,
        sender: m.envelope.sender.clone(),
        recipients: m
            .pending
            .iter()
            .filter_map(|&i| m.envelope.recipients.get(i as usize).cloned())
            .collect(),
        attempts: s.attempts,
        next_attempt: s.next_attempt,
        next,
        last_error: s.last_error.clone(),
        held: m.held,
        delivering,
        requiretls: m.envelope.flags.requiretls,
        smtputf8: m.envelope.flags.smtputf8,
    }
}

pub(super) fn detail(m: &QueuedMessage, delivering: bool, body: &[u8]) -> MessageDetail {
    let end = body
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(body.len(), |p| p + 2)
        .min(MAX_HEADERS);
    MessageDetail {
        row: row(m, delivering),
        recipient_status: (0u32..)
            .zip(&m.envelope.recipients)
            .map(|(i, r)| RecipientStatus {
                address: r.clone(),
                status: if m.pending.contains(&i) {
                    "pending"
                } else {
                    "done"
                }
                .to_owned(),
            })
            .collect(),
        eight_bit: m.envelope.flags.eight_bit,
        headers: String::from_utf8_lossy(body.get(..end).unwrap_or_default()).into_owned(),
    }
}

/// `4m 10s`, `2h 5m`, `3d 1h`.
pub fn span(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// `2026-11-23 19:05:00` (UTC) from Unix seconds.
pub fn utc(secs: u64) -> String {
    match i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
    {
        Some(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        None => secs.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_like_a_person_wrote_them() {
        assert_eq!(span(250), "4m 10s");
        assert_eq!(span(7500), "2h 5m");
        assert_eq!(span(3 * 86400 + 3700), "3d 1h");
        assert_eq!(utc(1_795_460_700), "2026-11-23 19:05:00");
    }
}
