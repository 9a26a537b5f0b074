//! The temporary STARTTLS exemption record: after a TLS handshake fails at
//! an opportunistic level, that host is sent mail in cleartext until an
//! expiry time (one hour by default, configurable). A pure data structure:
//! the caller passes `now` and the expiry the decision function computed,
//! so tests need no clock and the gateway decides where the record lives.

use std::collections::HashMap;
use std::time::SystemTime;

use crate::hop::HopHost;

/// Hosts exempt from STARTTLS, each until an expiry time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsExemptions {
    until: HashMap<HopHost, SystemTime>,
}

impl TlsExemptions {
    /// An empty record.
    pub fn new() -> Self {
        Self::default()
    }

    /// Exempts `host` until `until` (a later expiry never shortens an
    /// existing one).
    pub fn record(&mut self, host: HopHost, until: SystemTime) {
        let e = self.until.entry(host).or_insert(until);
        if *e < until {
            *e = until;
        }
    }

    /// Whether `host` is exempt at `now` (the expiry instant itself is not).
    pub fn is_exempt(&self, host: &HopHost, now: SystemTime) -> bool {
        self.until.get(host).is_some_and(|t| now < *t)
    }

    /// When the exemption of `host` ends, if it has one.
    pub fn expiry(&self, host: &HopHost) -> Option<SystemTime> {
        self.until.get(host).copied()
    }

    /// Ends an exemption early (an operator command).
    pub fn clear(&mut self, host: &HopHost) {
        self.until.remove(host);
    }

    /// Every recorded host with its expiry, in no particular order (for an
    /// operator's listing).
    pub fn entries(&self) -> impl Iterator<Item = (&HopHost, SystemTime)> {
        self.until.iter().map(|(h, t)| (h, *t))
    }

    /// Ends every exemption early (an operator command).
    pub fn clear_all(&mut self) {
        self.until.clear();
    }

    /// Forgets every exemption that has expired at `now`.
    pub fn purge(&mut self, now: SystemTime) {
        self.until.retain(|_, t| now < *t);
    }

    /// Number of hosts recorded (expired or not).
    pub fn len(&self) -> usize {
        self.until.len()
    }

    /// True when nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.until.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::name::DomainName;
    use std::time::Duration;

    #[test]
    fn expires_and_purges() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let h = HopHost::Name(DomainName::parse("mx.example").unwrap());
        let mut x = TlsExemptions::new();
        assert!(!x.is_exempt(&h, t0));
        x.record(h.clone(), t0 + Duration::from_secs(3600));
        assert!(x.is_exempt(&h, t0 + Duration::from_secs(3599)));
        assert!(!x.is_exempt(&h, t0 + Duration::from_secs(3600)));
        x.record(h.clone(), t0 + Duration::from_secs(10));
        assert_eq!(
            x.expiry(&h),
            Some(t0 + Duration::from_secs(3600)),
            "not shortened"
        );
        x.purge(t0 + Duration::from_secs(3600));
        assert!(x.is_empty());
    }
}
