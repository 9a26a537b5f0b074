//! `[health]`: the gauges watched, their marks, and resource conservation
//! (see [`crate::health`]). Every gauge is off unless given its two marks;
//! with none given, the gateway only reports its gauges (`portcullis ctl
//! health`) and never enters conservation.
//!
//! ```toml
//! [health]
//! sample-period-seconds = 5          # default 5
//! private-session-limit = 100        # per private listener, in conservation
//! resident-memory-mib = { high = 4096, low = 3072 }
//! queue-messages = { high = 50000, low = 40000 }
//! queue-oldest-age-seconds = { high = 86400, low = 43200 }
//! open-sessions = { high = 900, low = 700 }
//! # Free space: conservation below `low`, back to normal above `high`.
//! spool-free-mib = { low = 512, high = 1024 }
//! spool-free-percent = { low = 5, high = 10 }
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::source::KeyPath;
use super::validate::Problem;
use crate::health::{Gauge, HealthSettings, Marks, Thresholds};

/// `[health]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct HealthConfig {
    /// How often the gauges are read. Default 5.
    #[serde(default = "default_period")]
    pub sample_period_seconds: u64,
    /// During resource conservation, the most sessions each private
    /// listener takes (public listeners take none). Default 100.
    #[serde(default = "default_private_limit")]
    pub private_session_limit: u32,
    /// Resident memory of the gateway, MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resident_memory_mib: Option<MarksConfig>,
    /// Messages in the queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_messages: Option<MarksConfig>,
    /// Age of the oldest queued message, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_oldest_age_seconds: Option<MarksConfig>,
    /// Free space on the spool's filesystem, MiB (less is worse).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spool_free_mib: Option<MarksConfig>,
    /// Free space on the spool's filesystem, percent (less is worse).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spool_free_percent: Option<MarksConfig>,
    /// Open inbound sessions, all listeners together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_sessions: Option<MarksConfig>,
}

/// A gauge's `{ high = …, low = … }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct MarksConfig {
    pub high: u64,
    pub low: u64,
}

fn default_period() -> u64 {
    5
}

fn default_private_limit() -> u32 {
    100
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            sample_period_seconds: default_period(),
            private_session_limit: default_private_limit(),
            resident_memory_mib: None,
            queue_messages: None,
            queue_oldest_age_seconds: None,
            spool_free_mib: None,
            spool_free_percent: None,
            open_sessions: None,
        }
    }
}

impl HealthConfig {
    /// Whether nothing differs from the defaults (the section is then left
    /// out of an exported configuration).
    pub fn is_default(&self) -> bool {
        *self == HealthConfig::default()
    }

    fn marks(&self, gauge: Gauge) -> Option<MarksConfig> {
        match gauge {
            Gauge::ResidentMemoryMib => self.resident_memory_mib,
            Gauge::QueueMessages => self.queue_messages,
            Gauge::QueueOldestAgeSeconds => self.queue_oldest_age_seconds,
            Gauge::SpoolFreeMib => self.spool_free_mib,
            Gauge::SpoolFreePercent => self.spool_free_percent,
            Gauge::OpenSessions => self.open_sessions,
        }
    }
}

/// Longest sample period: a gauge read less often than hourly warns too
/// late to be of use.
const MAX_PERIOD: u64 = 3600;

/// Checks `[health]`; returns its settings (meaningful when no problem was
/// added).
pub(crate) fn check(c: &HealthConfig, p: &mut Vec<Problem>) -> HealthSettings {
    let at = KeyPath::root().key("health");
    if !(1..=MAX_PERIOD).contains(&c.sample_period_seconds) {
        p.push((
            at.key("sample-period-seconds"),
            format!(
                "{} is out of range; write 1 to {MAX_PERIOD} seconds (default 5)",
                c.sample_period_seconds
            ),
        ));
    }
    if c.private_session_limit == 0 {
        p.push((
            at.key("private-session-limit"),
            "must be at least 1: with 0, private listeners would refuse every session during resource conservation, like public ones".into(),
        ));
    }
    let mut thresholds = Thresholds::default();
    for gauge in Gauge::ALL {
        let Some(m) = c.marks(gauge) else {
            continue;
        };
        let here = at.key(gauge.key());
        if m.low > m.high {
            let meaning = if gauge.falling() {
                "conservation begins when free space falls below low and ends once it is back above high"
            } else {
                "conservation begins above high and ends once the gauge is back below low"
            };
            p.push((
                here.key("low"),
                format!(
                    "{} is above high ({}); low must not exceed high: {meaning}",
                    m.low, m.high
                ),
            ));
        }
        if gauge == Gauge::SpoolFreePercent && m.high > 100 {
            p.push((
                here.key("high"),
                format!("{} is not a percentage (0 to 100)", m.high),
            ));
        }
        thresholds.set(
            gauge,
            Some(Marks {
                high: m.high,
                low: m.low,
            }),
        );
    }
    HealthSettings {
        thresholds,
        sample_period: Duration::from_secs(c.sample_period_seconds),
        private_session_limit: usize::try_from(c.private_session_limit).unwrap_or(usize::MAX),
        clock: crate::clock::system(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LoadedConfig;

    const BASE: &str =
        "[[listener]]\nname = \"in\"\naddress = \"127.0.0.1:0\"\nrat.accept = [\"example.com\"]\n";

    fn problems(extra: &str) -> String {
        let text = format!("{BASE}{extra}");
        match LoadedConfig::parse("gw.toml", &text) {
            Err(r) => r.to_string(),
            Ok(l) => match l.check_semantics() {
                Ok(()) => String::new(),
                Err(r) => r.to_string(),
            },
        }
    }

    #[test]
    fn a_valid_section_becomes_its_settings() {
        let c: HealthConfig = toml::from_str(
            "sample-period-seconds = 2\nprivate-session-limit = 7\nqueue-messages = { high = 10, low = 5 }\nspool-free-mib = { high = 300, low = 200 }",
        )
        .unwrap();
        let mut p = Vec::new();
        let s = check(&c, &mut p);
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(s.sample_period, Duration::from_secs(2));
        assert_eq!(s.private_session_limit, 7);
        assert_eq!(
            s.thresholds.get(Gauge::QueueMessages),
            Some(Marks { high: 10, low: 5 })
        );
        assert_eq!(
            s.thresholds.get(Gauge::SpoolFreeMib),
            Some(Marks {
                high: 300,
                low: 200
            })
        );
        assert_eq!(s.thresholds.get(Gauge::OpenSessions), None);
        assert!(HealthConfig::default().is_default());
    }

    #[test]
    fn errors_name_the_key_and_its_line() {
        let r = problems("[health]\nqueue-messages = { high = 10, low = 50 }\n");
        assert!(
            r.contains("gw.toml:6:")
                && r.contains("health.queue-messages.low: 50 is above high (10)"),
            "{r}"
        );
        let r = problems("[health]\nspool-free-percent = { high = 120, low = 5 }\n");
        assert!(
            r.contains("health.spool-free-percent.high: 120 is not a percentage"),
            "{r}"
        );
        let r = problems("[health]\nsample-period-seconds = 0\nprivate-session-limit = 0\n");
        assert!(
            r.contains("health.sample-period-seconds: 0 is out of range"),
            "{r}"
        );
        assert!(
            r.contains("health.private-session-limit: must be at least 1"),
            "{r}"
        );
        let r = problems("[health]\nopen-sessions = { high = 10 }\n");
        assert!(r.contains("low"), "a gauge needs both marks: {r}");
        let r = problems("[health]\ndisk = 3\n");
        assert!(r.contains("unknown field"), "{r}");
        assert_eq!(
            problems("[health]\nopen-sessions = { high = 10, low = 10 }\n"),
            ""
        );
    }
}
