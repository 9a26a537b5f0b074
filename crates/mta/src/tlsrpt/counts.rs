//! TLS-RPT session counts (RFC 8460 §4): per policy domain and UTC day, per
//! policy applied (type, policy strings, MX patterns), the successful and
//! failed sessions and, for failures, by result type and peer. The
//! [`SessionCounter`] is what the delivery path calls: one short lock and
//! a map update per TLS session, nothing written to disk there; the report
//! task takes the counts periodically and adds them to the durable store.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use super::day::UtcDay;
use crate::clock::SharedClock;

/// The policy a session was counted under (RFC 8460 §4.4 `policy`,
/// without the domain, which keys the whole [`DomainDay`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PolicyKey {
    /// `sts`, `tlsa` or `no-policy-found`.
    pub policy_type: String,
    /// MTA-STS policy lines or TLSA records in presentation format.
    #[serde(default)]
    pub policy_string: Vec<String>,
    /// MTA-STS MX patterns, or the MX host a TLSA set belongs to.
    #[serde(default)]
    pub mx_host: Vec<String>,
}

/// One kind of failure (RFC 8460 §4.4 `failure-details` without the count).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct FailureKey {
    /// An RFC 8460 §4.3 result type (`starttls-not-supported`, …).
    pub result_type: String,
    #[serde(default)]
    pub sending_mta_ip: Option<IpAddr>,
    #[serde(default)]
    pub receiving_mx_hostname: Option<String>,
    #[serde(default)]
    pub receiving_mx_helo: Option<String>,
    #[serde(default)]
    pub receiving_ip: Option<IpAddr>,
}

/// Session counts under one policy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyCounts {
    pub successful: u64,
    pub failed: u64,
    pub failures: BTreeMap<FailureKey, u64>,
}

/// One policy domain's counts for one UTC day: what the store keeps and a
/// report is built from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DomainDay {
    pub policies: BTreeMap<PolicyKey, PolicyCounts>,
}

impl DomainDay {
    /// Adds another batch of counts for the same domain and day.
    pub fn add(&mut self, other: &DomainDay) {
        for (policy, counts) in &other.policies {
            let mine = self.policies.entry(policy.clone()).or_default();
            mine.successful = mine.successful.saturating_add(counts.successful);
            mine.failed = mine.failed.saturating_add(counts.failed);
            for (failure, n) in &counts.failures {
                let c = mine.failures.entry(failure.clone()).or_default();
                *c = c.saturating_add(*n);
            }
        }
    }

    /// Adds one session.
    pub fn count(&mut self, session: Session) {
        let counts = self.policies.entry(session.policy).or_default();
        match session.failure {
            None => counts.successful = counts.successful.saturating_add(1),
            Some(f) => {
                counts.failed = counts.failed.saturating_add(1);
                let c = counts.failures.entry(f).or_default();
                *c = c.saturating_add(1);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// Successful and failed sessions over every policy.
    pub fn totals(&self) -> (u64, u64) {
        self.policies.values().fold((0, 0), |(s, f), c| {
            (s.saturating_add(c.successful), f.saturating_add(c.failed))
        })
    }
}

/// What one TLS session contributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub policy: PolicyKey,
    /// `None`: the session met the policy.
    pub failure: Option<FailureKey>,
}

/// Counts not yet in the store, keyed by UTC day and policy domain.
pub type Pending = HashMap<(UtcDay, String), DomainDay>;

/// The delivery path's counter: in memory until the report task takes it.
/// Off (each call returns at once) until TLS reports are enabled.
#[derive(Debug)]
pub struct SessionCounter {
    enabled: AtomicBool,
    inner: Mutex<(SharedClock, Pending)>,
}

impl Default for SessionCounter {
    fn default() -> Self {
        SessionCounter {
            enabled: AtomicBool::new(false),
            inner: Mutex::new((crate::clock::system(), Pending::new())),
        }
    }
}

impl SessionCounter {
    /// An enabled counter reading days from `clock`.
    pub fn new(clock: SharedClock) -> Self {
        let c = SessionCounter::default();
        c.enable(clock);
        c
    }

    /// Starts counting, days read from `clock`.
    pub fn enable(&self, clock: SharedClock) {
        self.lock().0 = clock;
        self.enabled.store(true, Ordering::Relaxed);
    }

    /// Stops counting (what was counted stays until taken).
    pub fn disable(&self) {
        self.enabled.store(false, Ordering::Relaxed);
    }

    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (SharedClock, Pending)> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a session with `policy_domain` (lower-case) on today's UTC day.
    pub fn record(&self, policy_domain: &str, session: Session) {
        if !self.enabled() {
            return;
        }
        let mut inner = self.lock();
        let day = UtcDay::of(inner.0.now());
        match inner.1.get_mut(&(day, policy_domain.to_owned())) {
            Some(d) => d.count(session),
            None => {
                let mut d = DomainDay::default();
                d.count(session);
                inner.1.insert((day, policy_domain.to_owned()), d);
            }
        }
    }

    /// Everything counted since the last take.
    pub fn take(&self) -> Pending {
        std::mem::take(&mut self.lock().1)
    }

    /// Puts back counts the store could not take, so they are written with
    /// the next flush instead of lost.
    pub fn put_back(&self, counts: Pending) {
        let mut inner = self.lock();
        for (key, day) in counts {
            inner.1.entry(key).or_default().add(&day);
        }
    }

    /// Today, by the counter's clock.
    pub fn today(&self) -> UtcDay {
        UtcDay::of(self.lock().0.now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::TestClock;
    use std::time::Duration;

    fn sts() -> PolicyKey {
        PolicyKey {
            policy_type: "sts".into(),
            policy_string: vec!["version: STSv1".into(), "mode: testing".into()],
            mx_host: vec!["*.mx.example".into()],
        }
    }

    fn failure(result: &str) -> FailureKey {
        FailureKey {
            result_type: result.into(),
            sending_mta_ip: Some("127.0.0.1".parse().unwrap()),
            receiving_mx_hostname: Some("mx1.mx.example".into()),
            receiving_mx_helo: None,
            receiving_ip: Some("127.0.0.2".parse().unwrap()),
        }
    }

    #[test]
    fn sessions_are_counted_per_day_domain_and_policy() {
        let clock = TestClock::at(UtcDay::parse("2026-12-01").unwrap().start());
        let counter = SessionCounter::new(clock.shared());
        counter.record(
            "example",
            Session {
                policy: sts(),
                failure: None,
            },
        );
        counter.record(
            "example",
            Session {
                policy: sts(),
                failure: Some(failure("validation-failure")),
            },
        );
        counter.record(
            "example",
            Session {
                policy: sts(),
                failure: Some(failure("validation-failure")),
            },
        );
        clock.advance(Duration::from_secs(86_400));
        counter.record(
            "example",
            Session {
                policy: sts(),
                failure: None,
            },
        );
        let taken = counter.take();
        assert_eq!(taken.len(), 2);
        let first = &taken[&(UtcDay::parse("2026-12-01").unwrap(), "example".to_owned())];
        assert_eq!(first.totals(), (1, 2));
        assert_eq!(
            first.policies[&sts()].failures[&failure("validation-failure")],
            2
        );
        assert!(counter.take().is_empty());
        counter.put_back(taken.clone());
        counter.put_back(taken);
        let again = counter.take();
        assert_eq!(
            again[&(UtcDay::parse("2026-12-02").unwrap(), "example".to_owned())].totals(),
            (2, 0)
        );
    }
}
