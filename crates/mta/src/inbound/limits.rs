//! Connection limits of one listener: the maximum number of simultaneous
//! sessions, and per client address the limit of the client's mail flow
//! policy. A [`Slot`] holds one place and gives it back when dropped, so a
//! session that ends in any way (error, panic, abort) frees its place.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

#[derive(Debug)]
pub(crate) struct Limits {
    total: Arc<Semaphore>,
    max_total: usize,
    per_host: Arc<Mutex<HashMap<IpAddr, u32>>>,
    freed: Arc<Notify>,
}

/// Why a connection was not given a place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The listener has `max` sessions open.
    ListenerFull { max: usize },
    /// This client has `max` sessions open.
    HostFull { max: u32 },
}

/// One session's place; released on drop.
#[derive(Debug)]
pub(crate) struct Slot {
    permit: Option<OwnedSemaphorePermit>,
    ip: IpAddr,
    per_host: Arc<Mutex<HashMap<IpAddr, u32>>>,
    freed: Arc<Notify>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = self.per_host.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
        drop(map);
        drop(self.permit.take());
        self.freed.notify_waiters();
    }
}

impl Limits {
    pub(crate) fn new(max_total: usize) -> Self {
        let max_total = max_total.clamp(1, Semaphore::MAX_PERMITS);
        Limits {
            total: Arc::new(Semaphore::new(max_total)),
            max_total,
            per_host: Arc::default(),
            freed: Arc::default(),
        }
    }

    /// Like [`Limits::acquire`], but waits up to `patience` for a place to
    /// free up. A client that reconnects right after its previous session
    /// said `221` can arrive before that session's task has released its
    /// place; refusing it would be a race, not a limit.
    pub(crate) async fn acquire_within(
        &self,
        ip: IpAddr,
        per_host: u32,
        patience: std::time::Duration,
    ) -> Result<Slot, Refusal> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let freed = self.freed.notified();
            match self.acquire(ip, per_host) {
                Ok(slot) => return Ok(slot),
                Err(refusal) => {
                    if tokio::time::timeout_at(deadline, freed).await.is_err() {
                        return Err(refusal);
                    }
                }
            }
        }
    }

    /// Sessions holding a place now.
    pub(crate) fn in_use(&self) -> usize {
        self.max_total
            .saturating_sub(self.total.available_permits())
    }

    /// Takes a place for `ip`, whose policy allows `per_host` sessions.
    pub(crate) fn acquire(&self, ip: IpAddr, per_host: u32) -> Result<Slot, Refusal> {
        let permit = self
            .total
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::ListenerFull {
                max: self.max_total,
            })?;
        let mut map = self.per_host.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(ip).or_insert(0);
        if *n >= per_host {
            if *n == 0 {
                map.remove(&ip);
            }
            return Err(Refusal::HostFull { max: per_host });
        }
        *n += 1;
        Ok(Slot {
            permit: Some(permit),
            ip,
            per_host: self.per_host.clone(),
            freed: self.freed.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_hold_and_release() {
        let l = Limits::new(3);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let s1 = l.acquire(a, 2).unwrap();
        let _s2 = l.acquire(a, 2).unwrap();
        assert_eq!(l.acquire(a, 2).unwrap_err(), Refusal::HostFull { max: 2 });
        let _s3 = l.acquire(b, 2).unwrap();
        assert_eq!(
            l.acquire(b, 2).unwrap_err(),
            Refusal::ListenerFull { max: 3 }
        );
        drop(s1);
        assert!(l.acquire(a, 2).is_ok());
        assert_eq!(l.acquire(b, 0).unwrap_err(), Refusal::HostFull { max: 0 });
    }

    #[tokio::test]
    async fn a_place_freed_meanwhile_is_taken() {
        let l = Arc::new(Limits::new(1));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let held = l.acquire(a, 1).unwrap();
        let releaser = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            drop(held);
        });
        let slot = l
            .acquire_within(a, 1, std::time::Duration::from_secs(30))
            .await;
        assert!(slot.is_ok());
        releaser.await.unwrap();
        // Nobody frees anything: refused once the patience is spent.
        let refused = l
            .acquire_within(a, 1, std::time::Duration::from_millis(10))
            .await;
        assert_eq!(refused.unwrap_err(), Refusal::ListenerFull { max: 1 });
    }
}
