//! What a [`DaneResolver`](super::DaneResolver) is built from: where queries
//! go (priority levels of servers, per-domain servers for split DNS), how
//! DNSSEC is established ([`DnssecMode`]), what is trusted, and the errors
//! a set-up can fail with. Plain values; nothing here talks to the network.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

/// How answers get their DNSSEC status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum DnssecMode {
    /// The resolver validates every answer itself, from the root keys or
    /// the configured trust anchors; the name servers only need to pass
    /// DNSSEC records through. Works with any recursive server.
    #[default]
    Validate,
    /// Trust the AD bit set by the name servers (Postfix's model): they must
    /// be validating resolvers reached over a path nobody can tamper with,
    /// normally one on the same host. No validation here, no trust anchor;
    /// a bogus answer arrives as SERVFAIL and counts as a failed lookup.
    TrustAd,
}

/// Name servers for the names at and below one domain (split DNS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainServers {
    /// The domain (`corp.example`): every name at or below it is asked here;
    /// the longest matching domain wins.
    pub domain: String,
    /// Servers asked first, together (the fastest answers).
    pub servers: Vec<SocketAddr>,
    /// Further priority levels, each asked only when no server of the levels
    /// before it answered.
    pub fallback_servers: Vec<Vec<SocketAddr>>,
    /// Answers for this domain are not validated and count as insecure: for
    /// internal zones that are not signed and have no delegation in public
    /// DNS (a validator would call them bogus).
    pub insecure: bool,
}

impl DomainServers {
    /// Servers for `domain`, one priority level, validated as usual.
    pub fn new(domain: impl Into<String>, servers: Vec<SocketAddr>) -> Self {
        Self {
            domain: domain.into(),
            servers,
            fallback_servers: Vec::new(),
            insecure: false,
        }
    }
}

/// Where to send queries and what to trust.
#[derive(Debug, Clone)]
pub struct ResolverSettings {
    /// Name servers (address and port) of the first priority level: asked
    /// together, the fastest answers. Queries go over UDP with TCP fallback.
    pub servers: Vec<SocketAddr>,
    /// Further priority levels, in order: a level is asked only when no
    /// server of the levels before it answered in time.
    pub fallback_servers: Vec<Vec<SocketAddr>>,
    /// Other servers for some domains (split DNS).
    pub domains: Vec<DomainServers>,
    /// How answers get their DNSSEC status.
    pub dnssec: DnssecMode,
    /// A file of trust anchors in zone-file syntax, used instead of the
    /// built-in root keys: DNSKEY records (the whole key set, or only the
    /// key-signing key) or DS records, for any zones. The DNSKEY RRset of
    /// each zone is validated from them before use. Only with
    /// [`DnssecMode::Validate`].
    pub trust_anchor_file: Option<PathBuf>,
    /// A signed name whose SOA must validate as secure for
    /// [`DaneResolver::self_check`](super::DaneResolver::self_check)
    /// (default: the first zone of the trust anchor file, else the root).
    pub probe_name: Option<String>,
    /// Per-query timeout (for each priority level).
    pub timeout: Duration,
}

impl ResolverSettings {
    /// Settings for the given servers (one priority level), validating from
    /// the built-in root trust anchor.
    pub fn new(servers: Vec<SocketAddr>) -> Self {
        Self {
            servers,
            fallback_servers: Vec::new(),
            domains: Vec::new(),
            dnssec: DnssecMode::Validate,
            trust_anchor_file: None,
            probe_name: None,
            timeout: Duration::from_secs(5),
        }
    }

    /// Every priority level of the default servers, first level first,
    /// empty levels dropped.
    pub(crate) fn levels(&self) -> Vec<Vec<SocketAddr>> {
        levels(&self.servers, &self.fallback_servers)
    }
}

pub(crate) fn levels(first: &[SocketAddr], rest: &[Vec<SocketAddr>]) -> Vec<Vec<SocketAddr>> {
    std::iter::once(first.to_vec())
        .chain(rest.iter().cloned())
        .filter(|level| !level.is_empty())
        .collect()
}

/// A resolver that cannot be set up.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DnsSetupError {
    /// No name server given.
    #[error("no DNS server configured for DANE lookups")]
    NoServers,
    /// A per-domain entry without servers.
    #[error("no DNS server configured for the domain {0}")]
    NoDomainServers(String),
    /// The trust anchor file is unreadable or malformed.
    #[error("DNSSEC trust anchor file {path}: {detail}")]
    TrustAnchor {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// A trust anchor file with [`DnssecMode::TrustAd`], where the name
    /// servers hold the anchors.
    #[error(
        "a DNSSEC trust anchor file is given, but DNSSEC is taken from the resolvers' AD bit (trust-ad): configure the anchor in the validating resolver instead"
    )]
    AnchorWithTrustAd,
    /// hickory refused the configuration.
    #[error("cannot start the DNS resolver: {0}")]
    Resolver(String),
    /// A name is not a valid DNS name.
    #[error("invalid DNS name {name:?}: {detail}")]
    BadName {
        /// The name.
        name: String,
        /// Parser message.
        detail: String,
    },
}

/// Result of the start-up self-check.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SelfCheck {
    /// The probe name validated as secure: DANE can be used.
    Validating,
    /// The resolver path cannot validate DNSSEC: DANE is unavailable (not
    /// silently off). The text says what is wrong and how to fix it, for
    /// the operator.
    Unavailable(String),
}

/// A lookup that is not DNSSEC-validated (MTA-STS TXT, reverse DNS) got no
/// answer: a timeout, SERVFAIL, refusal or a name that cannot be asked.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct LookupFailed(pub String);
