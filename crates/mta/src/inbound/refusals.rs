//! The mail-log lines of the replies the SMTP session gives by itself
//! (syntax errors, out-of-sequence commands, `530` before STARTTLS, `552`
//! over the size limit, …): one line each with the connection id, the
//! command, the code and the reason, up to a limit per session, so a client
//! that sends nothing but garbage cannot flood the log; past the limit one
//! line says so, and the close line counts what was not logged.

use portcullis_smtp_tls::Reply;

use crate::maillog::{Icid, MailLog, reply_text};

/// Refusals logged one by one per session; the rest are counted.
pub(crate) const LOGGED_PER_SESSION: u32 = 20;

/// Counts one session's refusals.
#[derive(Debug, Default)]
pub(crate) struct RefusalLog {
    seen: u32,
}

impl RefusalLog {
    /// Logs one refusal, or counts it once the session's limit is reached.
    pub(crate) fn refused(&mut self, log: &MailLog, icid: Icid, command: &str, reply: &Reply) {
        self.seen = self.seen.saturating_add(1);
        if self.seen <= LOGGED_PER_SESSION {
            log.line(format_args!(
                "{icid} refused {command:?}: {}",
                reply_text(reply)
            ));
        } else if self.seen == LOGGED_PER_SESSION + 1 {
            log.line(format_args!(
                "{icid} more than {LOGGED_PER_SESSION} commands refused; the rest of this session's refusals are counted, not logged"
            ));
        }
    }

    /// How many refusals were not logged one by one.
    pub(crate) fn unlogged(&self) -> u32 {
        self.seen.saturating_sub(LOGGED_PER_SESSION)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn logs_up_to_the_limit_then_counts() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l = lines.clone();
        let log = MailLog::with_observer(Some(Arc::new(move |s: &str| {
            l.lock().unwrap().push(s.to_owned())
        })));
        let icid = Icid::next();
        let reply = Reply::new(500, "5.5.2", "Command \"X\" not recognized").unwrap();
        let mut r = RefusalLog::default();
        for _ in 0..LOGGED_PER_SESSION + 5 {
            r.refused(&log, icid, "X\u{1}Y", &reply);
        }
        let lines = lines.lock().unwrap();
        assert_eq!(lines.len() as u32, LOGGED_PER_SESSION + 1);
        assert_eq!(
            lines[0],
            format!("{icid} refused \"X\\u{{1}}Y\": 500 5.5.2 Command 'X' not recognized")
        );
        assert!(lines.last().unwrap().contains("counted, not logged"));
        assert_eq!(r.unlogged(), 5);
    }
}
