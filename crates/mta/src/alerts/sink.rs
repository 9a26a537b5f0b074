//! The handle every part of the engine holds to raise alerts. Raising never
//! blocks and does no I/O: the alert passes de-duplication under a short
//! lock and, if it goes out, is queued (unbounded, but only one entry per
//! key per wait can pass) for the alert service. A sink that is off (no
//! `[alerts]` section, tests) drops everything.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

use super::dedup::{Dedup, DedupPolicy};
use super::{Alert, Notice};
use crate::clock::SharedClock;

/// Raises alerts. Cheap to clone; `Default` is a sink that is off.
#[derive(Clone, Default)]
pub struct AlertSink {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    clock: SharedClock,
    dedup: Mutex<Dedup>,
    out: mpsc::UnboundedSender<Notice>,
    next: AtomicU64,
}

impl std::fmt::Debug for AlertSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertSink")
            .field("on", &self.inner.is_some())
            .finish()
    }
}

impl AlertSink {
    /// A sink that drops every alert.
    pub fn off() -> Self {
        AlertSink::default()
    }

    /// A sink and the receiving end of the notices that pass
    /// de-duplication (the alert service holds it; tests read it).
    pub fn channel(
        clock: SharedClock,
        policy: DedupPolicy,
    ) -> (AlertSink, mpsc::UnboundedReceiver<Notice>) {
        let (out, rx) = mpsc::unbounded_channel();
        let start = clock
            .now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        let sink = AlertSink {
            inner: Some(Arc::new(Inner {
                clock,
                dedup: Mutex::new(Dedup::new(policy)),
                out,
                next: AtomicU64::new(start),
            })),
        };
        (sink, rx)
    }

    /// Whether alerts go anywhere.
    pub fn is_on(&self) -> bool {
        self.inner.is_some()
    }

    /// Raises one alert. Never blocks.
    pub fn raise(&self, alert: Alert) {
        let Some(inner) = &self.inner else { return };
        let now = inner.clock.now();
        let passed = inner
            .dedup
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .offer(&alert, now);
        if let Some(repeats) = passed {
            inner.send(alert, repeats, now);
        }
    }

    /// Sends the held-back repeats whose wait has run out (the alert
    /// service calls this every few seconds; tests after moving the clock).
    pub fn send_due(&self) {
        let Some(inner) = &self.inner else { return };
        let now = inner.clock.now();
        let due = inner
            .dedup
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .due(now);
        for (alert, repeats) in due {
            inner.send(alert, repeats, now);
        }
    }

    /// The alert clock (sources decide by it).
    pub fn clock(&self) -> Option<SharedClock> {
        self.inner.as_ref().map(|i| i.clock.clone())
    }
}

impl Inner {
    fn send(&self, alert: Alert, repeats: u32, now: SystemTime) {
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        let at = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        // The receiver is gone only when the service stopped: nothing to do.
        let _ = self.out.send(Notice {
            id: format!("{seq:016x}"),
            at,
            alert,
            repeats,
        });
    }
}
