//! The configuration file's schema: serde structs in kebab-case TOML that
//! refuse unknown keys. Access control and outbound policy reuse `policy`'s
//! config types as they are (`hat`, `rat`, `[outbound]`), TLS versions reuse
//! `certstore`'s, so the file and the crates an embedder uses speak the same
//! language. Every field that has a default says so; durations are whole
//! seconds in keys ending `-seconds`.
//!
//! Relative paths (`data-dir`, `log.file`, `dns.trust-anchor-file`) are taken
//! from the directory the gateway is started in.

use std::collections::BTreeMap;
use std::path::PathBuf;

use portcullis_certstore::TlsVersion;
use portcullis_policy::{HatConfig, ListenerKind, OutboundConfig, RatConfig};
use serde::{Deserialize, Serialize};

pub use super::acme::{AcmeCertificateConfig, AcmeConfig, DaneConfig};
pub use super::admin::{AdminConfig, AdminTokenConfig, Role};
pub use super::dns::{
    DnsConfig, DnsDomainConfig, DnssecConfig, PrioritizedResolver, ResolverEntry,
};

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Config {
    /// The gateway's host name: greeting, EHLO, `Received`, bounces.
    /// Default `localhost`.
    #[serde(default = "default_hostname")]
    pub hostname: String,
    /// Where mail to `<postmaster>` without a domain goes (RFC 5321 §4.5.1
    /// requires accepting it). Default: `postmaster@` the first domain the
    /// listener accepts mail for, else `postmaster@` the host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postmaster: Option<String>,
    /// Where the gateway keeps its state: `certs/` (certificate store),
    /// `spool/` (the queue), `mta-sts/` (policy cache). Default
    /// `./portcullis-data`.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// How long open sessions and deliveries may finish after SIGTERM or
    /// SIGINT. Default 30.
    #[serde(default = "default_grace")]
    pub shutdown_grace_seconds: u64,
    /// Listeners (at least one).
    #[serde(default)]
    pub listener: Vec<ListenerConfig>,
    /// Destination controls, STARTTLS lists, exemption, REQUIRETLS.
    #[serde(default)]
    pub outbound: OutboundConfig,
    /// Connection limits and timeouts of outbound delivery.
    #[serde(default)]
    pub delivery: DeliveryConfig,
    /// SMTP routes: explicit next hops instead of MX lookup.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub route: Vec<RouteConfig>,
    /// DNS resolvers and DNSSEC trust anchor.
    #[serde(default)]
    pub dns: DnsConfig,
    /// MTA-STS policy fetching.
    #[serde(default)]
    pub mta_sts: MtaStsConfig,
    /// Queue lifetime and retry schedule.
    #[serde(default)]
    pub queue: QueueConfig,
    /// Spool segment size, free-space thresholds, kept damaged files.
    #[serde(default)]
    pub spool: SpoolConfig,
    /// TLS versions and cipher suites per service.
    #[serde(default)]
    pub tls: TlsConfig,
    /// Mail log.
    #[serde(default)]
    pub log: LogConfig,
    /// The HTTPS admin listener (API, status page, metrics). Off when
    /// absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<AdminConfig>,
    /// Certificates kept renewed from an ACME CA (off when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acme: Option<AcmeConfig>,
    /// DANE key rollovers.
    #[serde(default)]
    pub dane: DaneConfig,
    /// TLS reports (RFC 8460) received about our domains (off when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_report_inbox: Option<super::tls_report_inbox::TlsReportInboxConfig>,
    /// Gauges, thresholds and resource conservation (nothing watched by
    /// default).
    #[serde(default, skip_serializing_if = "super::HealthConfig::is_default")]
    pub health: super::HealthConfig,
    /// Alerts to the operator (off when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts: Option<super::alerts::AlertsConfig>,
    /// TLS reports (RFC 8460) sent about our deliveries (off when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_report: Option<super::tls_report::TlsReportConfig>,
    /// This node's link to a cluster's shared database (local file only;
    /// off when absent: a single gateway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<super::ClusterConfig>,
}

pub(crate) fn default_hostname() -> String {
    "localhost".to_owned()
}

pub fn default_data_dir() -> PathBuf {
    PathBuf::from("./portcullis-data")
}

fn default_grace() -> u64 {
    30
}

/// One listener (SPEC §1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ListenerConfig {
    /// Unique name, used in the mail log.
    pub name: String,
    /// `IP:port` to bind (`[::1]:25` for IPv6).
    pub address: String,
    /// `public` (default) or `private`.
    #[serde(default)]
    pub kind: ListenerKind,
    /// Host name announced in the greeting; default the global `hostname`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Certificate store entry presented on STARTTLS. Unset: the built-in
    /// demonstration certificate (generated on first start; a warning is
    /// logged, it is for testing only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// Most simultaneous sessions. Default 1000.
    #[serde(default = "default_concurrency")]
    pub max_concurrency: u32,
    /// TCP listen backlog. Default 50.
    #[serde(default = "default_backlog")]
    pub backlog: u32,
    /// Session inactivity timeout: each command and each piece of message
    /// text must arrive within it. Default 300 (RFC 5321 §4.5.3.2.7).
    #[serde(default = "default_idle")]
    pub idle_timeout_seconds: u64,
    /// Longest TLS handshake after `220` to STARTTLS. Default 60.
    #[serde(default = "default_handshake")]
    pub tls_handshake_timeout_seconds: u64,
    /// Longest DATA or BDAT transfer, however busy the client keeps the
    /// line (a client sending a byte a second never meets the idle
    /// timeout). Default 1800.
    #[serde(default = "default_data_transfer")]
    pub data_timeout_seconds: u64,
    /// Longest session. Default 3600.
    #[serde(default = "default_session")]
    pub session_timeout_seconds: u64,
    /// Protocol errors tolerated before the session is closed with `421`.
    /// Default 10.
    #[serde(default = "default_max_errors")]
    pub max_errors: u32,
    /// Host access table: sender groups and mail flow policies.
    #[serde(default)]
    pub hat: HatConfig,
    /// Recipient access table.
    #[serde(default)]
    pub rat: RatConfig,
    /// Accept a public listener that relays for everyone (test rigs only).
    #[serde(default)]
    pub allow_open_relay: bool,
}

fn default_concurrency() -> u32 {
    1000
}

fn default_backlog() -> u32 {
    50
}

fn default_idle() -> u64 {
    300
}

fn default_max_errors() -> u32 {
    10
}

pub(crate) fn default_handshake() -> u64 {
    60
}

fn default_data_transfer() -> u64 {
    1800
}

fn default_session() -> u64 {
    3600
}

impl ListenerConfig {
    /// A listener with every default, on `address`.
    pub fn new(name: &str, address: &str) -> Self {
        ListenerConfig {
            name: name.to_owned(),
            address: address.to_owned(),
            kind: ListenerKind::Public,
            hostname: None,
            certificate: None,
            max_concurrency: default_concurrency(),
            backlog: default_backlog(),
            idle_timeout_seconds: default_idle(),
            tls_handshake_timeout_seconds: default_handshake(),
            data_timeout_seconds: default_data_transfer(),
            session_timeout_seconds: default_session(),
            max_errors: default_max_errors(),
            hat: HatConfig::default(),
            rat: RatConfig::default(),
            allow_open_relay: false,
        }
    }
}

/// Outbound connection limits and RFC 5321 timeouts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Most delivery connections at once. Default 100.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// Most connections to one destination domain. Default 20 (a
    /// destination entry's `max-connections` can lower it).
    #[serde(default = "default_per_destination")]
    pub max_connections_per_destination: u32,
    /// Port of MX hosts. Default 25.
    #[serde(default = "default_mx_port")]
    pub mx_port: u16,
    /// TCP connect timeout. Default 30.
    #[serde(default = "default_connect")]
    pub connect_timeout_seconds: u64,
    /// Wait for each reply (RFC 5321 §4.5.3.2: 5 minutes). Default 300.
    #[serde(default = "default_command")]
    pub command_timeout_seconds: u64,
    /// Wait for the reply to the final dot (RFC 5321: 10 minutes). Default 600.
    #[serde(default = "default_data")]
    pub data_timeout_seconds: u64,
    /// Longest TLS handshake after the server's `220` to STARTTLS.
    /// Default 60.
    #[serde(default = "default_handshake")]
    pub tls_handshake_timeout_seconds: u64,
}

fn default_max_connections() -> u32 {
    100
}

fn default_per_destination() -> u32 {
    20
}

fn default_mx_port() -> u16 {
    25
}

fn default_connect() -> u64 {
    30
}

fn default_command() -> u64 {
    300
}

fn default_data() -> u64 {
    600
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            max_connections: default_max_connections(),
            max_connections_per_destination: default_per_destination(),
            mx_port: default_mx_port(),
            connect_timeout_seconds: default_connect(),
            command_timeout_seconds: default_command(),
            data_timeout_seconds: default_data(),
            tls_handshake_timeout_seconds: default_handshake(),
        }
    }
}

/// An SMTP route (SPEC §2).
///
/// ```toml
/// [[route]]
/// domain = "example.com"          # or ".example.com", or "default"
/// hosts = ["mx1.example.net", "[192.0.2.7]:2525", "127.0.0.1:2526"]
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RouteConfig {
    /// `example.com`, `.example.com` (every domain below) or `default`.
    pub domain: String,
    /// Next hops, tried in order: `host`, `host:port`, `IP`, `IP:port`,
    /// `[IPv6]:port`. Port 25 unless given.
    pub hosts: Vec<String>,
}

/// MTA-STS (RFC 8461): fetching other domains' policies, hosting ours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct MtaStsConfig {
    /// Look up and apply MTA-STS policies. Default true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Deadline of one policy fetch. Default 60.
    #[serde(default = "default_sts_timeout")]
    pub fetch_timeout_seconds: u64,
    /// Fixed addresses (`IP:port`) for policy hosts, by host name
    /// (`"mta-sts.example.com" = "192.0.2.10:443"`): split-horizon setups.
    #[serde(default)]
    pub addresses: BTreeMap<String, String>,
    /// The policies of our own domains, served over HTTPS (off when
    /// absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosting: Option<super::sts_hosting::StsHostingConfig>,
}

fn yes() -> bool {
    true
}

fn default_sts_timeout() -> u64 {
    60
}

impl Default for MtaStsConfig {
    fn default() -> Self {
        MtaStsConfig {
            enabled: true,
            fetch_timeout_seconds: default_sts_timeout(),
            addresses: BTreeMap::new(),
            hosting: None,
        }
    }
}

/// Queue lifetime and retries (SPEC §6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct QueueConfig {
    /// A message still undelivered this long after it was received is
    /// bounced to its sender. Default 432000 (5 days).
    #[serde(default = "default_lifetime")]
    pub lifetime_seconds: u64,
    /// Delay before the first retry; each later delay doubles. Default 300.
    #[serde(default = "default_retry_first")]
    pub retry_first_seconds: u64,
    /// Longest delay between two retries. Default 3600.
    #[serde(default = "default_retry_max")]
    pub retry_max_seconds: u64,
}

fn default_lifetime() -> u64 {
    5 * 24 * 3600
}

fn default_retry_first() -> u64 {
    300
}

fn default_retry_max() -> u64 {
    3600
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            lifetime_seconds: default_lifetime(),
            retry_first_seconds: default_retry_first(),
            retry_max_seconds: default_retry_max(),
        }
    }
}

/// The spool on disk (SPEC §6 "Queue"): how big its files grow, when new
/// mail is refused for lack of space, how many damaged files are kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SpoolConfig {
    /// A segment file is closed before it grows past this many MiB (only a
    /// single larger message makes a larger one). The spool's files stay
    /// under twice the queued messages' size plus one segment. Default 8.
    #[serde(default = "default_segment_mib")]
    pub segment_mib: u64,
    /// New transactions get `452 4.3.1` at `MAIL FROM` when the spool's
    /// filesystem has less than this many MiB free... Default 64.
    #[serde(default = "default_min_free_mib")]
    pub min_free_mib: u64,
    /// ...or less than this percentage of its size, whichever is larger.
    /// Default 2.
    #[serde(default = "default_min_free_percent")]
    pub min_free_percent: u8,
    /// Torn and damaged spool files kept for inspection; beyond this count
    /// the oldest are removed (logged). Default 10.
    #[serde(default = "default_keep_damaged_files")]
    pub keep_damaged_files: u32,
    /// ...and beyond this many MiB in total. Default 64.
    #[serde(default = "default_keep_damaged_mib")]
    pub keep_damaged_mib: u64,
}

fn default_segment_mib() -> u64 {
    8
}

fn default_min_free_mib() -> u64 {
    64
}

fn default_min_free_percent() -> u8 {
    2
}

fn default_keep_damaged_files() -> u32 {
    10
}

fn default_keep_damaged_mib() -> u64 {
    64
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            segment_mib: default_segment_mib(),
            min_free_mib: default_min_free_mib(),
            min_free_percent: default_min_free_percent(),
            keep_damaged_files: default_keep_damaged_files(),
            keep_damaged_mib: default_keep_damaged_mib(),
        }
    }
}

impl SpoolConfig {
    /// The spool's options (after validation: the numbers are in range).
    pub fn options(&self) -> crate::spool::SpoolOptions {
        crate::spool::SpoolOptions {
            segment_bytes: self.segment_mib.saturating_mul(1 << 20),
            min_free_bytes: self.min_free_mib.saturating_mul(1 << 20),
            min_free_percent: self.min_free_percent,
            keep_damaged: crate::spool::Retention {
                files: self.keep_damaged_files as usize,
                bytes: self.keep_damaged_mib.saturating_mul(1 << 20),
            },
            ..crate::spool::SpoolOptions::default()
        }
    }
}

/// TLS settings per service.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TlsConfig {
    /// Inbound SMTP (STARTTLS on every listener).
    #[serde(default)]
    pub inbound: TlsServiceConfig,
    /// Outbound SMTP.
    #[serde(default)]
    pub outbound: OutboundTlsConfig,
    /// The HTTPS admin listener.
    #[serde(default)]
    pub admin: TlsServiceConfig,
}

/// Versions and cipher suites of the inbound service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TlsServiceConfig {
    /// `TLSv1.2`, `TLSv1.3`. Default both.
    #[serde(default = "default_versions")]
    pub versions: Vec<TlsVersion>,
    /// IANA/rustls names (`TLS13_AES_256_GCM_SHA384`); empty: the defaults.
    #[serde(default)]
    pub cipher_suites: Vec<String>,
}

pub(crate) fn default_versions() -> Vec<TlsVersion> {
    vec![TlsVersion::Tls12, TlsVersion::Tls13]
}

impl Default for TlsServiceConfig {
    fn default() -> Self {
        TlsServiceConfig {
            versions: default_versions(),
            cipher_suites: Vec::new(),
        }
    }
}

/// Versions, cipher suites and client certificate of outbound SMTP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct OutboundTlsConfig {
    /// `TLSv1.2`, `TLSv1.3`. Default both.
    #[serde(default = "default_versions")]
    pub versions: Vec<TlsVersion>,
    /// IANA/rustls names; empty: the defaults.
    #[serde(default)]
    pub cipher_suites: Vec<String>,
    /// Certificate store entry presented when a server asks for a client
    /// certificate (one, global). Default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<String>,
}

impl Default for OutboundTlsConfig {
    fn default() -> Self {
        OutboundTlsConfig {
            versions: default_versions(),
            cipher_suites: Vec::new(),
            client_certificate: None,
        }
    }
}

/// Mail log destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct LogConfig {
    /// `error`, `warn`, `info` (default; every mail-log line), `debug`, `trace`.
    #[serde(default = "default_level")]
    pub level: String,
    /// Append to this file instead of writing to standard error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
}

fn default_level() -> String {
    "info".to_owned()
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: default_level(),
            file: None,
        }
    }
}

/// The log levels `log.level` accepts.
pub const LOG_LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];
