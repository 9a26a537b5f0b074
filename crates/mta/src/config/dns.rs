//! The `[dns]` section (SPEC §6 "DNS settings"): its schema, its checks,
//! and the resolver settings built from it.
//!
//! ```toml
//! [dns]
//! resolvers = ["127.0.0.1", { address = "192.0.2.53", priority = 2 }]
//! dnssec = "validate"            # or "trust-ad"
//! trust-anchor-file = "anchors.key"
//! timeout-seconds = 5
//! [[dns.domain]]
//! name = "corp.example"
//! servers = ["10.0.0.53"]
//! insecure = true
//! ```
//!
//! Resolvers with the lowest priority are asked first, together; the next
//! priority only when none of them answered. Per-domain servers answer for
//! every name at or below their domain (split DNS).

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use portcullis_dane::dns::{DnssecMode, DomainServers, ResolverSettings};
use portcullis_policy::DomainName;
use serde::{Deserialize, Deserializer, Serialize};

use super::source::KeyPath;
use super::validate::{Problem, check_readable_file, parse_resolver};

/// DNS settings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct DnsConfig {
    /// Recursive resolvers: `IP`, `IP:port`, or `{ address = "IP[:port]",
    /// priority = N }`. Lower priorities are asked first; the servers of one
    /// priority are asked together and the next priority only when none of
    /// them answered. A plain address has priority 1. Empty: the
    /// `nameserver` lines of /etc/resolv.conf. With `dnssec = "validate"`
    /// the gateway validates answers itself, so the resolvers need not.
    #[serde(default)]
    pub resolvers: Vec<ResolverEntry>,
    /// How answers get their DNSSEC status: `validate` (default: the gateway
    /// validates them) or `trust-ad` (the resolvers validate and the gateway
    /// trusts their AD bit; only for a validating resolver on this host).
    #[serde(default, skip_serializing_if = "is_validate")]
    pub dnssec: DnssecConfig,
    /// Trust anchors instead of the built-in root keys (private or test
    /// zones): DNSKEY records (the key-signing key is enough) or DS records,
    /// zone-file syntax. Only with `dnssec = "validate"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_anchor_file: Option<PathBuf>,
    /// A signed name whose SOA must validate at start (the self-check).
    /// Default: the trust anchor file's first zone, else the root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_name: Option<String>,
    /// Per-query timeout (each priority level), also the deadline of a
    /// client's reverse lookup. Default 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    /// Other servers for some domains (split DNS).
    #[serde(default, rename = "domain", skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<DnsDomainConfig>,
}

/// `dns.dnssec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DnssecConfig {
    /// The gateway validates every answer.
    #[default]
    Validate,
    /// The resolvers validate; their AD bit is trusted.
    TrustAd,
}

fn is_validate(d: &DnssecConfig) -> bool {
    *d == DnssecConfig::Validate
}

/// One `[[dns.domain]]`: servers for the names at or below a domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct DnsDomainConfig {
    /// The domain (`corp.example`).
    pub name: String,
    /// Its servers, written like `resolvers`.
    pub servers: Vec<ResolverEntry>,
    /// Answers for this domain are not validated and count as insecure
    /// (an internal zone that is not signed). Default false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
}

/// A resolver address, with an optional priority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ResolverEntry {
    /// `"IP"` or `"IP:port"`: priority 1.
    Address(String),
    /// `{ address = "IP[:port]", priority = N }`.
    Prioritized(PrioritizedResolver),
}

/// The table form of a resolver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PrioritizedResolver {
    /// `IP` or `IP:port`.
    pub address: String,
    /// Lower is asked first. Default 1.
    #[serde(default = "first_priority")]
    pub priority: u16,
}

fn first_priority() -> u16 {
    1
}

impl ResolverEntry {
    fn address(&self) -> &str {
        match self {
            Self::Address(a) => a,
            Self::Prioritized(p) => &p.address,
        }
    }

    fn priority(&self) -> u16 {
        match self {
            Self::Address(_) => first_priority(),
            Self::Prioritized(p) => p.priority,
        }
    }
}

impl fmt::Display for ResolverEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Address(a) => f.write_str(a),
            Self::Prioritized(p) => write!(f, "{} (priority {})", p.address, p.priority),
        }
    }
}

impl From<&str> for ResolverEntry {
    fn from(a: &str) -> Self {
        Self::Address(a.to_owned())
    }
}

// A string or a table; serde's untagged enums would say only "did not match
// any variant", so each form reports its own error.
impl<'de> Deserialize<'de> for ResolverEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entry;
        impl<'de> serde::de::Visitor<'de> for Entry {
            type Value = ResolverEntry;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "an address (\"IP\" or \"IP:port\") or { address = \"IP\", priority = N }",
                )
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(ResolverEntry::Address(v.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                PrioritizedResolver::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(ResolverEntry::Prioritized)
            }
        }
        d.deserialize_any(Entry)
    }
}

/// What the checks built.
#[derive(Debug, Clone, Default)]
pub(crate) struct CheckedDns {
    /// Priority levels of the configured resolvers, lowest priority first
    /// (empty: use /etc/resolv.conf).
    pub levels: Vec<Vec<SocketAddr>>,
    pub domains: Vec<DomainServers>,
}

fn priority_levels(
    entries: &[ResolverEntry],
    at: &KeyPath,
    p: &mut Vec<Problem>,
) -> Vec<Vec<SocketAddr>> {
    let mut by_priority: BTreeMap<u16, Vec<SocketAddr>> = BTreeMap::new();
    for (i, e) in entries.iter().enumerate() {
        let here = match e {
            ResolverEntry::Address(_) => at.index(i),
            ResolverEntry::Prioritized(_) => at.index(i).key("address"),
        };
        match parse_resolver(e.address()) {
            Some(a) => by_priority.entry(e.priority()).or_default().push(a),
            None => p.push((
                here,
                format!(
                    "{:?} is not an IP address, or IP:port (127.0.0.1, 192.0.2.53:53, [2001:db8::53]:53)",
                    e.address()
                ),
            )),
        }
    }
    by_priority.into_values().collect()
}

/// Checks `[dns]`; problems carry their key paths.
pub(crate) fn check(dns: &DnsConfig, p: &mut Vec<Problem>) -> CheckedDns {
    let at = KeyPath::root().key("dns");
    let levels = priority_levels(&dns.resolvers, &at.key("resolvers"), p);
    if let Some(f) = &dns.trust_anchor_file {
        let here = at.key("trust-anchor-file");
        if dns.dnssec == DnssecConfig::TrustAd {
            p.push((
                here,
                "not used with dnssec = \"trust-ad\": the validating resolver holds the trust anchors; remove it, or set dnssec = \"validate\"".into(),
            ));
        } else if check_readable_file(f, here.clone(), p)
            && let Err(e) = portcullis_dane::dns::check_trust_anchor_file(f)
        {
            p.push((here, e.to_string()));
        }
    }
    if let Some(name) = &dns.probe_name
        && name != "."
        && let Err(e) = DomainName::parse(name.trim_end_matches('.'))
    {
        p.push((at.key("probe-name"), e.to_string()));
    }
    if dns.timeout_seconds == Some(0) {
        p.push((at.key("timeout-seconds"), "must be at least 1".into()));
    }
    let mut domains: Vec<DomainServers> = Vec::new();
    let mut seen: Vec<DomainName> = Vec::new();
    for (i, d) in dns.domains.iter().enumerate() {
        let here = at.key("domain").index(i);
        let name = match DomainName::parse(d.name.trim_end_matches('.')) {
            Ok(n) => n,
            Err(e) => {
                p.push((here.key("name"), e.to_string()));
                continue;
            }
        };
        if seen.contains(&name) {
            p.push((
                here.key("name"),
                format!("{name} has servers configured twice"),
            ));
        }
        seen.push(name.clone());
        let mut levels = priority_levels(&d.servers, &here.key("servers"), p).into_iter();
        let Some(first) = levels.next() else {
            if d.servers.is_empty() {
                p.push((here.key("servers"), "list at least one server".into()));
            }
            continue;
        };
        domains.push(DomainServers {
            domain: name.as_str().to_owned(),
            servers: first,
            fallback_servers: levels.collect(),
            insecure: d.insecure,
        });
    }
    CheckedDns { levels, domains }
}

/// The resolver settings: the checked values, with `system` (the
/// resolv.conf servers) when no resolver is configured. `None` when there
/// is no server at all.
pub(crate) fn resolver_settings(
    dns: &DnsConfig,
    checked: CheckedDns,
    system: impl FnOnce() -> Vec<SocketAddr>,
) -> Option<ResolverSettings> {
    let mut levels = checked.levels.into_iter();
    let (servers, fallback_servers) = match levels.next() {
        Some(first) => (first, levels.collect()),
        None => (system(), Vec::new()),
    };
    if servers.is_empty() {
        return None;
    }
    let mut s = ResolverSettings::new(servers);
    s.fallback_servers = fallback_servers;
    s.domains = checked.domains;
    s.dnssec = match dns.dnssec {
        DnssecConfig::Validate => DnssecMode::Validate,
        DnssecConfig::TrustAd => DnssecMode::TrustAd,
    };
    s.trust_anchor_file = dns.trust_anchor_file.clone();
    s.probe_name = dns.probe_name.clone();
    s.timeout = Duration::from_secs(dns.timeout_seconds.unwrap_or(5));
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> DnsConfig {
        #[derive(Deserialize)]
        struct Doc {
            dns: DnsConfig,
        }
        toml::from_str::<Doc>(text).unwrap().dns
    }

    #[test]
    fn priorities_make_levels_lowest_first() {
        let dns = parse(
            "[dns]\nresolvers = [\"192.0.2.1\", { address = \"192.0.2.2:5353\", priority = 3 }, { address = \"192.0.2.3\", priority = 0 }, \"192.0.2.4\"]\n",
        );
        let mut p = Vec::new();
        let checked = check(&dns, &mut p);
        assert!(p.is_empty(), "{p:?}");
        let s = resolver_settings(&dns, checked, Vec::new).unwrap();
        let a = |t: &str| t.parse::<SocketAddr>().unwrap();
        assert_eq!(s.servers, vec![a("192.0.2.3:53")]);
        assert_eq!(
            s.fallback_servers,
            vec![
                vec![a("192.0.2.1:53"), a("192.0.2.4:53")],
                vec![a("192.0.2.2:5353")]
            ]
        );
        assert_eq!(s.dnssec, DnssecMode::Validate);
        assert_eq!(dns.resolvers[1].to_string(), "192.0.2.2:5353 (priority 3)");
    }

    #[test]
    fn domains_and_trust_ad_become_resolver_settings() {
        let dns = parse(
            "[dns]\ndnssec = \"trust-ad\"\n[[dns.domain]]\nname = \"Corp.Example\"\nservers = [\"10.0.0.53\", { address = \"10.0.1.53\", priority = 2 }]\ninsecure = true\n",
        );
        let mut p = Vec::new();
        let checked = check(&dns, &mut p);
        assert!(p.is_empty(), "{p:?}");
        let system = || vec!["127.0.0.53:53".parse().unwrap()];
        let s = resolver_settings(&dns, checked, system).unwrap();
        assert_eq!(s.dnssec, DnssecMode::TrustAd);
        assert_eq!(s.servers.len(), 1, "resolv.conf when none is configured");
        let d = &s.domains[0];
        assert_eq!(d.domain, "corp.example");
        assert!(d.insecure);
        assert_eq!(d.fallback_servers.len(), 1);
        // No server anywhere: no resolver.
        assert!(
            resolver_settings(&DnsConfig::default(), CheckedDns::default(), Vec::new).is_none()
        );
    }
}
