//! DNS for DANE (RFC 7672 §2) and everything else a mail gateway asks: MX
//! for a domain, the address records of an MX host, its TLSA RRset at
//! `_<port>._tcp.<host>` with the CNAME rules of RFC 7672 §2.2.2, and the
//! lookups that need no DNSSEC (TXT, reverse DNS, unvalidated addresses).
//!
//! One [`DaneResolver`] serves them all, from one [`ResolverSettings`]:
//! priority levels of name servers (a level is asked only when the levels
//! before it gave no answer), per-domain servers for split DNS, and one of
//! two [`DnssecMode`]s. With `Validate` (the default) hickory validates every
//! answer itself, from the root anchor or from the operator's trust anchors
//! (DNSKEY or DS records; each anchored zone's DNSKEY RRset is validated
//! from them before use, see `anchors.rs`), so nothing depends on an
//! upstream AD bit. With `TrustAd` the servers must be validating resolvers
//! on a trusted path and their AD bit decides.
//!
//! Each answer is an [`Answer`]: records wrapped in hickory's [`Proven`]
//! (secure, insecure, or indeterminate for names outside every trust
//! anchor, RFC 4035 §4.3), a denial with its [`Proof`], a bogus answer, or a
//! failed lookup. A bogus or failed TLSA lookup is never "no TLSA": the
//! caller must defer, not fall back to unauthenticated TLS.
//! [`TlsaLookup::answer`] turns into a [`TlsaFinding`](crate::TlsaFinding)
//! for a policy. [`DaneResolver::self_check`] says at start whether the
//! path to the servers lets DNSSEC work, and if not, why and what to do.

mod anchors;
mod answer;
mod backend;
mod diagnose;
mod lookup;
mod settings;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hickory_proto::dnssec::rdata::DNSKEY;
pub use hickory_proto::dnssec::{Proof, Proven};
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_resolver::TokioResolver;

pub use crate::finding::DnssecStatus;
use crate::set::TlsaSet;
use anchors::Anchors;
pub use answer::Answer;
pub use settings::{
    DnsSetupError, DnssecMode, DomainServers, LookupFailed, ResolverSettings, SelfCheck,
};

/// The pure classification functions behind [`Answer`], for embedders with
/// their own transport (and for the fuzz target).
pub mod classify {
    pub use super::answer::{
        ad_response, address_records, combine_addresses, mx_records, tlsa_records, txt_records,
        unvalidated, validated, weaker,
    };
}

/// The TLSA RRset for one MX host, with the names RFC 7672 §3.2.2 says a
/// DANE-TA certificate may carry.
#[derive(Debug)]
pub struct TlsaLookup {
    /// The TLSA answer.
    pub answer: Answer<TlsaSet>,
    /// The name the TLSA records were looked up under (without `_port._tcp.`):
    /// the CNAME-expanded host name when the expansion was secure.
    pub base_domain: String,
    /// Reference names for DANE-TA: the MX host name and the TLSA base domain.
    pub reference_names: Vec<String>,
    /// The TTL of the TLSA RRset as the servers gave it (the lowest of its
    /// records; a cached answer counts down), `None` without records. A key
    /// rollover waits for twice this before serving a newly published key.
    pub ttl: Option<u32>,
    /// DNSSEC status of the host's address lookup (with CNAME expansion).
    /// RFC 7672 §2.2: TLSA records only apply when this is secure; callers
    /// must treat anything else as "no DANE" for this host (or defer when
    /// it is bogus or failed).
    pub address_status: DnssecStatus,
}

/// Servers of one priority level and the resolvers that ask them.
#[derive(Clone)]
struct Level {
    servers: Vec<std::net::SocketAddr>,
    /// Validating resolver (`Validate` mode, not an insecure domain).
    validating: Option<TokioResolver>,
    /// Non-validating resolver: lookups that need no DNSSEC, and names
    /// outside the trust anchors.
    plain: TokioResolver,
}

/// Where the names of one domain (or all others) are asked.
#[derive(Clone)]
struct Route {
    levels: Vec<Level>,
    insecure: bool,
}

impl Route {
    fn servers(&self) -> Vec<Vec<std::net::SocketAddr>> {
        self.levels.iter().map(|l| l.servers.clone()).collect()
    }
}

#[derive(Clone)]
struct Routes {
    default: Route,
    /// Longest domain first.
    domains: Vec<(Name, Route)>,
}

impl Routes {
    fn for_name(&self, name: &Name) -> &Route {
        self.domains
            .iter()
            .find(|(d, _)| d.zone_of(name))
            .map_or(&self.default, |(_, r)| r)
    }
}

/// Validated DNSKEY RRsets of the anchored zones, and when to check again.
#[derive(Clone, Default)]
struct Priming {
    keys: BTreeMap<Name, Vec<DNSKEY>>,
    /// `None`: never primed (or flushed); prime before the next query.
    until: Option<Instant>,
    last_attempt: Option<Instant>,
    /// Why a zone could not be primed, for the self-check.
    problems: Vec<String>,
}

struct State {
    routes: Routes,
    priming: Priming,
}

struct Shared {
    settings: ResolverSettings,
    anchors: Anchors,
    probe: Name,
    domains: Vec<(Name, DomainServers)>,
    state: RwLock<Arc<State>>,
    priming: tokio::sync::Mutex<()>,
}

/// A DNS resolver for a mail gateway, DNSSEC-aware (tokio). Cheap to clone;
/// clones share caches and state.
#[derive(Clone)]
pub struct DaneResolver {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for DaneResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DaneResolver")
            .field("dnssec", &self.shared.settings.dnssec)
            .field("probe", &self.shared.probe)
            .finish_non_exhaustive()
    }
}

fn parse_name(name: &str) -> Result<Name, DnsSetupError> {
    let fqdn = if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    };
    Name::from_ascii(&fqdn)
        .map(|n| n.to_lowercase())
        .map_err(|e| DnsSetupError::BadName {
            name: name.to_string(),
            detail: e.to_string(),
        })
}

/// hickory 0.26 re-checks nothing on its own; re-validate a primed key set
/// at least this often, and retry a failed priming after the short delay.
const PRIME_MAX: Duration = Duration::from_secs(3600);
const PRIME_MIN: Duration = Duration::from_secs(60);
const PRIME_RETRY: Duration = Duration::from_secs(30);

fn unix_now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
        .unwrap_or(0)
}

/// Reads a trust anchor file the way [`DaneResolver::new`] will, without
/// building anything (configuration checks).
pub fn check_trust_anchor_file(path: &std::path::Path) -> Result<(), DnsSetupError> {
    Anchors::from_file(path).map(|_| ())
}

impl DaneResolver {
    /// Builds the resolver. Nothing is sent yet: anchored zones are primed
    /// at the first lookup. Must be called within a tokio runtime.
    pub fn new(settings: &ResolverSettings) -> Result<Self, DnsSetupError> {
        if settings.levels().is_empty() {
            return Err(DnsSetupError::NoServers);
        }
        let anchors = match (&settings.trust_anchor_file, settings.dnssec) {
            (None, _) => Anchors::BuiltinRoot,
            (Some(_), DnssecMode::TrustAd) => return Err(DnsSetupError::AnchorWithTrustAd),
            (Some(path), DnssecMode::Validate) => Anchors::from_file(path)?,
        };
        let mut domains = Vec::new();
        for d in &settings.domains {
            if settings::levels(&d.servers, &d.fallback_servers).is_empty() {
                return Err(DnsSetupError::NoDomainServers(d.domain.clone()));
            }
            domains.push((parse_name(&d.domain)?, d.clone()));
        }
        domains.sort_by_key(|(n, _)| std::cmp::Reverse(n.num_labels()));
        let probe = match &settings.probe_name {
            Some(p) => parse_name(p)?,
            None => anchors.probe_zone(),
        };
        let mut shared = Shared {
            settings: settings.clone(),
            anchors,
            probe,
            domains,
            state: RwLock::new(Arc::new(State {
                routes: Routes {
                    default: Route {
                        levels: Vec::new(),
                        insecure: false,
                    },
                    domains: Vec::new(),
                },
                priming: Priming::default(),
            })),
            priming: tokio::sync::Mutex::new(()),
        };
        let routes = shared.build_routes(&BTreeMap::new())?;
        shared.state = RwLock::new(Arc::new(State {
            routes,
            priming: Priming::default(),
        }));
        Ok(Self {
            shared: Arc::new(shared),
        })
    }

    /// How answers get their DNSSEC status.
    pub fn dnssec_mode(&self) -> DnssecMode {
        self.shared.settings.dnssec
    }

    /// The name [`self_check`](Self::self_check) asks about.
    pub fn probe_name(&self) -> String {
        self.shared.probe.to_ascii()
    }

    /// Drops every cached answer and validation result, and re-validates the
    /// anchored zones' keys at the next lookup. Must be called within a
    /// tokio runtime.
    pub fn flush_cache(&self) -> Result<(), DnsSetupError> {
        let current = self.snapshot();
        let routes = self.shared.build_routes(&current.priming.keys)?;
        let priming = Priming {
            until: None,
            ..current.priming.clone()
        };
        self.replace(State { routes, priming });
        Ok(())
    }

    /// Checks that answers from the configured path validate: the probe
    /// name's SOA must come back secure. Run it at start-up; if it fails,
    /// the text says what is wrong and the fix.
    pub async fn self_check(&self) -> SelfCheck {
        let probe = self.shared.probe.clone();
        let answer = self.lookup(&probe, RecordType::SOA).await;
        if answer.status() == DnssecStatus::Secure {
            return SelfCheck::Validating;
        }
        SelfCheck::Unavailable(self.diagnose(&answer).await)
    }

    /// MX records of `domain`, sorted by preference.
    pub async fn mx(&self, domain: &str) -> Result<Answer<Vec<(u16, String)>>, DnsSetupError> {
        let name = parse_name(domain)?;
        Ok(self
            .lookup(&name, RecordType::MX)
            .await
            .map(|r| classify::mx_records(&r)))
    }

    /// IPv4 and IPv6 addresses of `host`, with the final name after CNAME
    /// expansion. The proof is the weaker of the two lookups.
    pub async fn addresses(
        &self,
        host: &str,
    ) -> Result<Answer<(String, Vec<IpAddr>)>, DnsSetupError> {
        let name = parse_name(host)?;
        let v4 = self.lookup(&name, RecordType::A).await;
        let v6 = self.lookup(&name, RecordType::AAAA).await;
        Ok(classify::combine_addresses(&name, v4, v6))
    }

    /// TLSA records for an MX host (RFC 7672 §2.2.2): when the host's
    /// address records were reached through a secure CNAME chain, the TLSA
    /// base domain is the expanded name, and the original name is tried if
    /// the expanded one has no TLSA records.
    pub async fn tlsa(&self, host: &str, port: u16) -> Result<TlsaLookup, DnsSetupError> {
        let original = parse_name(host)?;
        let mut base = original.clone();
        let mut addr = self.lookup(&original, RecordType::A).await;
        if matches!(addr, Answer::NoRecords { .. }) {
            addr = self.lookup(&original, RecordType::AAAA).await;
        }
        let address_status = addr.status();
        if let Answer::Records(p) = addr
            && p.proof().is_secure()
        {
            let (_, records) = p.into_parts();
            if let Some(r) = records
                .iter()
                .find(|r| matches!(r.data, RData::A(_) | RData::AAAA(_)))
            {
                base = r.name.to_lowercase();
            }
        }
        let (mut answer, mut ttl) = self.tlsa_at(&base, port).await?;
        if base != original && matches!(answer, Answer::NoRecords { .. }) {
            (answer, ttl) = self.tlsa_at(&original, port).await?;
            base = original.clone();
        }
        let trim = |n: &Name| n.to_ascii().trim_end_matches('.').to_string();
        let mut reference_names = vec![trim(&original)];
        if base != original {
            reference_names.push(trim(&base));
        }
        Ok(TlsaLookup {
            answer,
            base_domain: trim(&base),
            reference_names,
            ttl,
            address_status,
        })
    }

    async fn tlsa_at(
        &self,
        base: &Name,
        port: u16,
    ) -> Result<(Answer<TlsaSet>, Option<u32>), DnsSetupError> {
        let name = parse_name(&format!("_{port}._tcp.{}", base.to_ascii()))?;
        let mut ttl = None;
        let answer = self.lookup(&name, RecordType::TLSA).await.map(|r| {
            ttl = r
                .iter()
                .filter(|r| r.record_type() == RecordType::TLSA)
                .map(|r| r.ttl)
                .min();
            classify::tlsa_records(&r)
        });
        Ok((answer, ttl))
    }

    /// TXT records of `name` (each record's strings joined), not validated
    /// (MTA-STS discovery needs no DNSSEC). No records: an empty list.
    pub async fn txt(&self, name: &str) -> Result<Vec<Vec<u8>>, LookupFailed> {
        let name = parse_name(name).map_err(|e| LookupFailed(e.to_string()))?;
        let records = self.plain(&name, RecordType::TXT).await?;
        Ok(classify::txt_records(&records))
    }

    /// The PTR names of `ip`, not validated (for forward-confirmed reverse
    /// DNS, where the forward lookup is the proof).
    pub async fn reverse(&self, ip: IpAddr) -> Result<Vec<String>, LookupFailed> {
        let records = self.plain(&Name::from(ip), RecordType::PTR).await?;
        Ok(records
            .iter()
            .filter_map(|r| match &r.data {
                RData::PTR(p) => Some(p.0.to_ascii()),
                _ => None,
            })
            .collect())
    }

    /// IPv4 and IPv6 addresses of `host`, not validated.
    pub async fn unvalidated_addresses(&self, host: &str) -> Result<Vec<IpAddr>, LookupFailed> {
        let name = parse_name(host).map_err(|e| LookupFailed(e.to_string()))?;
        let mut ips = Vec::new();
        for rtype in [RecordType::A, RecordType::AAAA] {
            ips.extend(classify::address_records(&self.plain(&name, rtype).await?).1);
        }
        Ok(ips)
    }
}
