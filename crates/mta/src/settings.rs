//! The engine's settings: plain, already-validated values. The `config`
//! module builds them from the TOML file; tests and embedders build them
//! directly. Everything else in the crate reads them; nothing here starts
//! anything.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use portcullis_policy::{DestinationKey, HopHost, ListenerAccess, OutboundPolicy};
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;

use crate::maillog::LogObserver;
use crate::spool::SpoolOptions;

/// Everything the engine needs.
#[derive(Clone)]
pub struct EngineSettings {
    /// The gateway's host name: `Received` headers, the EHLO of outbound
    /// connections, the reporting MTA of bounces.
    pub hostname: String,
    /// Listeners, each bound at start.
    pub listeners: Vec<ListenerSettings>,
    /// The spool directory (created if missing).
    pub spool_dir: PathBuf,
    /// Segment size, free-space thresholds, kept damaged files.
    pub spool: SpoolOptions,
    /// The data directory (MTA-STS policy cache; created if missing).
    pub data_dir: PathBuf,
    /// Outbound delivery.
    pub delivery: DeliverySettings,
    /// Also hands every mail-log line to this observer (tests, admin).
    pub log_observer: Option<LogObserver>,
    /// Gauges, thresholds and resource conservation (`[health]`).
    pub health: crate::health::HealthSettings,
}

impl std::fmt::Debug for EngineSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineSettings")
            .field("hostname", &self.hostname)
            .field("listeners", &self.listeners)
            .field("spool_dir", &self.spool_dir)
            .field("spool", &self.spool)
            .field("data_dir", &self.data_dir)
            .field("delivery", &self.delivery)
            .field("health", &self.health)
            .finish_non_exhaustive()
    }
}

/// One listener.
#[derive(Clone, Debug)]
pub struct ListenerSettings {
    /// Name, for the log and error messages.
    pub name: String,
    /// Bind address (port 0 picks a free port: see [`Engine::local_addrs`](crate::engine::Engine::local_addrs)).
    pub address: SocketAddr,
    /// The host name announced in the greeting and EHLO reply.
    pub hostname: String,
    /// HAT, RAT and kind, validated together.
    pub access: ListenerAccess,
    /// The certificate presented on STARTTLS. `None` means STARTTLS cannot
    /// be offered: sender groups with TLS `preferred` get no STARTTLS, and
    /// `required` groups are refused with `421 4.7.0` at connect, both logged.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The certificate is the built-in demonstration certificate: log the
    /// SPEC §1 warning at start.
    pub demo_certificate: bool,
    /// Most simultaneous sessions on this listener (default 1000).
    pub max_concurrency: usize,
    /// TCP listen backlog (default 50).
    pub backlog: u32,
    /// Inactivity timeout of a session (RFC 5321 §4.5.3.2.7: at least 5
    /// minutes; default 300 s).
    pub idle_timeout: Duration,
    /// Longest TLS handshake after STARTTLS (default 60 s).
    pub tls_handshake_timeout: Duration,
    /// Longest DATA or BDAT transfer (default 30 minutes).
    pub data_timeout: Duration,
    /// Longest session (default 1 hour).
    pub session_timeout: Duration,
    /// Where mail to `<postmaster>` (no domain) goes: an address this
    /// listener accepts or relays. `None`: `postmaster@` the first RAT
    /// domain, else `postmaster@` the listener's host name.
    pub postmaster: Option<String>,
    /// Errors tolerated before `421` (default 10).
    pub max_errors: u32,
}

impl ListenerSettings {
    /// A listener with the defaults of SPEC §1 and no TLS certificate.
    pub fn new(name: impl Into<String>, address: SocketAddr, access: ListenerAccess) -> Self {
        ListenerSettings {
            name: name.into(),
            address,
            hostname: "localhost".into(),
            access,
            tls: None,
            demo_certificate: false,
            max_concurrency: 1000,
            backlog: 50,
            idle_timeout: Duration::from_secs(300),
            tls_handshake_timeout: Duration::from_secs(60),
            data_timeout: Duration::from_secs(30 * 60),
            session_timeout: Duration::from_secs(3600),
            postmaster: None,
            max_errors: 10,
        }
    }
}

/// Outbound delivery settings.
#[derive(Clone, Debug)]
pub struct DeliverySettings {
    /// Destination table, STARTTLS lists, exemption, REQUIRETLS rules.
    pub policy: OutboundPolicy,
    /// SMTP routes: the first route whose key matches the recipient domain
    /// (most specific first, `Default` last) replaces the MX lookup.
    pub routes: Vec<SmtpRoute>,
    /// Trust roots, protocol versions, client certificate.
    pub tls: OutboundTls,
    /// DNSSEC-validating resolver for MX/address/TLSA lookups. Without one,
    /// only destinations with an SMTP route can be delivered.
    pub dns: Option<portcullis_dane::dns::ResolverSettings>,
    /// MTA-STS.
    pub mta_sts: MtaStsSettings,
    /// Retry schedule.
    pub retry: RetrySchedule,
    /// How long a message may stay queued before it is bounced (default 5 days).
    pub queue_lifetime: Duration,
    /// Most deliveries (connections) in flight at once.
    pub max_connections: usize,
    /// Most connections in flight to one destination domain.
    pub max_connections_per_destination: usize,
    /// SMTP port for MX hosts (25; tests on loopback change it).
    pub mx_port: u16,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Timeout for each reply to a command (RFC 5321 §4.5.3.2: 5 minutes).
    pub command_timeout: Duration,
    /// Timeout for the reply to the final dot (RFC 5321: 10 minutes).
    pub data_timeout: Duration,
    /// Longest TLS handshake after the server's `220` to STARTTLS.
    pub tls_handshake_timeout: Duration,
}

impl DeliverySettings {
    /// Defaults around the given policy and trust settings: no routes, no
    /// DNS, MTA-STS off, 5-minute first retry doubling up to 1 hour, 5-day
    /// lifetime, 100 connections (at most 50 per destination; the destination
    /// entry's `max-connections` applies below that), port 25.
    pub fn new(policy: OutboundPolicy, tls: OutboundTls) -> Self {
        DeliverySettings {
            policy,
            routes: Vec::new(),
            tls,
            dns: None,
            mta_sts: MtaStsSettings::default(),
            retry: RetrySchedule::default(),
            queue_lifetime: Duration::from_secs(5 * 24 * 3600),
            max_connections: 100,
            max_connections_per_destination: 50,
            mx_port: 25,
            connect_timeout: Duration::from_secs(30),
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(600),
            tls_handshake_timeout: Duration::from_secs(60),
        }
    }
}

/// Explicit next hops for a domain (SPEC §2, "SMTP routes").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmtpRoute {
    /// `example.com`, `.example.com` or `Default` (every other domain).
    pub key: DestinationKey,
    /// Hosts, tried in order.
    pub hosts: Vec<RouteHost>,
}

/// One host of an SMTP route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteHost {
    /// A host name (the TLS reference identity) or an address literal.
    pub host: HopHost,
    /// Where to connect. When `None` and `host` is a name, the name is
    /// resolved (with the DNSSEC resolver if configured, else the system's).
    pub address: Option<IpAddr>,
    /// Port.
    pub port: u16,
}

/// Trust settings for outbound TLS.
#[derive(Clone)]
pub struct OutboundTls {
    /// The enabled CA lists (certstore `Store::root_store`).
    pub roots: Arc<RootCertStore>,
    /// The aws-lc-rs provider, restricted to the configured cipher suites
    /// (certstore `TlsSettings::provider`).
    pub provider: Arc<CryptoProvider>,
    /// Protocol versions offered.
    pub versions: Vec<&'static rustls::SupportedProtocolVersion>,
    /// The global client certificate, presented when a server asks.
    pub client_certificate: Option<Arc<CertifiedKey>>,
}

impl std::fmt::Debug for OutboundTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundTls")
            .field("roots", &self.roots.len())
            .field("versions", &self.versions)
            .field("client_certificate", &self.client_certificate.is_some())
            .finish()
    }
}

impl OutboundTls {
    /// From certstore's TLS settings (versions, cipher suites) and roots.
    pub fn new(
        roots: RootCertStore,
        settings: &portcullis_certstore::TlsSettings,
    ) -> Result<Self, portcullis_certstore::Error> {
        let versions = settings.protocol_versions()?;
        Ok(OutboundTls {
            roots: Arc::new(roots),
            provider: settings.provider()?,
            versions,
            client_certificate: None,
        })
    }
}

/// MTA-STS settings.
#[derive(Clone, Debug)]
pub struct MtaStsSettings {
    /// Look up and apply MTA-STS policies (per destination, the destination
    /// table's `mta-sts` switch also applies).
    pub enabled: bool,
    /// Deadline of one policy fetch.
    pub fetch_timeout: Duration,
    /// Fixed addresses for `mta-sts.<domain>` hosts (split horizon, tests).
    pub addresses: Vec<(String, SocketAddr)>,
}

impl Default for MtaStsSettings {
    fn default() -> Self {
        MtaStsSettings {
            enabled: false,
            fetch_timeout: Duration::from_secs(60),
            addresses: Vec::new(),
        }
    }
}

/// When to retry a deferred message: `first`, then doubling, at most `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetrySchedule {
    /// Delay before the first retry.
    pub first: Duration,
    /// Longest delay between retries.
    pub max: Duration,
}

impl Default for RetrySchedule {
    /// 5 minutes, doubling up to 1 hour.
    fn default() -> Self {
        RetrySchedule {
            first: Duration::from_secs(300),
            max: Duration::from_secs(3600),
        }
    }
}

impl RetrySchedule {
    /// The delay after `attempts` failed attempts (1 = the first failure).
    pub fn delay(&self, attempts: u32) -> Duration {
        let shift = attempts.saturating_sub(1).min(20);
        self.first
            .checked_mul(1u32 << shift)
            .unwrap_or(self.max)
            .min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_doubles_up_to_max() {
        let r = RetrySchedule {
            first: Duration::from_secs(60),
            max: Duration::from_secs(300),
        };
        assert_eq!(r.delay(1), Duration::from_secs(60));
        assert_eq!(r.delay(2), Duration::from_secs(120));
        assert_eq!(r.delay(3), Duration::from_secs(240));
        assert_eq!(r.delay(4), Duration::from_secs(300));
        assert_eq!(r.delay(u32::MAX), Duration::from_secs(300));
    }
}
