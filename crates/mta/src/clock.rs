//! The wall clock the gateway's timed decisions read: alert de-duplication,
//! daily checks, certificate expiry thresholds, TLS-RPT day boundaries. Code
//! that decides by the date takes a [`Clock`] so tests move time forward with
//! a [`TestClock`] instead of sleeping.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

/// Where "now" comes from.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> SystemTime;
}

/// A shared clock handle, cheap to clone into every task.
pub type SharedClock = Arc<dyn Clock>;

/// The system's real time.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// The real clock as a [`SharedClock`].
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// A clock that stands still until the test moves it. Clones share one time.
#[derive(Debug, Clone)]
pub struct TestClock(Arc<Mutex<SystemTime>>);

impl TestClock {
    pub fn at(start: SystemTime) -> Self {
        Self(Arc::new(Mutex::new(start)))
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        *now += by;
    }

    pub fn set(&self, to: SystemTime) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = to;
    }

    pub fn shared(&self) -> SharedClock {
        Arc::new(self.clone())
    }
}

impl Clock for TestClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_of_a_test_clock_share_one_time() {
        let clock = TestClock::at(SystemTime::UNIX_EPOCH);
        let shared = clock.shared();
        clock.advance(Duration::from_secs(300));
        assert_eq!(
            shared.now(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(300)
        );
    }
}
