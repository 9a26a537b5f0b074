//! The resource-conservation state machine: samples in, transitions out.
//! No clock, no I/O: the sampler feeds it, tests feed it by hand.
//!
//! The rule: a sample with any watched gauge past its pressure mark
//! (above `high`; below `low` for free space) puts the gateway in resource
//! conservation; it leaves only on a sample where every watched gauge is
//! back past its relief mark. A gauge that could not be read counts as
//! neither: it cannot start conservation, and it does not hold the gateway
//! in it. Each gauge also keeps its own side (pressed or not) for the
//! per-gauge transitions the alerts listen to.

use super::gauges::{Gauge, Sample, Thresholds};

/// What changed with one sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// `gauge` went past its pressure mark `threshold`.
    GaugePressed {
        gauge: Gauge,
        value: u64,
        threshold: u64,
    },
    /// `gauge` came back past its relief mark `threshold`.
    GaugeRelieved {
        gauge: Gauge,
        value: u64,
        threshold: u64,
    },
    /// Resource conservation began because of `gauge`.
    ConservationEntered {
        gauge: Gauge,
        value: u64,
        threshold: u64,
    },
    /// Resource conservation ended; `gauge` was the last one to relent.
    ConservationLeft {
        gauge: Gauge,
        value: u64,
        threshold: u64,
    },
}

/// The state across samples.
#[derive(Debug, Clone, Default)]
pub struct Monitor {
    thresholds: Thresholds,
    conserving: bool,
    pressed: [bool; 6],
    /// Gauges not yet relieved at the previous sample: the one that relents
    /// last is the one the "left" line names.
    holding: Vec<Gauge>,
    /// The gauge that started the current conservation.
    cause: Option<Gauge>,
}

impl Monitor {
    pub fn new(thresholds: Thresholds) -> Self {
        Monitor {
            thresholds,
            ..Monitor::default()
        }
    }

    /// New marks (after a reload); the state carries over and the next
    /// sample is judged by them.
    pub fn set_thresholds(&mut self, thresholds: Thresholds) {
        self.thresholds = thresholds;
        for g in Gauge::ALL {
            if thresholds.get(g).is_none() {
                self.pressed[g.index()] = false;
            }
        }
    }

    pub fn thresholds(&self) -> &Thresholds {
        &self.thresholds
    }

    /// Whether the gateway is in resource conservation.
    pub fn conserving(&self) -> bool {
        self.conserving
    }

    /// Whether `gauge` is past its pressure mark (and not yet relieved).
    pub fn pressed(&self, gauge: Gauge) -> bool {
        self.pressed[gauge.index()]
    }

    /// Takes one sample; returns the transitions it caused, per-gauge ones
    /// first, then the conservation change if any.
    #[must_use]
    pub fn observe(&mut self, sample: &Sample) -> Vec<Transition> {
        let mut out = Vec::new();
        let mut first_pressing = None;
        let mut holding = Vec::new();
        for g in Gauge::ALL {
            let (Some(marks), Some(value)) = (self.thresholds.get(g), sample.get(g)) else {
                continue;
            };
            let pressing = marks.pressing(g, value);
            let relieved = marks.relieved(g, value);
            if pressing {
                first_pressing.get_or_insert((g, value, marks.pressure_mark(g)));
            }
            if !relieved {
                holding.push(g);
            }
            let was = &mut self.pressed[g.index()];
            if pressing && !*was {
                *was = true;
                out.push(Transition::GaugePressed {
                    gauge: g,
                    value,
                    threshold: marks.pressure_mark(g),
                });
            } else if relieved && *was {
                *was = false;
                out.push(Transition::GaugeRelieved {
                    gauge: g,
                    value,
                    threshold: marks.relief_mark(g),
                });
            }
        }
        if let (false, Some((gauge, value, threshold))) = (self.conserving, first_pressing) {
            self.conserving = true;
            self.cause = Some(gauge);
            out.push(Transition::ConservationEntered {
                gauge,
                value,
                threshold,
            });
        } else if self.conserving && holding.is_empty() {
            self.conserving = false;
            let last = self
                .holding
                .iter()
                .copied()
                .find(|g| self.thresholds.get(*g).is_some())
                .or(self.cause.take())
                .unwrap_or(Gauge::ResidentMemoryMib);
            let value = sample.get(last).unwrap_or(0);
            let threshold = self.thresholds.get(last).map_or(0, |m| m.relief_mark(last));
            out.push(Transition::ConservationLeft {
                gauge: last,
                value,
                threshold,
            });
            self.cause = None;
        }
        self.holding = holding;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn queue(n: u64) -> Sample {
        let mut s = Sample::default();
        s.set(Gauge::QueueMessages, Some(n));
        s
    }

    #[test]
    fn enters_above_high_and_leaves_below_low_only() {
        let mut m = Monitor::new(Thresholds::default().with(Gauge::QueueMessages, 100, 50));
        assert!(
            m.observe(&queue(100)).is_empty(),
            "at the mark is not above it"
        );
        let t = m.observe(&queue(101));
        assert_eq!(
            t,
            vec![
                Transition::GaugePressed {
                    gauge: Gauge::QueueMessages,
                    value: 101,
                    threshold: 100
                },
                Transition::ConservationEntered {
                    gauge: Gauge::QueueMessages,
                    value: 101,
                    threshold: 100
                }
            ]
        );
        for n in [99, 60, 50, 100, 150] {
            assert!(m.observe(&queue(n)).is_empty(), "{n} is no change");
            assert!(m.conserving());
        }
        let t = m.observe(&queue(49));
        assert_eq!(
            t.last(),
            Some(&Transition::ConservationLeft {
                gauge: Gauge::QueueMessages,
                value: 49,
                threshold: 50
            })
        );
        assert!(!m.conserving());
    }

    #[test]
    fn free_space_presses_when_it_falls_below_low() {
        let mut m = Monitor::new(Thresholds::default().with(Gauge::SpoolFreeMib, 200, 100));
        let mut s = Sample::default();
        s.set(Gauge::SpoolFreeMib, Some(99));
        assert!(m.observe(&s).contains(&Transition::ConservationEntered {
            gauge: Gauge::SpoolFreeMib,
            value: 99,
            threshold: 100
        }));
        s.set(Gauge::SpoolFreeMib, Some(200));
        assert!(m.observe(&s).is_empty());
        s.set(Gauge::SpoolFreeMib, Some(201));
        assert!(m.observe(&s).contains(&Transition::ConservationLeft {
            gauge: Gauge::SpoolFreeMib,
            value: 201,
            threshold: 200
        }));
    }

    #[test]
    fn leaving_waits_for_every_gauge_and_names_the_last_to_relent() {
        let t = Thresholds::default()
            .with(Gauge::QueueMessages, 100, 50)
            .with(Gauge::OpenSessions, 10, 5);
        let mut m = Monitor::new(t);
        let mut s = queue(500);
        s.set(Gauge::OpenSessions, Some(7));
        let _ = m.observe(&s);
        assert!(m.conserving());
        s.set(Gauge::QueueMessages, Some(0));
        let t = m.observe(&s);
        assert_eq!(t.len(), 1, "queue relieved, sessions still in the band");
        assert!(m.conserving());
        s.set(Gauge::OpenSessions, Some(4));
        assert_eq!(
            m.observe(&s),
            vec![Transition::ConservationLeft {
                gauge: Gauge::OpenSessions,
                value: 4,
                threshold: 5
            }]
        );
    }

    #[test]
    fn an_unreadable_gauge_neither_starts_nor_holds_conservation() {
        let mut m = Monitor::new(Thresholds::default().with(Gauge::SpoolFreeMib, 20, 10));
        assert!(m.observe(&Sample::default()).is_empty());
        let mut s = Sample::default();
        s.set(Gauge::SpoolFreeMib, Some(1));
        let _ = m.observe(&s);
        assert!(m.conserving());
        let t = m.observe(&Sample::default());
        assert!(!m.conserving(), "{t:?}");
    }

    /// A watched gauge's marks, as validation allows them (low <= high).
    fn marks() -> impl Strategy<Value = Option<(u64, u64)>> {
        prop::option::of((0u64..40, 0u64..40).prop_map(|(a, b)| (a.max(b), a.min(b))))
    }

    fn thresholds() -> impl Strategy<Value = Thresholds> {
        prop::collection::vec(marks(), 6).prop_map(|all| {
            let mut t = Thresholds::default();
            for (g, m) in Gauge::ALL.into_iter().zip(all) {
                if let Some((high, low)) = m {
                    t = t.with(g, high, low);
                }
            }
            t
        })
    }

    fn sample() -> impl Strategy<Value = Sample> {
        prop::collection::vec(prop::option::weighted(0.9, 0u64..45), 6).prop_map(|values| {
            let mut s = Sample::default();
            for (g, v) in Gauge::ALL.into_iter().zip(values) {
                s.set(g, v);
            }
            s
        })
    }

    /// The `[health]` section that gives `t`: the generator must only make
    /// marks the configuration accepts.
    fn as_config(t: &Thresholds) -> crate::config::HealthConfig {
        let m = |g| {
            t.get(g)
                .map(|m: super::super::Marks| crate::config::MarksConfig {
                    high: m.high,
                    low: m.low,
                })
        };
        crate::config::HealthConfig {
            resident_memory_mib: m(Gauge::ResidentMemoryMib),
            queue_messages: m(Gauge::QueueMessages),
            queue_oldest_age_seconds: m(Gauge::QueueOldestAgeSeconds),
            spool_free_mib: m(Gauge::SpoolFreeMib),
            spool_free_percent: m(Gauge::SpoolFreePercent),
            open_sessions: m(Gauge::OpenSessions),
            ..Default::default()
        }
    }

    proptest! {
        /// In conservation iff some sample pressed a gauge and no sample
        /// since had every readable watched gauge relieved.
        #[test]
        fn conservation_follows_the_last_crossing(
            t in thresholds(),
            samples in prop::collection::vec(sample(), 0..40),
        ) {
            let mut problems = Vec::new();
            let checked = crate::config::health::check(&as_config(&t), &mut problems);
            prop_assert!(problems.is_empty(), "{:?}", problems);
            prop_assert_eq!(checked.thresholds, t);
            let mut m = Monitor::new(t);
            let mut expected = false;
            for s in &samples {
                let readings: Vec<(Gauge, u64)> = Gauge::ALL
                    .into_iter()
                    .filter(|g| t.get(*g).is_some())
                    .filter_map(|g| s.get(g).map(|v| (g, v)))
                    .collect();
                let any_pressing = readings.iter().any(|(g, v)| t.get(*g).is_some_and(|m| m.pressing(*g, *v)));
                let all_relieved = readings.iter().all(|(g, v)| t.get(*g).is_some_and(|m| m.relieved(*g, *v)));
                if any_pressing {
                    expected = true;
                } else if all_relieved {
                    expected = false;
                }
                let transitions = m.observe(s);
                prop_assert_eq!(m.conserving(), expected);
                let entered = transitions.iter().filter(|t| matches!(t, Transition::ConservationEntered { .. })).count();
                let left = transitions.iter().filter(|t| matches!(t, Transition::ConservationLeft { .. })).count();
                prop_assert!(entered + left <= 1);
                for g in Gauge::ALL {
                    if t.get(g).is_none() {
                        prop_assert!(!m.pressed(g));
                    }
                }
            }
        }
    }
}
