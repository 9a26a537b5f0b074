//! MTA-STS policy cache semantics (RFC 8461 §5.1): a policy is valid until
//! `max_age` seconds after it was fetched; a TXT id different from the
//! cached one means a new policy to fetch; a failed refresh keeps an
//! unexpired cached policy in force. Pure: the caller does the DNS and HTTPS
//! and passes `now`; this type says what to do and what is in force.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use crate::error::MtaStsTxtError;
use crate::mta_sts::facts::{MtaStsFacts, StsFailure};
use crate::mta_sts::policy::{StsMode, StsPolicy};
use crate::mta_sts::txt::StsTxtRecord;
use crate::name::DomainName;

/// A policy with the id and time it was fetched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedPolicy {
    /// The TXT id the policy was fetched under.
    pub id: String,
    /// The policy.
    pub policy: StsPolicy,
    /// When it was fetched.
    pub fetched_at: SystemTime,
}

impl CachedPolicy {
    /// When it stops being valid (`None` only if that lies beyond what
    /// `SystemTime` can represent).
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.fetched_at
            .checked_add(Duration::from_secs(u64::from(self.policy.max_age())))
    }

    /// Valid at `now` (a `max_age` of 0 is valid only at the fetch instant).
    pub fn is_valid(&self, now: SystemTime) -> bool {
        self.expires_at().is_none_or(|t| now <= t)
    }
}

/// What the gateway should do for a domain, given the TXT lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefreshPlan {
    /// The cached policy is current: use it, no fetch.
    UseCached,
    /// Fetch the policy file (new id, expired or absent cache).
    Fetch {
        /// The id to store the fetched policy under.
        id: String,
    },
    /// No TXT record and nothing usable cached: no policy.
    NoPolicy,
}

/// Cached policies by domain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StsCache {
    entries: HashMap<DomainName, CachedPolicy>,
}

impl StsCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The cached entry for `domain`, valid or not.
    pub fn get(&self, domain: &DomainName) -> Option<&CachedPolicy> {
        self.entries.get(domain)
    }

    /// Decides whether to fetch, given the result of looking up and
    /// selecting the `_mta-sts` TXT record.
    pub fn plan(
        &self,
        domain: &DomainName,
        txt: &Result<StsTxtRecord, MtaStsTxtError>,
        now: SystemTime,
    ) -> RefreshPlan {
        let cached = self.entries.get(domain).filter(|c| c.is_valid(now));
        match (txt, cached) {
            (Ok(rec), Some(c)) if c.id == rec.id() => RefreshPlan::UseCached,
            (Ok(rec), _) => RefreshPlan::Fetch {
                id: rec.id().to_owned(),
            },
            // No (valid) record, but an unexpired policy: keep using it
            // (§5.1: the TXT record is only a hint that a new policy exists).
            (Err(_), Some(_)) => RefreshPlan::UseCached,
            (Err(_), None) => RefreshPlan::NoPolicy,
        }
    }

    /// Stores a freshly fetched, valid policy.
    pub fn store(&mut self, domain: DomainName, id: String, policy: StsPolicy, now: SystemTime) {
        self.entries.insert(
            domain,
            CachedPolicy {
                id,
                policy,
                fetched_at: now,
            },
        );
    }

    /// What is in force for `domain` at `now`: the cached policy if still
    /// valid, otherwise no policy.
    pub fn facts(&self, domain: &DomainName, now: SystemTime) -> MtaStsFacts {
        match self.entries.get(domain).filter(|c| c.is_valid(now)) {
            Some(c) if c.policy.mode() != StsMode::None => MtaStsFacts::Policy(c.policy.clone()),
            _ => MtaStsFacts::None,
        }
    }

    /// What is in force after a fetch failed: an unexpired cached policy
    /// stays in force; otherwise the domain is treated as having no policy
    /// and the failure is reported (TLS-RPT) under `failure`.
    pub fn facts_after_failure(
        &self,
        domain: &DomainName,
        failure: StsFailure,
        now: SystemTime,
    ) -> MtaStsFacts {
        match self.facts(domain, now) {
            MtaStsFacts::None if self.entries.get(domain).is_none_or(|c| !c.is_valid(now)) => {
                MtaStsFacts::Unavailable(failure)
            }
            other => other,
        }
    }

    /// Drops entries expired at `now`.
    pub fn purge(&mut self, now: SystemTime) {
        self.entries.retain(|_, c| c.is_valid(now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mta_sts::policy::MxPattern;

    fn n(s: &str) -> DomainName {
        DomainName::parse(s).unwrap()
    }

    fn policy(mode: StsMode, max_age: u32) -> StsPolicy {
        StsPolicy::new(
            mode,
            max_age,
            vec![MxPattern::parse("*.example.com").unwrap()],
        )
        .unwrap()
    }

    #[test]
    fn lifecycle() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let d = n("example.com");
        let mut c = StsCache::new();
        let rec1 = StsTxtRecord::new("id1");
        assert_eq!(
            c.plan(&d, &rec1, t0),
            RefreshPlan::Fetch { id: "id1".into() }
        );
        assert_eq!(
            c.plan(&d, &Err(MtaStsTxtError::NoRecord), t0),
            RefreshPlan::NoPolicy
        );
        c.store(d.clone(), "id1".into(), policy(StsMode::Enforce, 3600), t0);
        assert_eq!(
            c.plan(&d, &rec1, t0 + Duration::from_secs(10)),
            RefreshPlan::UseCached
        );
        // id changed → refresh
        let rec2 = StsTxtRecord::new("id2");
        assert_eq!(
            c.plan(&d, &rec2, t0 + Duration::from_secs(10)),
            RefreshPlan::Fetch { id: "id2".into() }
        );
        // TXT gone (or several records) → keep cached while valid
        assert_eq!(
            c.plan(
                &d,
                &Err(MtaStsTxtError::MultipleRecords(2)),
                t0 + Duration::from_secs(10)
            ),
            RefreshPlan::UseCached
        );
        // fetch failed → cached policy still in force
        let f = c.facts_after_failure(&d, StsFailure::FetchError, t0 + Duration::from_secs(3600));
        assert!(matches!(f, MtaStsFacts::Policy(ref p) if p.mode() == StsMode::Enforce));
        // expired → fetch again; failure now means no policy, reported
        let late = t0 + Duration::from_secs(3601);
        assert_eq!(
            c.plan(&d, &rec1, late),
            RefreshPlan::Fetch { id: "id1".into() }
        );
        assert_eq!(c.facts(&d, late), MtaStsFacts::None);
        assert_eq!(
            c.facts_after_failure(&d, StsFailure::FetchError, late),
            MtaStsFacts::Unavailable(StsFailure::FetchError)
        );
        c.purge(late);
        assert!(c.get(&d).is_none());
    }

    #[test]
    fn mode_none_is_no_policy() {
        let t0 = SystemTime::UNIX_EPOCH;
        let d = n("example.com");
        let mut c = StsCache::new();
        c.store(
            d.clone(),
            "x".into(),
            StsPolicy::new(StsMode::None, 100, vec![]).unwrap(),
            t0,
        );
        assert_eq!(c.facts(&d, t0), MtaStsFacts::None);
        // …and a fetch failure while it is cached is not an error to report.
        assert_eq!(
            c.facts_after_failure(&d, StsFailure::FetchError, t0),
            MtaStsFacts::None
        );
    }
}
