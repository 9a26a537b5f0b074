//! Semantic checks of a configuration that parsed: every value that must be
//! a name, an address or a pattern is parsed; `policy` validates each
//! listener's HAT/RAT (open relay included) and the outbound policy; names
//! must be unique; certificate names must exist in the store. Every problem
//! is collected with its key path; nothing stops at the first.
//!
//! The result keeps what the checks built (validated access policies,
//! outbound policy, routes, addresses) so that the engine settings are made
//! from exactly what was checked.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use portcullis_certstore::{DEMO_ENTRY, Store, TlsSettings, check_entry_name};
use portcullis_policy::{
    DestinationKey, DomainName, DomainPattern, HopHost, InboundTls, ListenerAccess,
    ListenerAccessConfig, OutboundPolicy,
};

use super::schema::{Config, LOG_LEVELS, ListenerConfig};
use super::source::{KeyPath, policy_location};
use crate::settings::{RouteHost, SmtpRoute};

/// A semantic problem: where, and what.
pub(crate) type Problem = (KeyPath, String);

/// What validation built, ready for the engine settings.
#[derive(Debug, Clone)]
pub(crate) struct Checked {
    pub listeners: Vec<CheckedListener>,
    pub outbound: OutboundPolicy,
    pub routes: Vec<SmtpRoute>,
    /// The `[dns]` section, checked.
    pub dns: super::dns::CheckedDns,
    pub mta_sts_addresses: Vec<(String, SocketAddr)>,
    /// `[acme]` and `[dane]`, checked (the store directory is set later).
    pub certificates: crate::cert_manager::CertificateSettings,
    /// `[health]`, checked.
    pub health: crate::health::HealthSettings,
}

#[derive(Debug, Clone)]
pub(crate) struct CheckedListener {
    pub address: SocketAddr,
    pub hostname: String,
    pub access: ListenerAccess,
    /// Some mail flow policy offers or requires STARTTLS.
    pub offers_tls: bool,
}

fn root() -> KeyPath {
    KeyPath::root()
}

/// Runs every check that needs no file system beyond reading.
pub(crate) fn check(config: &Config) -> Result<Checked, Vec<Problem>> {
    let mut p: Vec<Problem> = Vec::new();

    if let Err(e) = DomainName::parse(&config.hostname) {
        p.push((root().key("hostname"), e.to_string()));
    }
    if let Some(pm) = &config.postmaster
        && let Err(e) = portcullis_smtp_tls::Mailbox::parse(pm)
    {
        p.push((
            root().key("postmaster"),
            format!("{pm:?} is not a mail address: {e}"),
        ));
    }
    if config.data_dir.as_os_str().is_empty() {
        p.push((root().key("data-dir"), "must not be empty".into()));
    }

    let listeners = check_listeners(config, &mut p);

    let outbound = match OutboundPolicy::from_config(&config.outbound) {
        Ok(o) => Some(o),
        Err(errors) => {
            for e in errors.0 {
                p.push((
                    policy_location(&root().key("outbound"), &e.location),
                    e.message,
                ));
            }
            None
        }
    };

    let routes = check_routes(config, &mut p);
    let dns = super::dns::check(&config.dns, &mut p);
    let mta_sts_addresses = check_mta_sts(config, &mut p);
    check_numbers(config, &mut p);
    check_tls(config, &mut p);
    check_log(config, &mut p);
    super::admin::check(config.admin.as_ref(), &mut p);
    super::sts_hosting::check(config, &mut p);
    super::tls_report_inbox::check(config, &mut p);
    super::alerts::check(config, &mut p);
    super::tls_report::check(config, &mut p);
    let certificates = super::acme::check(config.acme.as_ref(), &config.dane, &mut p);
    let health = super::health::check(&config.health, &mut p);

    match outbound {
        Some(outbound) if p.is_empty() => Ok(Checked {
            listeners,
            outbound,
            routes,
            dns,
            mta_sts_addresses,
            certificates,
            health,
        }),
        _ => Err(p),
    }
}

fn check_listeners(config: &Config, p: &mut Vec<Problem>) -> Vec<CheckedListener> {
    let mut out = Vec::new();
    if config.listener.is_empty() {
        p.push((
            root().key("listener"),
            "no listener is configured; add a [[listener]] with a name and an address".into(),
        ));
    }
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    let mut addresses: BTreeMap<SocketAddr, usize> = BTreeMap::new();
    for (i, l) in config.listener.iter().enumerate() {
        let at = root().key("listener").index(i);
        if l.name.trim().is_empty() {
            p.push((at.key("name"), "must not be empty".into()));
        } else if let Some(first) = names.insert(l.name.as_str(), i) {
            p.push((
                at.key("name"),
                format!("{:?} is already the name of listener[{first}]", l.name),
            ));
        }
        let address = match l.address.parse::<SocketAddr>() {
            Ok(a) => {
                // Port 0 asks the system for a free port: never a clash.
                if a.port() != 0
                    && let Some(first) = addresses.insert(a, i)
                {
                    p.push((
                        at.key("address"),
                        format!("{a} is already the address of listener[{first}]"),
                    ));
                }
                Some(a)
            }
            Err(_) => {
                p.push((
                    at.key("address"),
                    format!(
                        "{:?} is not an IP address and port (write 0.0.0.0:25, 127.0.0.1:2525 or [::]:25)",
                        l.address
                    ),
                ));
                None
            }
        };
        let hostname = l
            .hostname
            .clone()
            .unwrap_or_else(|| config.hostname.clone());
        if let Some(h) = &l.hostname
            && let Err(e) = DomainName::parse(h)
        {
            p.push((at.key("hostname"), e.to_string()));
        }
        if let Some(c) = &l.certificate
            && let Err(e) = check_entry_name(c)
        {
            p.push((at.key("certificate"), e.to_string()));
        }
        for (field, zero) in [
            ("max-concurrency", l.max_concurrency == 0),
            ("backlog", l.backlog == 0),
            ("idle-timeout-seconds", l.idle_timeout_seconds == 0),
            (
                "tls-handshake-timeout-seconds",
                l.tls_handshake_timeout_seconds == 0,
            ),
            ("data-timeout-seconds", l.data_timeout_seconds == 0),
            ("session-timeout-seconds", l.session_timeout_seconds == 0),
            ("max-errors", l.max_errors == 0),
        ] {
            if zero {
                p.push((at.key(field), "must be at least 1".into()));
            }
        }
        let access = match ListenerAccess::from_config(&access_config(l), &l.name) {
            Ok(a) => Some(a),
            Err(errors) => {
                // policy prefixes its locations with `listener "<name>"`.
                let prefix = format!("listener {:?}", l.name);
                for e in errors.0 {
                    let rest = e.location.strip_prefix(&prefix).unwrap_or(&e.location);
                    p.push((policy_location(&at, rest), e.message));
                }
                None
            }
        };
        if let (Some(address), Some(access)) = (address, access) {
            out.push(CheckedListener {
                address,
                hostname,
                access,
                offers_tls: offers_tls(l),
            });
        }
    }
    out
}

/// The listener's access part in `policy`'s own type.
pub(crate) fn access_config(l: &ListenerConfig) -> ListenerAccessConfig {
    ListenerAccessConfig {
        kind: l.kind,
        hat: l.hat.clone(),
        rat: l.rat.clone(),
        allow_open_relay: l.allow_open_relay,
    }
}

/// Whether any mail flow policy of the listener offers STARTTLS.
pub(crate) fn offers_tls(l: &ListenerConfig) -> bool {
    l.hat.policy.values().any(|p| p.tls != InboundTls::Off)
}

fn check_routes(config: &Config, p: &mut Vec<Problem>) -> Vec<SmtpRoute> {
    let mut out: Vec<SmtpRoute> = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (i, r) in config.route.iter().enumerate() {
        let at = root().key("route").index(i);
        let key = if r.domain.trim().eq_ignore_ascii_case("default") {
            Some(DestinationKey::Default)
        } else {
            match DomainPattern::parse(&r.domain) {
                Ok(pat) => Some(DestinationKey::Entry(pat)),
                Err(e) => {
                    p.push((at.key("domain"), e.to_string()));
                    None
                }
            }
        };
        if let Some(k) = &key
            && let Some(first) = seen.insert(k.to_string(), i)
        {
            p.push((
                at.key("domain"),
                format!("{k} already has a route (route[{first}])"),
            ));
        }
        if r.hosts.is_empty() {
            p.push((
                at.key("hosts"),
                "lists no host; a route needs at least one".into(),
            ));
        }
        let mut hosts = Vec::new();
        for (j, h) in r.hosts.iter().enumerate() {
            match parse_route_host(h) {
                Ok(h) => hosts.push(h),
                Err(e) => p.push((at.key("hosts").index(j), e)),
            }
        }
        if let Some(key) = key {
            out.push(SmtpRoute { key, hosts });
        }
    }
    out
}

/// `host`, `host:port`, `IP`, `IP:port`, `[IP]`, `[IP]:port`.
pub(crate) fn parse_route_host(text: &str) -> Result<RouteHost, String> {
    let s = text.trim();
    let bad_port = |port: &str| format!("{text:?}: port {port:?} is not a number from 1 to 65535");
    let port_of = |port: &str| -> Result<u16, String> {
        match port.parse::<u16>() {
            Ok(0) | Err(_) => Err(bad_port(port)),
            Ok(n) => Ok(n),
        }
    };
    let ip_host = |ip: IpAddr, port: u16| RouteHost {
        host: HopHost::ip(ip),
        address: Some(ip),
        port,
    };
    if let Some(rest) = s.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return Err(format!("{text:?}: missing ]"));
        };
        let ip: IpAddr = inside
            .parse()
            .map_err(|_| format!("{text:?}: {inside:?} is not an IP address"))?;
        let port = match after {
            "" => 25,
            _ => match after.strip_prefix(':') {
                Some(port) => port_of(port)?,
                None => return Err(format!("{text:?}: expected :port after ]")),
            },
        };
        return Ok(ip_host(ip, port));
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(ip_host(ip, 25));
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        if sa.port() == 0 {
            return Err(bad_port("0"));
        }
        return Ok(ip_host(sa.ip(), sa.port()));
    }
    let (name, port) = match s.rsplit_once(':') {
        Some((name, port)) => (name, port_of(port)?),
        None => (s, 25),
    };
    let name = DomainName::parse(name).map_err(|e| format!("{text:?}: {e}"))?;
    Ok(RouteHost {
        host: HopHost::Name(name),
        address: None,
        port,
    })
}

/// `IP` (port 53) or `IP:port` or `[IPv6]:port`.
pub(crate) fn parse_resolver(text: &str) -> Option<SocketAddr> {
    let s = text.trim();
    s.parse::<SocketAddr>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53)))
}

fn check_mta_sts(config: &Config, p: &mut Vec<Problem>) -> Vec<(String, SocketAddr)> {
    let at = root().key("mta-sts");
    if config.mta_sts.fetch_timeout_seconds == 0 {
        p.push((at.key("fetch-timeout-seconds"), "must be at least 1".into()));
    }
    let mut out = Vec::new();
    for (host, addr) in &config.mta_sts.addresses {
        let here = at.key("addresses").key(host);
        let name = match DomainName::parse(host) {
            Ok(n) => Some(n),
            Err(e) => {
                p.push((here.clone(), e.to_string()));
                None
            }
        };
        match addr.parse::<SocketAddr>() {
            Ok(a) => {
                if let Some(n) = name {
                    out.push((n.as_str().to_owned(), a));
                }
            }
            Err(_) => p.push((
                here,
                format!("{addr:?} is not an IP address and port (192.0.2.10:443)"),
            )),
        }
    }
    out
}

fn check_numbers(config: &Config, p: &mut Vec<Problem>) {
    let q = root().key("queue");
    let d = root().key("delivery");
    let checks = [
        (q.key("lifetime-seconds"), config.queue.lifetime_seconds),
        (
            q.key("retry-first-seconds"),
            config.queue.retry_first_seconds,
        ),
        (q.key("retry-max-seconds"), config.queue.retry_max_seconds),
        (
            d.key("max-connections"),
            u64::from(config.delivery.max_connections),
        ),
        (
            d.key("max-connections-per-destination"),
            u64::from(config.delivery.max_connections_per_destination),
        ),
        (d.key("mx-port"), u64::from(config.delivery.mx_port)),
        (
            d.key("connect-timeout-seconds"),
            config.delivery.connect_timeout_seconds,
        ),
        (
            d.key("command-timeout-seconds"),
            config.delivery.command_timeout_seconds,
        ),
        (
            d.key("data-timeout-seconds"),
            config.delivery.data_timeout_seconds,
        ),
        (
            d.key("tls-handshake-timeout-seconds"),
            config.delivery.tls_handshake_timeout_seconds,
        ),
    ];
    for (path, v) in checks {
        if v == 0 {
            p.push((path, "must be at least 1".into()));
        }
    }
    let sp = root().key("spool");
    let spool = &config.spool;
    if !(1..=1024).contains(&spool.segment_mib) {
        p.push((
            sp.key("segment-mib"),
            format!("{} is outside 1..=1024", spool.segment_mib),
        ));
    }
    if spool.min_free_percent > 50 {
        p.push((
            sp.key("min-free-percent"),
            format!(
                "{}% would refuse mail on a half-empty disk; at most 50",
                spool.min_free_percent
            ),
        ));
    }
    if spool.min_free_mib > 1 << 30 {
        p.push((
            sp.key("min-free-mib"),
            format!("{} MiB is more than any disk holds", spool.min_free_mib),
        ));
    }
    if spool.keep_damaged_mib > 1 << 30 {
        p.push((
            sp.key("keep-damaged-mib"),
            format!("{} MiB is more than any disk holds", spool.keep_damaged_mib),
        ));
    }
    if config.queue.retry_max_seconds < config.queue.retry_first_seconds {
        p.push((
            q.key("retry-max-seconds"),
            format!(
                "{} is shorter than retry-first-seconds ({})",
                config.queue.retry_max_seconds, config.queue.retry_first_seconds
            ),
        ));
    }
    // A duration this long overflows the clock arithmetic of the scheduler
    // and means "never" to any operator anyway.
    const CENTURY: u64 = 100 * 365 * 24 * 3600;
    for (path, v) in [
        (q.key("lifetime-seconds"), config.queue.lifetime_seconds),
        (q.key("retry-max-seconds"), config.queue.retry_max_seconds),
        (
            root().key("shutdown-grace-seconds"),
            config.shutdown_grace_seconds,
        ),
    ] {
        if v > CENTURY {
            p.push((path, format!("{v} seconds is more than a century")));
        }
    }
}

/// The certstore settings of a service.
pub(crate) fn tls_settings(
    versions: &[portcullis_certstore::TlsVersion],
    suites: &[String],
) -> TlsSettings {
    TlsSettings {
        versions: versions.to_vec(),
        cipher_suites: suites.to_vec(),
    }
}

fn check_tls(config: &Config, p: &mut Vec<Problem>) {
    let services = [
        (
            root().key("tls").key("inbound"),
            tls_settings(
                &config.tls.inbound.versions,
                &config.tls.inbound.cipher_suites,
            ),
        ),
        (
            root().key("tls").key("outbound"),
            tls_settings(
                &config.tls.outbound.versions,
                &config.tls.outbound.cipher_suites,
            ),
        ),
        (
            root().key("tls").key("admin"),
            tls_settings(&config.tls.admin.versions, &config.tls.admin.cipher_suites),
        ),
    ];
    for (at, settings) in services {
        if settings.versions.is_empty() {
            p.push((
                at.key("versions"),
                "no TLS version is enabled; list \"TLSv1.2\" and/or \"TLSv1.3\"".into(),
            ));
        } else if let Err(e) = settings.provider() {
            let field = if settings.cipher_suites.is_empty() {
                "versions"
            } else {
                "cipher-suites"
            };
            p.push((at.key(field), e.to_string()));
        }
    }
    if let Some(c) = &config.tls.outbound.client_certificate
        && let Err(e) = check_entry_name(c)
    {
        p.push((
            root().key("tls").key("outbound").key("client-certificate"),
            e.to_string(),
        ));
    }
}

fn check_log(config: &Config, p: &mut Vec<Problem>) {
    let at = root().key("log");
    if !LOG_LEVELS.contains(&config.log.level.to_ascii_lowercase().as_str()) {
        p.push((
            at.key("level"),
            format!(
                "{:?} is not one of {}",
                config.log.level,
                LOG_LEVELS.join(", ")
            ),
        ));
    }
    if let Some(f) = &config.log.file {
        let parent = f.parent().filter(|d| !d.as_os_str().is_empty());
        if let Some(dir) = parent
            && !dir.is_dir()
        {
            p.push((
                at.key("file"),
                format!("directory {} does not exist", dir.display()),
            ));
        }
        if f.is_dir() {
            p.push((at.key("file"), format!("{} is a directory", f.display())));
        }
    }
}

/// Whether `f` is a regular file; if not, the problem is recorded at `at`.
pub(crate) fn check_readable_file(f: &Path, at: KeyPath, p: &mut Vec<Problem>) -> bool {
    match std::fs::metadata(f) {
        Ok(m) if m.is_file() => true,
        Ok(_) => {
            p.push((at, format!("{} is not a regular file", f.display())));
            false
        }
        Err(e) => {
            p.push((at, format!("cannot read {}: {e}", f.display())));
            false
        }
    }
}

/// Checks that every certificate the configuration names exists in the
/// store. `store` is `None` when the store directory does not exist yet:
/// then only the demonstration certificate (created on first start) can be
/// used.
pub(crate) fn check_certificates(
    config: &Config,
    store: Option<&Store>,
    store_dir: &Path,
) -> Vec<Problem> {
    let mut p = Vec::new();
    for (at, name) in named_certificates(config) {
        if check_entry_name(name).is_err() {
            continue; // already reported by `check`
        }
        let exists = store.is_some_and(|s| s.contains(name));
        if exists || name == DEMO_ENTRY {
            continue;
        }
        let known = store
            .and_then(|s| s.names().ok())
            .map(|n| n.join(", "))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "none".into());
        p.push((
            at,
            match store {
                Some(_) => format!(
                    "no certificate named {name:?} in the store {} (certificates: {known}); add it with `portcullis cert create` or `cert import`",
                    store_dir.display()
                ),
                None => format!(
                    "no certificate named {name:?}: the certificate store {} does not exist yet; create the certificate with `portcullis cert create --store {}`",
                    store_dir.display(),
                    store_dir.display()
                ),
            },
        ));
    }
    p
}

/// Every certificate store entry the configuration names, with its key.
pub(crate) fn named_certificates(config: &Config) -> Vec<(KeyPath, &str)> {
    let mut named: Vec<(KeyPath, &str)> = config
        .listener
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            l.certificate
                .as_deref()
                .map(|c| (root().key("listener").index(i).key("certificate"), c))
        })
        .collect();
    if let Some(c) = &config.tls.outbound.client_certificate {
        named.push((
            root().key("tls").key("outbound").key("client-certificate"),
            c,
        ));
    }
    if let Some(c) = config.admin.as_ref().and_then(|a| a.certificate.as_deref()) {
        named.push((root().key("admin").key("certificate"), c));
    }
    named.extend(super::sts_hosting::named_certificates(
        config.mta_sts.hosting.as_ref(),
    ));
    named
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_hosts() {
        let h = parse_route_host("127.0.0.1:2526").unwrap();
        assert_eq!(
            (h.address, h.port),
            (Some("127.0.0.1".parse().unwrap()), 2526)
        );
        let h = parse_route_host("[::1]:26").unwrap();
        assert_eq!((h.address, h.port), (Some("::1".parse().unwrap()), 26));
        let h = parse_route_host("[192.0.2.1]").unwrap();
        assert_eq!(h.port, 25);
        let h = parse_route_host("::1").unwrap();
        assert_eq!(h.port, 25);
        let h = parse_route_host("MX1.Example.net:587").unwrap();
        assert_eq!(h.host.to_string(), "mx1.example.net");
        assert_eq!((h.address, h.port), (None, 587));
        let h = parse_route_host("mx.example.net").unwrap();
        assert_eq!(h.port, 25);
        for bad in [
            "mx..example",
            "mx.example:0",
            "mx.example:http",
            "[::1",
            "[x]:25",
            "[::1]x",
            "",
        ] {
            assert!(parse_route_host(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn resolvers() {
        assert_eq!(
            parse_resolver("192.0.2.1"),
            Some("192.0.2.1:53".parse().unwrap())
        );
        assert_eq!(
            parse_resolver("127.0.0.1:5353"),
            Some("127.0.0.1:5353".parse().unwrap())
        );
        assert_eq!(parse_resolver("::1"), Some("[::1]:53".parse().unwrap()));
        assert_eq!(parse_resolver("dns.example"), None);
    }
}
