//! Health: gauges of the running gateway against the operator's thresholds,
//! and resource conservation (SPEC §6 "Health").
//!
//! A sampler task (`sampler`) reads every gauge ([`gauges`]: resident
//! memory, queue messages, oldest queued message's age, spool free space in
//! MiB and percent, open inbound sessions) each `sample-period-seconds`,
//! and feeds the reading to the hysteresis state machine ([`hysteresis`]).
//! Above any high mark (below the low mark, for free space) the gateway
//! enters resource conservation; once every gauge is back past its other
//! mark it leaves. Entering and leaving are one mail-log line each, naming
//! the gauge, its value and the mark.
//!
//! In conservation, public listeners answer new connections `421 4.3.2` and
//! `MAIL FROM` in sessions already open `452 4.3.1`; private listeners keep
//! accepting, up to `private-session-limit` sessions each. The inbound path
//! learns the state from [`Health::conserving`], one atomic load: no lock
//! is taken per connection or per transaction.
//!
//! ## Events for alerts
//!
//! Every transition is also published on a broadcast channel:
//! [`Health::subscribe`] returns a `tokio::sync::broadcast::Receiver` of
//! [`HealthEvent`] — a gauge crossed its pressure mark or came back past its
//! relief mark, conservation entered or left — each with the gauge, its
//! value, the mark and the time (from the engine's [`crate::clock`]). The
//! channel keeps the last [`EVENT_BACKLOG`] events for a slow subscriber
//! (older ones are reported as `Lagged` by tokio); with no subscriber,
//! events are dropped. Nothing on the mail path waits for a subscriber.
//! [`HealthEvent::text`] is a sentence for a person, suitable as an alert's
//! text; [`HealthEvent::key`] a de-duplication key.

pub mod gauges;
pub mod hysteresis;
pub(crate) mod sampler;
mod view;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::broadcast;

pub use gauges::{Gauge, Marks, Sample, Thresholds};
pub use hysteresis::{Monitor, Transition};
pub use view::{GaugeView, HealthReport};

use crate::clock::SharedClock;

/// Events kept for a subscriber that falls behind.
pub const EVENT_BACKLOG: usize = 64;

/// The `[health]` settings.
#[derive(Debug, Clone)]
pub struct HealthSettings {
    /// The marks of each gauge (none watched by default).
    pub thresholds: Thresholds,
    /// How often the gauges are read (default 5 s).
    pub sample_period: Duration,
    /// In conservation, the most sessions each private listener takes
    /// (default 100).
    pub private_session_limit: usize,
    /// Where "now" comes from (queue age, event times).
    pub clock: SharedClock,
}

impl Default for HealthSettings {
    fn default() -> Self {
        HealthSettings {
            thresholds: Thresholds::default(),
            sample_period: Duration::from_secs(5),
            private_session_limit: 100,
            clock: crate::clock::system(),
        }
    }
}

/// One health transition, for alerts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthEvent {
    pub at: SystemTime,
    pub transition: Transition,
}

impl HealthEvent {
    /// The gauge concerned.
    pub fn gauge(&self) -> Gauge {
        match self.transition {
            Transition::GaugePressed { gauge, .. }
            | Transition::GaugeRelieved { gauge, .. }
            | Transition::ConservationEntered { gauge, .. }
            | Transition::ConservationLeft { gauge, .. } => gauge,
        }
    }

    /// A de-duplication key: one per gauge for gauge crossings, one for
    /// conservation.
    pub fn key(&self) -> String {
        match self.transition {
            Transition::GaugePressed { gauge, .. } | Transition::GaugeRelieved { gauge, .. } => {
                format!("health:{gauge}")
            }
            _ => "health:conservation".to_owned(),
        }
    }

    /// A sentence for a person.
    pub fn text(&self) -> String {
        describe(&self.transition)
    }
}

fn past(g: Gauge, pressing: bool) -> &'static str {
    match (g.falling(), pressing) {
        (false, true) | (true, false) => "above its high mark",
        (false, false) | (true, true) => "below its low mark",
    }
}

/// The crossing that started conservation, short (`queue-messages 4 above
/// its high mark 3`): the reason refusals log and `ctl health` shows.
pub(crate) fn cause(t: &Transition) -> String {
    match *t {
        Transition::GaugePressed {
            gauge,
            value,
            threshold,
        }
        | Transition::ConservationEntered {
            gauge,
            value,
            threshold,
        } => format!("{gauge} {value} {} {threshold}", past(gauge, true)),
        Transition::GaugeRelieved {
            gauge,
            value,
            threshold,
        }
        | Transition::ConservationLeft {
            gauge,
            value,
            threshold,
        } => format!("{gauge} {value} {} {threshold}", past(gauge, false)),
    }
}

/// The words for a transition, as the log and alerts say it.
pub(crate) fn describe(t: &Transition) -> String {
    let crossing = cause(t);
    match t {
        Transition::GaugePressed { .. } | Transition::GaugeRelieved { .. } => crossing,
        Transition::ConservationEntered { .. } => format!(
            "resource conservation entered: {crossing}; public listeners answer 421 4.3.2 to new connections and 452 4.3.1 to MAIL FROM, private listeners keep accepting up to their limit"
        ),
        Transition::ConservationLeft { .. } => format!(
            "resource conservation left: {crossing} and every other gauge back within its marks; public listeners accept mail again"
        ),
    }
}

/// The shared health state: what the inbound path reads (one atomic load),
/// what the sampler writes, and the event channel. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Health {
    inner: Arc<State>,
}

#[derive(Debug)]
struct State {
    conserving: AtomicBool,
    open_sessions: Arc<AtomicUsize>,
    private_session_limit: AtomicUsize,
    /// Why conservation began, e.g. `queue-messages 4 above its high mark
    /// 3` (read only when refusing, for the log).
    reason: Mutex<String>,
    report: Mutex<HealthReport>,
    events: broadcast::Sender<HealthEvent>,
}

impl Default for Health {
    fn default() -> Self {
        Health::new(&HealthSettings::default())
    }
}

impl Health {
    pub fn new(settings: &HealthSettings) -> Self {
        let (events, _) = broadcast::channel(EVENT_BACKLOG);
        Health {
            inner: Arc::new(State {
                conserving: AtomicBool::new(false),
                open_sessions: Arc::default(),
                private_session_limit: AtomicUsize::new(settings.private_session_limit),
                reason: Mutex::new(String::new()),
                report: Mutex::new(HealthReport::empty(settings)),
                events,
            }),
        }
    }

    /// Whether the gateway is in resource conservation: one atomic load,
    /// for the inbound path.
    #[inline]
    pub fn conserving(&self) -> bool {
        self.inner.conserving.load(Ordering::Relaxed)
    }

    /// In conservation, the most sessions each private listener takes.
    pub fn private_session_limit(&self) -> usize {
        self.inner.private_session_limit.load(Ordering::Relaxed)
    }

    /// Why conservation began (for refusal log lines).
    pub fn reason(&self) -> String {
        lock(&self.inner.reason).clone()
    }

    /// Health transitions from now on (see the module documentation).
    pub fn subscribe(&self) -> broadcast::Receiver<HealthEvent> {
        self.inner.events.subscribe()
    }

    /// The gauges at the last sample, against their marks.
    pub fn report(&self) -> HealthReport {
        lock(&self.inner.report).clone()
    }

    /// Open inbound sessions now.
    pub fn open_sessions(&self) -> usize {
        self.inner.open_sessions.load(Ordering::Relaxed)
    }

    /// Counts one inbound session as open until the guard is dropped.
    pub(crate) fn session_opened(&self) -> SessionGuard {
        self.inner.open_sessions.fetch_add(1, Ordering::Relaxed);
        SessionGuard(self.inner.open_sessions.clone())
    }

    pub(crate) fn session_counter(&self) -> Arc<AtomicUsize> {
        self.inner.open_sessions.clone()
    }

    pub(crate) fn set_private_session_limit(&self, limit: usize) {
        self.inner
            .private_session_limit
            .store(limit, Ordering::Relaxed);
    }

    pub(crate) fn set_conserving(&self, on: bool, reason: String) {
        *lock(&self.inner.reason) = reason;
        self.inner.conserving.store(on, Ordering::Relaxed);
    }

    pub(crate) fn set_report(&self, report: HealthReport) {
        *lock(&self.inner.report) = report;
    }

    pub(crate) fn publish(&self, event: HealthEvent) {
        // No subscriber is not an error: the event is simply not wanted.
        let _ = self.inner.events.send(event);
    }
}

/// One open inbound session (see [`Health::session_opened`]).
#[derive(Debug)]
pub(crate) struct SessionGuard(Arc<AtomicUsize>);

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_read_as_sentences_with_one_key_per_gauge() {
        let at = SystemTime::UNIX_EPOCH;
        let pressed = HealthEvent {
            at,
            transition: Transition::GaugePressed {
                gauge: Gauge::SpoolFreePercent,
                value: 3,
                threshold: 5,
            },
        };
        assert_eq!(pressed.text(), "spool-free-percent 3 below its low mark 5");
        assert_eq!(pressed.key(), "health:spool-free-percent");
        assert_eq!(pressed.gauge(), Gauge::SpoolFreePercent);
        let left = HealthEvent {
            at,
            transition: Transition::ConservationLeft {
                gauge: Gauge::QueueMessages,
                value: 10,
                threshold: 80,
            },
        };
        assert!(
            left.text().starts_with(
                "resource conservation left: queue-messages 10 below its low mark 80 and every other gauge"
            ),
            "{}",
            left.text()
        );
        assert_eq!(left.key(), "health:conservation");
    }

    #[tokio::test]
    async fn counting_sessions_and_publishing_need_no_subscriber() {
        let h = Health::default();
        let a = h.session_opened();
        let b = h.session_opened();
        assert_eq!(h.open_sessions(), 2);
        drop(a);
        assert_eq!(h.open_sessions(), 1);
        drop(b);
        let at = SystemTime::UNIX_EPOCH;
        let t = Transition::ConservationEntered {
            gauge: Gauge::OpenSessions,
            value: 9,
            threshold: 8,
        };
        h.publish(HealthEvent { at, transition: t });
        let mut rx = h.subscribe();
        h.publish(HealthEvent { at, transition: t });
        assert_eq!(rx.recv().await.unwrap().transition, t);
    }
}
