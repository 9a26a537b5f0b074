//! MTA-STS state of destination domains (RFC 8461): the `_mta-sts` TXT
//! lookup and the policy host's address (both through the gateway's one
//! resolver), the HTTPS fetch of the policy ([`PolicyFetcher`]: PKIX against
//! the enabled CA lists, no redirects, 64 KiB, deadline), and the policy
//! cache ([`StsCache`], which says when to fetch and what is in force),
//! persisted as JSON under the data directory so a restart keeps every
//! policy until it expires. The file is rewritten atomically (temporary
//! file + rename) whenever a new policy is stored.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use portcullis_policy::DomainName;
use portcullis_policy::mta_sts::{
    MtaStsFacts, RefreshPlan, StsCache, StsFailure, StsPolicy, StsTxtRecord,
};
use serde::{Deserialize, Serialize};

use super::delivery::Context;
use crate::dns::Resolver;
use crate::error::StartError;
use crate::metrics::MtaStsOutcome;
use crate::mta_sts_fetch::{FetchError, PolicyFetcher};
use crate::settings::EngineSettings;
use crate::spool::MessageId;

/// One cached policy on disk: the text is re-parsed at load, so a policy
/// that no longer parses (a stricter parser) is dropped, not trusted.
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    id: String,
    fetched_at: u64,
    policy: String,
}

pub(crate) struct StsState {
    inner: Option<Inner>,
}

struct Inner {
    resolver: Resolver,
    fetcher: PolicyFetcher,
    cache: Mutex<(StsCache, BTreeMap<String, Stored>)>,
    file: PathBuf,
}

impl std::fmt::Debug for StsState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StsState")
            .field("enabled", &self.inner.is_some())
            .finish()
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl StsState {
    pub(crate) fn new(
        settings: &EngineSettings,
        resolver: Option<Resolver>,
    ) -> Result<Self, StartError> {
        let d = &settings.delivery;
        if !d.mta_sts.enabled {
            return Ok(StsState { inner: None });
        }
        let Some(resolver) = resolver else {
            return Err(StartError::Setup(
                "MTA-STS is enabled but no DNS resolver is configured: the _mta-sts TXT record cannot be looked up".into(),
            ));
        };
        let https = rustls::ClientConfig::builder_with_provider(d.tls.provider.clone())
            .with_protocol_versions(&d.tls.versions)
            .map_err(|e| StartError::Setup(format!("MTA-STS HTTPS client: {e}")))?
            .with_root_certificates(d.tls.roots.clone())
            .with_no_client_auth();
        let mut fetcher = PolicyFetcher::new(Arc::new(https), d.mta_sts.fetch_timeout)
            .with_resolver(resolver.clone());
        for (host, addr) in &d.mta_sts.addresses {
            fetcher = fetcher.with_address(host, *addr);
        }
        let dir = settings.data_dir.join("mta-sts");
        std::fs::create_dir_all(&dir)
            .map_err(|e| StartError::Setup(format!("cannot create {}: {e}", dir.display())))?;
        let file = dir.join("cache.json");
        let (cache, stored) = load(&file);
        Ok(StsState {
            inner: Some(Inner {
                resolver,
                fetcher,
                cache: Mutex::new((cache, stored)),
                file,
            }),
        })
    }

    /// The MTA-STS facts for `domain`, refreshing the cache when the TXT
    /// id says there is a new policy. Every outcome is one log line.
    pub(crate) async fn facts(
        &self,
        ctx: &Context,
        id: MessageId,
        domain: &DomainName,
    ) -> MtaStsFacts {
        let Some(inner) = &self.inner else {
            return MtaStsFacts::None;
        };
        if !ctx.settings.policy.destinations().lookup(domain).mta_sts {
            return MtaStsFacts::None;
        }
        let txt = inner.txt(domain).await;
        let now = SystemTime::now();
        let plan = {
            let g = inner.cache.lock().unwrap_or_else(|p| p.into_inner());
            g.0.plan(domain, &txt, now)
        };
        match plan {
            RefreshPlan::NoPolicy => MtaStsFacts::None,
            RefreshPlan::UseCached => {
                let facts = inner
                    .cache
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .0
                    .facts(domain, now);
                log_facts(ctx, id, domain, &facts, "cached");
                facts
            }
            RefreshPlan::Fetch { id: policy_id } => {
                if let Some(facts) = inner.shared_policy(ctx, id, domain, &policy_id, now).await {
                    return facts;
                }
                let failure = match inner.fetcher.fetch(domain.as_str()).await {
                    Ok(text) => match StsPolicy::parse(text.as_bytes()) {
                        Ok(policy) => {
                            inner.store(domain, &policy_id, policy, &text, now);
                            if let Some(cluster) = &ctx.cluster {
                                crate::cluster::sts_cache::publish(
                                    cluster,
                                    domain.as_str(),
                                    &policy_id,
                                    unix(now),
                                    &text,
                                );
                            }
                            let facts = inner
                                .cache
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .0
                                .facts(domain, now);
                            log_facts(ctx, id, domain, &facts, &format!("fetched, id {policy_id}"));
                            return facts;
                        }
                        Err(e) => {
                            ctx.log.warn(format_args!(
                                "MID {id} MTA-STS policy of {domain} is invalid: {e}"
                            ));
                            StsFailure::PolicyInvalid
                        }
                    },
                    Err(e) => {
                        ctx.log.warn(format_args!(
                            "MID {id} MTA-STS policy of {domain} could not be fetched: {e}"
                        ));
                        match e {
                            FetchError::Tls { .. } => StsFailure::WebPkiInvalid,
                            _ => StsFailure::FetchError,
                        }
                    }
                };
                let facts = inner
                    .cache
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .0
                    .facts_after_failure(domain, failure, now);
                log_facts(ctx, id, domain, &facts, "after a failed refresh");
                facts
            }
            // A plan this build does not know: whatever the cache holds, so
            // a valid cached enforce policy stays in force.
            _ => inner
                .cache
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .0
                .facts(domain, now),
        }
    }
}

fn log_facts(ctx: &Context, id: MessageId, domain: &DomainName, facts: &MtaStsFacts, how: &str) {
    ctx.metrics.mta_sts(match facts {
        MtaStsFacts::Policy(p) if p.mode().as_str() == "enforce" => MtaStsOutcome::Enforce,
        MtaStsFacts::Policy(p) if p.mode().as_str() == "testing" => MtaStsOutcome::Testing,
        MtaStsFacts::Unavailable(_) => MtaStsOutcome::Unavailable,
        _ => MtaStsOutcome::NoPolicy,
    });
    match facts {
        MtaStsFacts::None => {
            ctx.log
                .line(format_args!("MID {id} MTA-STS {domain}: no policy in force ({how})"));
        }
        MtaStsFacts::Policy(p) => ctx.log.line(format_args!(
            "MID {id} MTA-STS {domain}: mode {} mx [{}] max_age {} ({how})",
            p.mode().as_str(),
            p.mx().iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
            p.max_age()
        )),
        MtaStsFacts::Unavailable(f) => ctx.log.warn(format_args!(
            "MID {id} MTA-STS {domain}: announced but unavailable ({f}); delivering as without a policy ({how})"
        )),
    }
}

impl StsState {
    /// Every cached policy (the operator's `mta-sts cache list`).
    pub(crate) fn rows(&self) -> Vec<super::StsCacheRow> {
        let Some(inner) = &self.inner else {
            return Vec::new();
        };
        let g = inner.cache.lock().unwrap_or_else(|p| p.into_inner());
        g.1.iter()
            .filter_map(|(domain, s)| {
                let p = StsPolicy::parse(s.policy.as_bytes()).ok()?;
                Some(super::StsCacheRow {
                    domain: domain.clone(),
                    id: s.id.clone(),
                    mode: p.mode().as_str().to_owned(),
                    mx: p.mx().iter().map(|m| m.to_string()).collect(),
                    max_age: p.max_age(),
                    fetched_at: s.fetched_at,
                    expires_at: s.fetched_at.saturating_add(u64::from(p.max_age())),
                })
            })
            .collect()
    }

    /// Forgets the cached policy of `domain`, or every one (memory and the
    /// file): the next delivery fetches the policy again.
    pub(crate) fn flush(&self, domain: Option<&str>) -> Result<String, String> {
        let Some(inner) = &self.inner else {
            return Err(
                "MTA-STS is disabled ([mta-sts] enabled = false): there is no cache".into(),
            );
        };
        let mut g = inner.cache.lock().unwrap_or_else(|p| p.into_inner());
        let line = match domain {
            None => {
                let n = g.1.len();
                g.1.clear();
                format!("{n} cached MTA-STS policy(ies) flushed")
            }
            Some(d) => {
                let name = DomainName::parse(d).map_err(|e| format!("{d:?}: {e}"))?;
                if g.1.remove(name.as_str()).is_none() {
                    return Err(format!("no MTA-STS policy of {name} is cached"));
                }
                format!("cached MTA-STS policy of {name} flushed")
            }
        };
        // The policy crate's cache has no removal: rebuild it from what is
        // left, the same way a start reads the file.
        let mut cache = StsCache::new();
        for (domain, s) in g.1.iter() {
            if let (Ok(name), Ok(policy)) = (
                DomainName::parse(domain),
                StsPolicy::parse(s.policy.as_bytes()),
            ) {
                cache.store(
                    name,
                    s.id.clone(),
                    policy,
                    UNIX_EPOCH + Duration::from_secs(s.fetched_at),
                );
            }
        }
        g.0 = cache;
        save(&inner.file, &g.1).map_err(|e| {
            format!(
                "{line}, but {} was not rewritten: {e}",
                inner.file.display()
            )
        })?;
        Ok(line)
    }
}

impl Inner {
    /// The `_mta-sts` record, or an error meaning "no usable record".
    async fn txt(
        &self,
        domain: &DomainName,
    ) -> Result<StsTxtRecord, portcullis_policy::MtaStsTxtError> {
        match self.resolver.mta_sts_txt(domain).await {
            Ok(records) => StsTxtRecord::select(records.iter().map(Vec::as_slice)),
            Err(_) => StsTxtRecord::select(std::iter::empty()),
        }
    }

    /// The policy another node of the cluster fetched under the same id,
    /// still valid: used as if fetched here, without a fetch.
    async fn shared_policy(
        &self,
        ctx: &Context,
        id: MessageId,
        domain: &DomainName,
        policy_id: &str,
        now: SystemTime,
    ) -> Option<MtaStsFacts> {
        let shared =
            crate::cluster::sts_cache::lookup(ctx.cluster.as_ref()?, domain.as_str(), policy_id)
                .await?;
        // Parsed again: what another node (perhaps an older build) stored
        // is not trusted more than a fetch.
        let policy = StsPolicy::parse(shared.policy.as_bytes()).ok()?;
        let fetched_at = UNIX_EPOCH + std::time::Duration::from_secs(shared.fetched_at);
        self.store(domain, policy_id, policy, &shared.policy, fetched_at);
        let facts = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .facts(domain, now);
        if matches!(facts, MtaStsFacts::None) {
            return None;
        }
        log_facts(
            ctx,
            id,
            domain,
            &facts,
            &format!(
                "from the cluster (fetched by {}), id {policy_id}",
                shared.fetched_by
            ),
        );
        Some(facts)
    }

    fn store(&self, domain: &DomainName, id: &str, policy: StsPolicy, text: &str, now: SystemTime) {
        let mut g = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        g.0.store(domain.clone(), id.to_owned(), policy, now);
        g.1.insert(
            domain.to_string(),
            Stored {
                id: id.to_owned(),
                fetched_at: unix(now),
                policy: text.to_owned(),
            },
        );
        // Expired entries need not survive a restart.
        let keep_after =
            unix(now).saturating_sub(u64::from(portcullis_policy::mta_sts::MAX_MAX_AGE));
        g.1.retain(|_, s| s.fetched_at >= keep_after);
        if let Err(e) = save(&self.file, &g.1) {
            tracing::warn!(target: "maillog", "MTA-STS cache {} not saved: {e}", self.file.display());
        }
    }
}

fn load(file: &std::path::Path) -> (StsCache, BTreeMap<String, Stored>) {
    let mut cache = StsCache::new();
    let stored: BTreeMap<String, Stored> = std::fs::read(file)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let mut kept = BTreeMap::new();
    for (domain, s) in stored {
        let (Ok(name), Ok(policy)) = (
            DomainName::parse(&domain),
            StsPolicy::parse(s.policy.as_bytes()),
        ) else {
            continue;
        };
        let at = UNIX_EPOCH + Duration::from_secs(s.fetched_at);
        cache.store(name, s.id.clone(), policy, at);
        kept.insert(domain, s);
    }
    cache.purge(SystemTime::now());
    (cache, kept)
}

fn save(file: &std::path::Path, stored: &BTreeMap<String, Stored>) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(stored).map_err(std::io::Error::other)?;
    let tmp = file.with_extension("json.tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_file_round_trip_drops_bad_entries() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cache.json");
        let now = unix(SystemTime::now());
        let mut m = BTreeMap::new();
        m.insert(
            "example.com".to_string(),
            Stored {
                id: "abc1".into(),
                fetched_at: now,
                policy: "version: STSv1\nmode: enforce\nmx: *.example.com\nmax_age: 86400\n".into(),
            },
        );
        m.insert(
            "bad.example".to_string(),
            Stored {
                id: "x".into(),
                fetched_at: now,
                policy: "garbage".into(),
            },
        );
        m.insert(
            "old.example".to_string(),
            Stored {
                id: "y".into(),
                fetched_at: 1000,
                policy: "version: STSv1\nmode: enforce\nmx: mx.old.example\nmax_age: 60\n".into(),
            },
        );
        save(&file, &m).unwrap();
        let (cache, kept) = load(&file);
        let d = DomainName::parse("example.com").unwrap();
        assert!(matches!(
            cache.facts(&d, SystemTime::now()),
            MtaStsFacts::Policy(_)
        ));
        assert_eq!(cache.get(&d).unwrap().id, "abc1");
        assert!(
            cache
                .get(&DomainName::parse("old.example").unwrap())
                .is_none()
        );
        assert!(!kept.contains_key("bad.example"));
        // A missing or corrupt file is an empty cache, not a failure.
        std::fs::write(&file, b"{not json").unwrap();
        assert!(load(&file).1.is_empty());
    }
}
