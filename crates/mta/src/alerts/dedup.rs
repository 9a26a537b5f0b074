//! Duplicate suppression by key: the first alert of a key goes out at once;
//! repeats are held back until a wait has passed (initially 300 s), and the
//! wait doubles after each repeat notice up to a maximum (3600 s). The next
//! notice of the key carries how many repeats were held back. A held-back
//! repeat goes out when its wait runs out even if nothing new arrives
//! ([`Dedup::due`]), so a count is never lost. A key that stays quiet for a
//! whole maximum wait starts again from the initial wait. Time is whatever
//! the caller passes (the alert clock), so tests move it instead of
//! sleeping.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use super::Alert;

/// The initial and the longest wait between two notices of one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DedupPolicy {
    pub initial_wait: Duration,
    pub max_wait: Duration,
}

impl Default for DedupPolicy {
    fn default() -> Self {
        DedupPolicy {
            initial_wait: Duration::from_secs(300),
            max_wait: Duration::from_secs(3600),
        }
    }
}

#[derive(Debug)]
struct KeyState {
    /// No notice of this key before then.
    next_send: SystemTime,
    /// The wait that led to `next_send`.
    wait: Duration,
    /// Repeats since the last notice, and the latest of them.
    held: u32,
    latest: Option<Alert>,
}

/// Per-key state.
#[derive(Debug, Default)]
pub struct Dedup {
    policy: DedupPolicy,
    keys: HashMap<String, KeyState>,
}

impl Dedup {
    pub fn new(policy: DedupPolicy) -> Self {
        Dedup {
            policy,
            keys: HashMap::new(),
        }
    }

    /// Offers one occurrence at `now`: `Some(repeats)` when it goes out
    /// (with the repeats held back before it), `None` when it is held back.
    pub fn offer(&mut self, alert: &Alert, now: SystemTime) -> Option<u32> {
        let policy = self.policy;
        match self.keys.get_mut(&alert.key) {
            Some(s) if now < s.next_send => {
                s.held = s.held.saturating_add(1);
                s.latest = Some(alert.clone());
                None
            }
            Some(s) if s.held > 0 || now < s.next_send + policy.max_wait => {
                let repeats = s.held;
                s.held = 0;
                s.latest = None;
                s.wait = s.wait.saturating_mul(2).min(policy.max_wait);
                s.next_send = now + s.wait;
                Some(repeats)
            }
            _ => {
                // New, or quiet for a whole maximum wait: start over.
                self.keys.insert(
                    alert.key.clone(),
                    KeyState {
                        next_send: now + policy.initial_wait,
                        wait: policy.initial_wait,
                        held: 0,
                        latest: None,
                    },
                );
                Some(0)
            }
        }
    }

    /// Held-back repeats whose wait has run out at `now`: the latest alert
    /// of each key with the number held back (itself included). Keys quiet
    /// for long are forgotten here, which bounds the table.
    pub fn due(&mut self, now: SystemTime) -> Vec<(Alert, u32)> {
        let policy = self.policy;
        let mut out = Vec::new();
        for s in self.keys.values_mut() {
            if s.held > 0
                && now >= s.next_send
                && let Some(latest) = s.latest.take()
            {
                out.push((latest, s.held));
                s.held = 0;
                s.wait = s.wait.saturating_mul(2).min(policy.max_wait);
                s.next_send = now + s.wait;
            }
        }
        self.keys
            .retain(|_, s| s.held > 0 || now < s.next_send + policy.max_wait);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::{AlertClass, Severity};

    fn alert(key: &str) -> Alert {
        Alert::new(
            AlertClass::Dane,
            Severity::Warning,
            key,
            "every MX failed DANE",
        )
    }

    #[test]
    fn ten_events_one_notice_then_repeats_at_doubling_waits() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut d = Dedup::new(DedupPolicy::default());
        let sent: Vec<_> = (0..10).filter_map(|_| d.offer(&alert("k"), t0)).collect();
        assert_eq!(sent, vec![0]);
        assert!(d.due(t0 + Duration::from_secs(299)).is_empty());
        let due = d.due(t0 + Duration::from_secs(300));
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].1, 9);
        // Next wait 600 s, then 1200, 2400, 3600 (capped), 3600.
        let mut at = t0 + Duration::from_secs(300);
        for wait in [600, 1200, 2400, 3600, 3600] {
            assert_eq!(d.offer(&alert("k"), at + Duration::from_secs(1)), None);
            assert_eq!(d.offer(&alert("k"), at + Duration::from_secs(2)), None);
            assert!(d.due(at + Duration::from_secs(wait - 1)).is_empty());
            at += Duration::from_secs(wait);
            let due = d.due(at);
            assert_eq!(due.len(), 1, "repeat after {wait} s");
            assert_eq!(due[0].1, 2);
        }
    }

    #[test]
    fn an_event_after_the_wait_goes_out_with_the_count() {
        let t0 = SystemTime::UNIX_EPOCH;
        let mut d = Dedup::new(DedupPolicy::default());
        assert_eq!(d.offer(&alert("k"), t0), Some(0));
        assert_eq!(d.offer(&alert("k"), t0 + Duration::from_secs(10)), None);
        assert_eq!(d.offer(&alert("k"), t0 + Duration::from_secs(300)), Some(1));
        // Other keys are independent.
        assert_eq!(
            d.offer(&alert("other"), t0 + Duration::from_secs(301)),
            Some(0)
        );
    }

    #[test]
    fn a_quiet_key_starts_over() {
        let t0 = SystemTime::UNIX_EPOCH;
        let mut d = Dedup::new(DedupPolicy::default());
        assert_eq!(d.offer(&alert("k"), t0), Some(0));
        assert_eq!(d.offer(&alert("k"), t0 + Duration::from_secs(300)), Some(0));
        // Wait is now 600; quiet for 600 + 3600 s: forgotten, initial wait again.
        let later = t0 + Duration::from_secs(300 + 600 + 3600);
        assert!(d.due(later).is_empty());
        assert_eq!(d.offer(&alert("k"), later), Some(0));
        assert_eq!(d.offer(&alert("k"), later + Duration::from_secs(299)), None);
        assert_eq!(
            d.offer(&alert("k"), later + Duration::from_secs(300)),
            Some(1)
        );
    }

    proptest::proptest! {
        /// Whatever the events and the gaps between them, every occurrence
        /// is either a notice or counted in a later notice's repeats (once
        /// the waits have run out), and two notices of one key are never
        /// closer than the initial wait.
        #[test]
        fn no_occurrence_is_lost_and_notices_keep_their_distance(
            events in proptest::collection::vec((0u64..2000, 0usize..3), 1..200)
        ) {
            let policy = DedupPolicy::default();
            let mut d = Dedup::new(policy);
            let mut now = SystemTime::UNIX_EPOCH;
            let mut occurred = [0u64; 3];
            let mut counted = [0u64; 3];
            let mut last_notice: [Option<SystemTime>; 3] = [None; 3];
            let note = |k: usize, at: SystemTime, repeats: u64, notice_is_occurrence: bool,
                            counted: &mut [u64; 3], last: &mut [Option<SystemTime>; 3]| {
                counted[k] += repeats + u64::from(notice_is_occurrence);
                if let Some(prev) = last[k] {
                    proptest::prop_assert!(at.duration_since(prev).unwrap() >= policy.initial_wait);
                }
                last[k] = Some(at);
                Ok(())
            };
            for (gap, k) in events {
                now += Duration::from_secs(gap);
                for (a, held) in d.due(now) {
                    let k: usize = a.key[1..].parse().unwrap();
                    note(k, now, u64::from(held), false, &mut counted, &mut last_notice)?;
                }
                occurred[k] += 1;
                if let Some(r) = d.offer(&alert(&format!("k{k}")), now) {
                    note(k, now, u64::from(r), true, &mut counted, &mut last_notice)?;
                }
            }
            now += Duration::from_secs(10 * 3600);
            for (a, held) in d.due(now) {
                let k: usize = a.key[1..].parse().unwrap();
                note(k, now, u64::from(held), false, &mut counted, &mut last_notice)?;
            }
            proptest::prop_assert_eq!(occurred, counted);
        }
    }
}
