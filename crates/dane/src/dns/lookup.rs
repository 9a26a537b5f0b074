//! How one query runs: the route for the name (per-domain servers or the
//! default ones), the anchored zones primed first when due, then the
//! priority levels in order until one answers, through the resolver the
//! mode and the name call for — hickory validating, hickory plain (names
//! outside the trust anchors, insecure domains), or a raw query whose AD bit
//! is trusted. Also the state swaps behind priming and cache flushes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::dnssec::Proof;
use hickory_proto::dnssec::rdata::DNSKEY;
use hickory_proto::rr::{Name, Record, RecordType};

use super::anchors::validate_dnskey_rrset;
use super::answer::{self, Answer};
use super::backend::{build_hickory, raw_query};
use super::settings::{self, DnsSetupError, DnssecMode, LookupFailed};
use super::{
    DaneResolver, Level, PRIME_MAX, PRIME_MIN, PRIME_RETRY, Priming, Route, Routes, Shared, State,
    unix_now,
};

impl Shared {
    /// Fresh resolvers (empty caches) for every route, validating from the
    /// file's anchors plus the `primed` key sets.
    pub(super) fn build_routes(
        &self,
        primed: &BTreeMap<Name, Vec<DNSKEY>>,
    ) -> Result<Routes, DnsSetupError> {
        let s = &self.settings;
        let anchors = Arc::new(self.anchors.for_hickory(primed));
        let route = |levels: Vec<Vec<std::net::SocketAddr>>, insecure: bool| {
            let validate = s.dnssec == DnssecMode::Validate && !insecure;
            let levels = levels
                .into_iter()
                .map(|servers| {
                    Ok(Level {
                        validating: if validate {
                            Some(build_hickory(&servers, s.timeout, Some(anchors.clone()))?)
                        } else {
                            None
                        },
                        plain: build_hickory(&servers, s.timeout, None)?,
                        servers,
                    })
                })
                .collect::<Result<Vec<_>, DnsSetupError>>()?;
            Ok::<_, DnsSetupError>(Route { levels, insecure })
        };
        let default = route(s.levels(), false)?;
        let mut domains = Vec::new();
        for (name, d) in &self.domains {
            let levels = settings::levels(&d.servers, &d.fallback_servers);
            domains.push((name.clone(), route(levels, d.insecure)?));
        }
        Ok(Routes { default, domains })
    }
}

impl DaneResolver {
    pub(super) fn snapshot(&self) -> Arc<State> {
        self.shared
            .state
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(super) fn replace(&self, state: State) {
        *self.shared.state.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(state);
    }

    fn priming_due(&self, state: &State) -> bool {
        self.shared.settings.dnssec == DnssecMode::Validate
            && !self.shared.anchors.to_prime().is_empty()
            && state.priming.until.is_none_or(|u| Instant::now() >= u)
    }

    /// The current state, with the anchored zones primed if that is due.
    pub(super) async fn ready(&self) -> Arc<State> {
        let state = self.snapshot();
        if !self.priming_due(&state) {
            return state;
        }
        let _one_at_a_time = self.shared.priming.lock().await;
        let state = self.snapshot();
        if !self.priming_due(&state) {
            return state;
        }
        self.prime(&state).await
    }

    /// Re-primes now (a bogus answer may mean the zone rolled its keys),
    /// unless the last attempt was moments ago. `None`: nothing was done.
    async fn reprime(&self) -> Option<Arc<State>> {
        if self.shared.settings.dnssec != DnssecMode::Validate
            || self.shared.anchors.to_prime().is_empty()
        {
            return None;
        }
        let _one_at_a_time = self.shared.priming.lock().await;
        let state = self.snapshot();
        if state
            .priming
            .last_attempt
            .is_some_and(|t| t.elapsed() < PRIME_RETRY)
        {
            return None;
        }
        Some(self.prime(&state).await)
    }

    /// Validates the DNSKEY RRset of every anchored zone from its anchors,
    /// and rebuilds the validating resolvers when the trusted keys changed.
    async fn prime(&self, state: &State) -> Arc<State> {
        let s = &self.shared.settings;
        let mut keys = state.priming.keys.clone();
        let mut problems = Vec::new();
        let mut ttl = PRIME_MAX;
        for zone in self.shared.anchors.to_prime() {
            let Some(anchors) = self.shared.anchors.zone(&zone) else {
                continue;
            };
            let servers = state.routes.for_name(&zone).servers();
            match raw_query(&servers, s.timeout, &zone, RecordType::DNSKEY).await {
                Ok(raw) => {
                    match validate_dnskey_rrset(&zone, anchors, &raw.response.answers, unix_now()) {
                        Ok(primed) => {
                            ttl = ttl.min(Duration::from_secs(u64::from(primed.ttl)));
                            keys.insert(zone, primed.keys);
                        }
                        Err(e) => problems.push(format!("{e} (asked {})", raw.server)),
                    }
                }
                Err(e) => problems.push(format!("cannot fetch the DNSKEY records of {zone}: {e}")),
            }
        }
        // Said once per change: the self-check reports them too.
        if problems != state.priming.problems {
            for p in &problems {
                tracing::warn!("DNSSEC trust anchor: {p}");
            }
        }
        let now = Instant::now();
        let until = now
            + if problems.is_empty() {
                ttl.clamp(PRIME_MIN, PRIME_MAX)
            } else {
                PRIME_RETRY
            };
        let routes = if keys == state.priming.keys {
            None
        } else {
            match self.shared.build_routes(&keys) {
                Ok(r) => Some(r),
                Err(e) => {
                    problems.push(format!("cannot rebuild the resolver: {e}"));
                    None
                }
            }
        };
        let priming = Priming {
            keys,
            until: Some(until),
            last_attempt: Some(now),
            problems,
        };
        let next = match routes {
            Some(routes) => State { routes, priming },
            // Same keys: keep the resolvers and their caches.
            None => State {
                routes: self.snapshot().routes.clone(),
                priming,
            },
        };
        self.replace(next);
        self.snapshot()
    }

    /// One DNSSEC-aware lookup, classified. A bogus answer below a primed
    /// anchor triggers one re-priming and one retry (key rollover).
    pub(super) async fn lookup(&self, name: &Name, rtype: RecordType) -> Answer<Vec<Record>> {
        let state = self.ready().await;
        let answer = self.lookup_in(&state, name, rtype).await;
        if matches!(answer, Answer::Bogus { .. })
            && let Some(state) = self.reprime().await
        {
            return self.lookup_in(&state, name, rtype).await;
        }
        answer
    }

    pub(super) async fn lookup_in(
        &self,
        state: &State,
        name: &Name,
        rtype: RecordType,
    ) -> Answer<Vec<Record>> {
        let s = &self.shared.settings;
        let route = state.routes.for_name(name);
        let outside = |n: &Name| !self.shared.anchors.covers(n);
        match s.dnssec {
            DnssecMode::TrustAd => {
                match raw_query(&route.servers(), s.timeout, name, rtype).await {
                    Ok(raw) => answer::ad_response(name, rtype, &raw.response, !route.insecure),
                    Err(detail) => Answer::LookupFailed { detail },
                }
            }
            DnssecMode::Validate if route.insecure => {
                unvalidated(route, name, rtype, Proof::Insecure).await
            }
            DnssecMode::Validate if outside(name) => {
                unvalidated(route, name, rtype, Proof::Indeterminate).await
            }
            DnssecMode::Validate => {
                let mut last = Answer::LookupFailed {
                    detail: format!("no DNS server to ask for {name} {rtype}"),
                };
                for level in &route.levels {
                    let Some(resolver) = &level.validating else {
                        continue;
                    };
                    last = match resolver.lookup(name.clone(), rtype).await {
                        Ok(lookup) => answer::validated(name, rtype, lookup.answers(), outside),
                        Err(e) => answer::validation_error(name, rtype, &e),
                    };
                    if !matches!(last, Answer::LookupFailed { .. }) {
                        break;
                    }
                }
                last
            }
        }
    }

    /// A lookup without DNSSEC: the records (none: empty), or why not.
    pub(super) async fn plain(
        &self,
        name: &Name,
        rtype: RecordType,
    ) -> Result<Vec<Record>, LookupFailed> {
        let state = self.snapshot();
        let route = state.routes.for_name(name);
        match unvalidated(route, name, rtype, Proof::Indeterminate).await {
            Answer::Records(p) => Ok(p.into_parts().1),
            Answer::NoRecords { .. } => Ok(Vec::new()),
            Answer::Bogus { detail } | Answer::LookupFailed { detail } => Err(LookupFailed(detail)),
        }
    }
}

/// Asks the route's plain resolvers, level by level; the records get `proof`.
async fn unvalidated(
    route: &Route,
    name: &Name,
    rtype: RecordType,
    proof: Proof,
) -> Answer<Vec<Record>> {
    let mut last = format!("no DNS server to ask for {name} {rtype}");
    for level in &route.levels {
        match level.plain.lookup(name.clone(), rtype).await {
            Ok(lookup) => return answer::unvalidated(rtype, lookup.answers(), proof),
            Err(e) if e.is_no_records_found() || e.is_nx_domain() => {
                return Answer::NoRecords { proof };
            }
            Err(e) => last = format!("{name} {rtype}: {e}"),
        }
    }
    Answer::LookupFailed { detail: last }
}
