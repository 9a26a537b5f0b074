//! The server session's deadlines: the TLS handshake after STARTTLS, the
//! next input (idle), a whole DATA or BDAT transfer, and the whole session;
//! which one is nearest, and what happens when it passes.

use std::time::Instant;

use super::{CloseReason, ServerSession, reply};

/// Which deadline is nearest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Deadline {
    Handshake,
    Idle,
    Data,
    Session,
}

impl ServerSession {
    /// Call when `poll_timeout`'s instant has passed. Past the TLS
    /// handshake deadline the session closes without a reply (the client
    /// expects TLS, not plaintext); past any other it answers `421 4.4.2`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some((at, which)) = self.deadline() else {
            return;
        };
        if now < at {
            return;
        }
        let host = self.config.hostname.clone();
        let (reason, text) = match which {
            Deadline::Handshake => (CloseReason::TlsHandshakeTimeout, None),
            Deadline::Idle => (
                CloseReason::Timeout,
                Some(format!("{host} Timeout, closing connection")),
            ),
            Deadline::Data => (
                CloseReason::DataTimeout,
                Some(format!(
                    "{host} Message transfer took too long, closing connection"
                )),
            ),
            Deadline::Session => (
                CloseReason::SessionTimeout,
                Some(format!(
                    "{host} Session time limit reached, closing connection"
                )),
            ),
        };
        if let Some(text) = text
            && !self.is_awaiting_tls()
        {
            self.send(&reply(421, (4, 4, 2), &text));
        }
        self.close(reason);
    }

    pub(super) fn deadline(&self) -> Option<(Instant, Deadline)> {
        if self.is_closed() {
            return None;
        }
        let c = &self.config;
        let step = if self.is_awaiting_tls() {
            (
                self.last_activity.checked_add(c.tls_handshake_timeout),
                Deadline::Handshake,
            )
        } else {
            (
                self.last_activity.checked_add(c.idle_timeout),
                Deadline::Idle,
            )
        };
        let data = (
            self.data_started
                .and_then(|t| t.checked_add(c.data_timeout)),
            Deadline::Data,
        );
        let session = (
            self.started.checked_add(c.session_timeout),
            Deadline::Session,
        );
        [step, data, session]
            .into_iter()
            .filter_map(|(at, which)| at.map(|at| (at, which)))
            .min_by_key(|(at, _)| *at)
    }
}
