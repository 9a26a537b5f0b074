//! The mail log: one line per event (connection opened or closed, TLS
//! success or failure with its reason, message queued, delivered, deferred,
//! bounced), each carrying the connection id (`ICID` inbound, `DCID`
//! outbound) and the message id (`MID`). Lines go to `tracing` with target
//! `maillog`, so the subscriber the CLI sets up routes them to stderr or a
//! file, and optionally to an observer (tests, the admin interface) that
//! gets the same text.
//!
//! Connection ids are process-wide counters: they only need to tie the
//! lines of one conversation together, not survive a restart (message ids,
//! which do, come from the spool).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Receives every mail-log line, already formatted.
pub type LogObserver = Arc<dyn Fn(&str) + Send + Sync>;

/// Where mail-log lines go: always `tracing` (target `maillog`), and an
/// optional observer. Cheap to clone.
#[derive(Clone, Default)]
pub struct MailLog {
    observer: Option<LogObserver>,
}

impl fmt::Debug for MailLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailLog")
            .field("observer", &self.observer.is_some())
            .finish()
    }
}

impl MailLog {
    /// A mail log that also hands each line to `observer`.
    pub fn with_observer(observer: Option<LogObserver>) -> Self {
        MailLog { observer }
    }

    /// Writes one line.
    pub fn line(&self, args: fmt::Arguments<'_>) {
        let text = args.to_string();
        tracing::info!(target: "maillog", "{text}");
        if let Some(o) = &self.observer {
            o(&text);
        }
    }

    /// Writes one warning line (a security-relevant failure); same text
    /// format, `warn` level.
    pub fn warn(&self, args: fmt::Arguments<'_>) {
        let text = args.to_string();
        tracing::warn!(target: "maillog", "{text}");
        if let Some(o) = &self.observer {
            o(&text);
        }
    }
}

static NEXT_ICID: AtomicU64 = AtomicU64::new(1);
static NEXT_DCID: AtomicU64 = AtomicU64::new(1);

/// An inbound connection id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Icid(u64);

impl Icid {
    /// The next id.
    pub fn next() -> Self {
        Icid(NEXT_ICID.fetch_add(1, Ordering::Relaxed))
    }

    /// The number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Icid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ICID {}", self.0)
    }
}

/// An outbound (delivery) connection id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dcid(u64);

impl Dcid {
    /// The next id.
    pub fn next() -> Self {
        Dcid(NEXT_DCID.fetch_add(1, Ordering::Relaxed))
    }

    /// The number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Dcid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DCID {}", self.0)
    }
}

/// Reply text for a log line: one line, CRLFs folded, quotes kept apart.
pub fn reply_text(reply: &portcullis_smtp_tls::Reply) -> String {
    reply
        .to_string()
        .trim_end()
        .replace("\r\n", " / ")
        .replace('"', "'")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn observer_gets_the_line_and_ids_increase() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let log = MailLog::with_observer(Some(Arc::new(move |l: &str| {
            s.lock().unwrap().push(l.to_string())
        })));
        let a = Icid::next();
        let b = Icid::next();
        assert_ne!(a, b);
        log.line(format_args!("{a} new"));
        assert_eq!(seen.lock().unwrap().as_slice(), [format!("{a} new")]);
        let r = portcullis_smtp_tls::Reply::new(250, "2.0.0", "ok \"x\"").unwrap();
        assert_eq!(reply_text(&r), "250 2.0.0 ok 'x'");
    }
}
