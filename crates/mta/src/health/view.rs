//! The health report: every gauge at the last sample against its marks, and
//! the state. What `portcullis ctl health`, the admin API
//! (`GET /api/health`) and the status page show.

use serde::{Deserialize, Serialize};

use super::{Gauge, HealthSettings, Monitor, Sample};

/// One gauge in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GaugeView {
    /// Its `[health]` key (`queue-messages`, …).
    pub gauge: String,
    /// The reading; `None` when it could not be measured.
    pub value: Option<u64>,
    pub high: Option<u64>,
    pub low: Option<u64>,
    /// `above` (more is worse) or `below` (less is worse: free space).
    pub worse_when: String,
    /// `off` (no marks), `ok`, `pressed` (past its pressure mark and not
    /// back past the other), or `unreadable`.
    pub state: String,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReport {
    /// `normal` or `conservation`.
    pub state: String,
    /// Unix seconds the state last changed; 0 if it never did.
    pub since: u64,
    /// Unix seconds of the sample shown; 0 before the first.
    pub sampled_at: u64,
    pub sample_period_seconds: u64,
    pub private_session_limit: usize,
    /// In conservation: why it began.
    pub reason: String,
    pub gauges: Vec<GaugeView>,
}

impl Default for HealthReport {
    fn default() -> Self {
        HealthReport::empty(&HealthSettings::default())
    }
}

impl HealthReport {
    /// Before the first sample.
    pub(crate) fn empty(settings: &HealthSettings) -> Self {
        let monitor = Monitor::new(settings.thresholds);
        HealthReport::build(settings, &monitor, &Sample::default(), 0, 0, String::new())
    }

    pub(crate) fn build(
        settings: &HealthSettings,
        monitor: &Monitor,
        sample: &Sample,
        sampled_at: u64,
        since: u64,
        reason: String,
    ) -> Self {
        let gauges = Gauge::ALL
            .into_iter()
            .map(|g| {
                let marks = monitor.thresholds().get(g);
                let value = sample.get(g);
                let state = match (marks, value) {
                    (None, _) => "off",
                    (Some(_), None) if sampled_at == 0 => "ok",
                    (Some(_), None) => "unreadable",
                    (Some(_), Some(_)) if monitor.pressed(g) => "pressed",
                    (Some(_), Some(_)) => "ok",
                };
                GaugeView {
                    gauge: g.key().to_owned(),
                    value,
                    high: marks.map(|m| m.high),
                    low: marks.map(|m| m.low),
                    worse_when: if g.falling() { "below" } else { "above" }.to_owned(),
                    state: state.to_owned(),
                }
            })
            .collect();
        HealthReport {
            state: if monitor.conserving() {
                "conservation"
            } else {
                "normal"
            }
            .to_owned(),
            since,
            sampled_at,
            sample_period_seconds: settings.sample_period.as_secs(),
            private_session_limit: settings.private_session_limit,
            reason,
            gauges,
        }
    }
}
