//! The gauges the gateway watches, their marks, and how each is measured.
//!
//! Five things can stop mail: memory, a queue that grows (in messages, or
//! in the age of its oldest message, when delivery is stuck), the spool's
//! filesystem filling up (in MiB, or as a share of its size), and too many
//! open inbound sessions. Each gauge has a high and a low mark. For the
//! gauges where more is worse, a reading above `high` is pressure and a
//! reading below `low` is relief; for the free-space gauges, where less is
//! worse, a reading below `low` is pressure and one above `high` is relief.
//! Between the marks a gauge keeps whatever side it was last on, so a
//! reading hovering around one mark does not flap.

use std::fmt;
use std::path::Path;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// One watched quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Gauge {
    /// Resident memory of the gateway process, MiB.
    ResidentMemoryMib,
    /// Messages in the queue.
    QueueMessages,
    /// Seconds since the oldest queued message was received.
    QueueOldestAgeSeconds,
    /// Free space on the spool's filesystem, MiB.
    SpoolFreeMib,
    /// Free space on the spool's filesystem, percent of its size.
    SpoolFreePercent,
    /// Open inbound SMTP sessions, all listeners together.
    OpenSessions,
}

impl Gauge {
    /// Every gauge, in the order they are shown.
    pub const ALL: [Gauge; 6] = [
        Gauge::ResidentMemoryMib,
        Gauge::QueueMessages,
        Gauge::QueueOldestAgeSeconds,
        Gauge::SpoolFreeMib,
        Gauge::SpoolFreePercent,
        Gauge::OpenSessions,
    ];

    /// The gauge's key in `[health]`.
    pub fn key(self) -> &'static str {
        match self {
            Gauge::ResidentMemoryMib => "resident-memory-mib",
            Gauge::QueueMessages => "queue-messages",
            Gauge::QueueOldestAgeSeconds => "queue-oldest-age-seconds",
            Gauge::SpoolFreeMib => "spool-free-mib",
            Gauge::SpoolFreePercent => "spool-free-percent",
            Gauge::OpenSessions => "open-sessions",
        }
    }

    /// Whether less is worse (free space) rather than more.
    pub fn falling(self) -> bool {
        matches!(self, Gauge::SpoolFreeMib | Gauge::SpoolFreePercent)
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Gauge::ResidentMemoryMib => 0,
            Gauge::QueueMessages => 1,
            Gauge::QueueOldestAgeSeconds => 2,
            Gauge::SpoolFreeMib => 3,
            Gauge::SpoolFreePercent => 4,
            Gauge::OpenSessions => 5,
        }
    }
}

impl fmt::Display for Gauge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// A gauge's two marks; `low <= high` (validation sees to it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marks {
    pub high: u64,
    pub low: u64,
}

impl Marks {
    /// The mark whose crossing is pressure: `high`, or `low` for a
    /// falling gauge.
    pub fn pressure_mark(self, gauge: Gauge) -> u64 {
        if gauge.falling() { self.low } else { self.high }
    }

    /// The mark whose crossing back is relief.
    pub fn relief_mark(self, gauge: Gauge) -> u64 {
        if gauge.falling() { self.high } else { self.low }
    }

    /// The reading is past the pressure mark.
    pub fn pressing(self, gauge: Gauge, value: u64) -> bool {
        if gauge.falling() {
            value < self.low
        } else {
            value > self.high
        }
    }

    /// The reading is back past the relief mark.
    pub fn relieved(self, gauge: Gauge, value: u64) -> bool {
        if gauge.falling() {
            value > self.high
        } else {
            value < self.low
        }
    }
}

/// The marks of every gauge; `None` is a gauge that is not watched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Thresholds([Option<Marks>; 6]);

impl Thresholds {
    pub fn get(&self, gauge: Gauge) -> Option<Marks> {
        self.0[gauge.index()]
    }

    pub fn set(&mut self, gauge: Gauge, marks: Option<Marks>) {
        self.0[gauge.index()] = marks;
    }

    /// With `marks` for `gauge` (builder style, for settings in code).
    pub fn with(mut self, gauge: Gauge, high: u64, low: u64) -> Self {
        self.set(gauge, Some(Marks { high, low }));
        self
    }

    /// Whether any gauge is watched.
    pub fn any(&self) -> bool {
        self.0.iter().any(Option::is_some)
    }
}

/// One reading of every gauge; `None` where it could not be measured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample([Option<u64>; 6]);

impl Sample {
    pub fn get(&self, gauge: Gauge) -> Option<u64> {
        self.0[gauge.index()]
    }

    pub fn set(&mut self, gauge: Gauge, value: Option<u64>) {
        self.0[gauge.index()] = value;
    }
}

/// What a sample is measured from.
#[derive(Debug, Clone)]
pub(crate) struct Sources {
    pub spool: std::sync::Arc<crate::spool::Spool>,
    pub open_sessions: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Sources {
    /// Reads every gauge now. The queue figures come from one pass over
    /// the spool's index (no message is copied); the rest are a syscall or
    /// an atomic load each.
    pub(crate) fn measure(&self, now: SystemTime) -> Sample {
        let mut s = Sample::default();
        s.set(Gauge::ResidentMemoryMib, resident_memory().map(|b| b >> 20));
        let queue = self.spool.queue_size();
        s.set(Gauge::QueueMessages, Some(queue.messages as u64));
        let now = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        s.set(
            Gauge::QueueOldestAgeSeconds,
            Some(
                queue
                    .oldest_received_at
                    .map_or(0, |t| now.saturating_sub(t)),
            ),
        );
        if let Ok(space) = self.spool.free_space() {
            s.set(Gauge::SpoolFreeMib, Some(space.available >> 20));
            s.set(
                Gauge::SpoolFreePercent,
                space.available.saturating_mul(100).checked_div(space.total),
            );
        }
        s.set(
            Gauge::OpenSessions,
            Some(
                self.open_sessions
                    .load(std::sync::atomic::Ordering::Relaxed) as u64,
            ),
        );
        s
    }
}

/// Resident memory of this process, in bytes (Linux: `/proc/self/statm`,
/// whose second field is resident pages). `None` where there is no such
/// file.
pub fn resident_memory() -> Option<u64> {
    let text = std::fs::read_to_string(Path::new("/proc/self/statm")).ok()?;
    let pages: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages.saturating_mul(rustix::param::page_size() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_read_both_directions() {
        let m = Marks { high: 100, low: 50 };
        let up = Gauge::QueueMessages;
        assert!(m.pressing(up, 101) && !m.pressing(up, 100));
        assert!(m.relieved(up, 49) && !m.relieved(up, 50));
        let down = Gauge::SpoolFreeMib;
        assert!(m.pressing(down, 49) && !m.pressing(down, 50));
        assert!(m.relieved(down, 101) && !m.relieved(down, 100));
        assert_eq!(m.pressure_mark(down), 50);
        assert_eq!(m.relief_mark(down), 100);
    }

    #[test]
    fn this_process_has_resident_memory() {
        let bytes = resident_memory().expect("/proc/self/statm on Linux");
        assert!(bytes > 0);
    }

    #[test]
    fn every_gauge_has_its_own_slot_and_key() {
        let mut keys: Vec<_> = Gauge::ALL.iter().map(|g| g.key()).collect();
        keys.dedup();
        assert_eq!(keys.len(), 6);
        for (i, g) in Gauge::ALL.iter().enumerate() {
            assert_eq!(g.index(), i);
        }
    }
}
