//! The mail path's counters: what the sessions and deliveries count while
//! they run, for `/metrics` and the status page. Every count is one relaxed
//! atomic add on a handle fetched when the listener or delivery context was
//! built, never a map lookup or a lock on the mail path; label sets are
//! fixed and small (listener names, outcome classes — never a domain).
//!
//! Besides the running totals, a ring of minute buckets keeps the TLS
//! outcomes of the last hour, for the status page's chart. The admin module turns
//! all of it into Prometheus text ([`Metrics::encode`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;

/// How one delivery (per recipient) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeliveryResult {
    Delivered = 0,
    Deferred = 1,
    Bounced = 2,
}

const RESULTS: [&str; 3] = ["delivered", "deferred", "bounced"];

/// How the next hop was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthKind {
    None = 0,
    Pkix = 1,
    Dane = 2,
    MtaSts = 3,
}

const AUTHS: [&str; 4] = ["none", "pkix", "dane", "mta-sts"];

/// Why STARTTLS did not work, inbound or outbound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StarttlsFailure {
    /// A client's handshake failed.
    InboundHandshake = 0,
    NotOffered = 1,
    Refused = 2,
    Handshake = 3,
    Authentication = 4,
    RequireTls = 5,
}

const STARTTLS_FAILURES: [(&str, &str); 6] = [
    ("inbound", "handshake"),
    ("outbound", "not-offered"),
    ("outbound", "refused"),
    ("outbound", "handshake"),
    ("outbound", "authentication"),
    ("outbound", "requiretls-not-offered"),
];

/// The MTA-STS state a delivery found for its domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MtaStsOutcome {
    NoPolicy = 0,
    Enforce = 1,
    Testing = 2,
    Unavailable = 3,
}

const MTA_STS: [&str; 4] = ["none", "enforce", "testing", "unavailable"];

/// The classes of the last-hour TLS chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsClass {
    /// An inbound session that ran TLS.
    InboundTls = 0,
    /// An inbound session in cleartext.
    InboundPlain = 1,
    /// An inbound TLS handshake that failed.
    InboundFailed = 2,
    /// A delivery over TLS.
    OutboundTls = 3,
    /// A delivery in cleartext.
    OutboundPlain = 4,
    /// An outbound STARTTLS that fell short.
    OutboundFailed = 5,
}

/// Number of [`TlsClass`]es.
pub const TLS_CLASSES: usize = 6;

/// Counters of one listener; the handle the listener's sessions hold.
#[derive(Debug, Default)]
pub(crate) struct ListenerCounters {
    /// Sessions that ended with TLS active, in cleartext, or whose handshake
    /// failed.
    tls: AtomicU64,
    plain: AtomicU64,
    failed: AtomicU64,
}

/// What a session counts: its listener's counters and the global ones.
#[derive(Debug, Clone)]
pub(crate) struct SessionMetrics {
    listener: Arc<ListenerCounters>,
    global: Arc<Metrics>,
}

impl SessionMetrics {
    /// A session reached the end of its SMTP dialogue.
    pub(crate) fn closed(&self, tls_active: bool) {
        if tls_active {
            self.listener.tls.fetch_add(1, Ordering::Relaxed);
            self.global.hour.record(TlsClass::InboundTls);
        } else {
            self.listener.plain.fetch_add(1, Ordering::Relaxed);
            self.global.hour.record(TlsClass::InboundPlain);
        }
    }

    /// A client's TLS handshake failed (the session ends).
    pub(crate) fn handshake_failed(&self) {
        self.listener.failed.fetch_add(1, Ordering::Relaxed);
        self.global
            .starttls_failure(StarttlsFailure::InboundHandshake);
        self.global.hour.record(TlsClass::InboundFailed);
    }
}

/// Every counter of the mail path. One per engine; shared behind an `Arc`.
#[derive(Debug, Default)]
pub struct Metrics {
    listeners: Mutex<Vec<(String, Arc<ListenerCounters>)>>,
    deliveries: [[AtomicU64; 4]; 3],
    starttls_failures: [AtomicU64; 6],
    dane_verified: AtomicU64,
    dane_failed: AtomicU64,
    mta_sts: [AtomicU64; 4],
    delivery: LatencyHistogram,
    hour: HourRing,
}

impl Metrics {
    /// The counters of listener `name` (made on first use; a listener that
    /// is reloaded or resumed keeps its totals).
    pub(crate) fn session_metrics(self: &Arc<Self>, name: &str) -> SessionMetrics {
        let mut list = self.listeners.lock().unwrap_or_else(|p| p.into_inner());
        let listener = match list.iter().find(|(n, _)| n == name) {
            Some((_, c)) => c.clone(),
            None => {
                let c = Arc::new(ListenerCounters::default());
                list.push((name.to_owned(), c.clone()));
                c
            }
        };
        SessionMetrics {
            listener,
            global: self.clone(),
        }
    }

    /// One recipient's outcome at one hop.
    pub(crate) fn delivery(&self, result: DeliveryResult, auth: AuthKind, tls: bool) {
        if let Some(row) = self.deliveries.get(result as usize)
            && let Some(c) = row.get(auth as usize)
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
        if result == DeliveryResult::Delivered {
            self.hour.record(if tls {
                TlsClass::OutboundTls
            } else {
                TlsClass::OutboundPlain
            });
        }
    }

    /// STARTTLS fell short.
    pub(crate) fn starttls_failure(&self, class: StarttlsFailure) {
        if let Some(c) = self.starttls_failures.get(class as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        if class != StarttlsFailure::InboundHandshake {
            self.hour.record(TlsClass::OutboundFailed);
        }
    }

    /// A DANE check of a next hop's certificate passed or failed.
    pub(crate) fn dane(&self, verified: bool) {
        let c = if verified {
            &self.dane_verified
        } else {
            &self.dane_failed
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// The MTA-STS state of a destination at delivery.
    pub(crate) fn mta_sts(&self, outcome: MtaStsOutcome) {
        if let Some(c) = self.mta_sts.get(outcome as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// One delivery to one destination took `took` (next hops, connection,
    /// transaction).
    pub(crate) fn delivery_took(&self, took: Duration) {
        self.delivery.observe(took);
    }

    /// Total of a delivery result over every authentication.
    pub fn deliveries_total(&self, result: &str) -> u64 {
        RESULTS
            .iter()
            .position(|r| *r == result)
            .and_then(|i| self.deliveries.get(i))
            .map_or(0, |row| row.iter().map(|c| c.load(Ordering::Relaxed)).sum())
    }

    /// The TLS outcomes of the last hour: per class, one count per minute,
    /// oldest first (60 minutes, the current one last).
    pub fn last_hour(&self) -> [[u64; 60]; TLS_CLASSES] {
        self.hour.snapshot(SystemTime::now())
    }

    /// Writes every counter and histogram in the Prometheus text format.
    pub fn encode(&self, encoder: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
        {
            let list = self.listeners.lock().unwrap_or_else(|p| p.into_inner());
            let mut m = encoder.encode_descriptor(
                "portcullis_inbound_sessions",
                "Inbound SMTP sessions that ended, by listener and TLS outcome.",
                None,
                MetricType::Counter,
            )?;
            for (name, c) in list.iter() {
                for (tls, v) in [
                    ("established", &c.tls),
                    ("none", &c.plain),
                    ("failed", &c.failed),
                ] {
                    let labels = [("listener", name.as_str()), ("tls", tls)];
                    counter(&mut m, &labels, v)?;
                }
            }
        }
        let mut m = encoder.encode_descriptor(
            "portcullis_starttls_failures",
            "STARTTLS that fell short, by direction and class.",
            None,
            MetricType::Counter,
        )?;
        for ((direction, class), v) in STARTTLS_FAILURES.iter().zip(&self.starttls_failures) {
            counter(&mut m, &[("direction", *direction), ("class", *class)], v)?;
        }
        let mut m = encoder.encode_descriptor(
            "portcullis_outbound_deliveries",
            "Recipient outcomes of delivery attempts, by result and how the next hop was authenticated.",
            None,
            MetricType::Counter,
        )?;
        for (result, row) in RESULTS.iter().zip(&self.deliveries) {
            for (auth, v) in AUTHS.iter().zip(row) {
                counter(&mut m, &[("result", *result), ("auth", *auth)], v)?;
            }
        }
        let mut m = encoder.encode_descriptor(
            "portcullis_dane_verifications",
            "DANE checks of next-hop certificates, by result.",
            None,
            MetricType::Counter,
        )?;
        counter(&mut m, &[("result", "verified")], &self.dane_verified)?;
        counter(&mut m, &[("result", "failed")], &self.dane_failed)?;
        let mut m = encoder.encode_descriptor(
            "portcullis_mta_sts_policies",
            "MTA-STS state found for a destination at delivery, by mode.",
            None,
            MetricType::Counter,
        )?;
        for (mode, v) in MTA_STS.iter().zip(&self.mta_sts) {
            counter(&mut m, &[("mode", *mode)], v)?;
        }
        let m = encoder.encode_descriptor(
            "portcullis_delivery_duration_seconds",
            "Time one delivery to one destination took (next hops, connection, transaction).",
            None,
            MetricType::Histogram,
        )?;
        self.delivery.encode(m)
    }
}

fn counter(m: &mut MetricEncoder<'_>, labels: &[(&str, &str)], v: &AtomicU64) -> std::fmt::Result {
    let value = v.load(Ordering::Relaxed);
    m.encode_family(&labels.to_vec())?
        .encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(&value, None)
}

/// Upper bounds (seconds) of the latency histograms.
const BOUNDS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
];

/// A histogram of durations: one atomic add per bucket, count and sum, no
/// lock (prometheus-client's own histogram takes one per observation).
#[derive(Debug, Default)]
pub(crate) struct LatencyHistogram {
    /// Observations per bucket (not cumulative); the last is `+Inf`.
    buckets: [AtomicU64; 13],
    sum_micros: AtomicU64,
}

impl LatencyHistogram {
    pub(crate) fn observe(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let i = BOUNDS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BOUNDS.len());
        if let Some(b) = self.buckets.get(i) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    pub(crate) fn encode(&self, mut m: MetricEncoder<'_>) -> std::fmt::Result {
        let mut cumulative = 0u64;
        let mut buckets = Vec::with_capacity(self.buckets.len());
        for (i, b) in self.buckets.iter().enumerate() {
            cumulative += b.load(Ordering::Relaxed);
            buckets.push((BOUNDS.get(i).copied().unwrap_or(f64::MAX), cumulative));
        }
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        m.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            sum, cumulative, &buckets, None,
        )
    }
}

impl EncodeMetric for LatencyHistogram {
    fn encode(&self, encoder: MetricEncoder<'_>) -> std::fmt::Result {
        LatencyHistogram::encode(self, encoder)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// The last hour of TLS outcomes, one slot per minute. A slot is reset by
/// the first event of a new minute (a compare-and-swap on its minute
/// stamp); an event racing with that reset may be lost, which a chart of
/// rates can afford and a lock on the mail path could not.
#[derive(Debug)]
struct HourRing {
    slots: [Slot; 60],
}

impl Default for HourRing {
    fn default() -> Self {
        HourRing {
            slots: std::array::from_fn(|_| Slot::default()),
        }
    }
}

#[derive(Debug, Default)]
struct Slot {
    minute: AtomicU64,
    counts: [AtomicU64; TLS_CLASSES],
}

fn minute_of(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() / 60)
}

impl HourRing {
    fn record(&self, class: TlsClass) {
        self.record_at(class, SystemTime::now());
    }

    fn record_at(&self, class: TlsClass, now: SystemTime) {
        let minute = minute_of(now);
        let Some(slot) = self.slots.get((minute % 60) as usize) else {
            return;
        };
        let seen = slot.minute.load(Ordering::Acquire);
        if seen != minute
            && slot
                .minute
                .compare_exchange(seen, minute, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            for c in &slot.counts {
                c.store(0, Ordering::Relaxed);
            }
        }
        if let Some(c) = slot.counts.get(class as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn snapshot(&self, now: SystemTime) -> [[u64; 60]; TLS_CLASSES] {
        let current = minute_of(now);
        let mut out = [[0u64; 60]; TLS_CLASSES];
        for age in 0..60u64 {
            let Some(minute) = current.checked_sub(age) else {
                break;
            };
            let Some(slot) = self.slots.get((minute % 60) as usize) else {
                continue;
            };
            if slot.minute.load(Ordering::Acquire) != minute {
                continue;
            }
            let column = 59 - age as usize;
            for (class, c) in slot.counts.iter().enumerate() {
                if let Some(row) = out.get_mut(class)
                    && let Some(cell) = row.get_mut(column)
                {
                    *cell = c.load(Ordering::Relaxed);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hour_ring_keeps_sixty_minutes_and_forgets_older_ones() {
        let ring = HourRing::default();
        let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000 / 60 * 60);
        ring.record_at(TlsClass::InboundTls, t0);
        ring.record_at(TlsClass::InboundTls, t0 + Duration::from_secs(30));
        ring.record_at(TlsClass::OutboundFailed, t0 + Duration::from_secs(600));
        let s = ring.snapshot(t0 + Duration::from_secs(600));
        assert_eq!(s[TlsClass::InboundTls as usize][49], 2);
        assert_eq!(s[TlsClass::OutboundFailed as usize][59], 1);
        // An hour later the first minute's slot is reused and starts at 0.
        let later = t0 + Duration::from_secs(3600);
        ring.record_at(TlsClass::InboundPlain, later);
        let s = ring.snapshot(later);
        assert_eq!(s[TlsClass::InboundTls as usize].iter().sum::<u64>(), 0);
        assert_eq!(s[TlsClass::InboundPlain as usize][59], 1);
        assert_eq!(s[TlsClass::OutboundFailed as usize][9], 1);
    }

    #[test]
    fn histogram_and_counters_encode_as_prometheus_text() {
        let m = Arc::new(Metrics::default());
        let s = m.session_metrics("inbound");
        s.closed(true);
        s.closed(false);
        s.handshake_failed();
        m.delivery(DeliveryResult::Delivered, AuthKind::Dane, true);
        m.delivery_took(Duration::from_millis(3));
        m.delivery_took(Duration::from_secs(60));
        let mut text = String::new();
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(Wrapper(m.clone())));
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(
                "portcullis_inbound_sessions_total{listener=\"inbound\",tls=\"established\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "portcullis_outbound_deliveries_total{result=\"delivered\",auth=\"dane\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("portcullis_delivery_duration_seconds_bucket{le=\"0.005\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("portcullis_delivery_duration_seconds_count 2"),
            "{text}"
        );
        assert_eq!(m.deliveries_total("delivered"), 1);
    }

    #[derive(Debug)]
    struct Wrapper(Arc<Metrics>);

    impl prometheus_client::collector::Collector for Wrapper {
        fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
            self.0.encode(&mut encoder)
        }
    }
}
