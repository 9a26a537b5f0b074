//! From a checked configuration to the engine's [`EngineSettings`]: opens
//! (or on first start creates) the certificate store under the data
//! directory, generates the demonstration certificate when a listener offers
//! STARTTLS without naming a certificate, builds the rustls server
//! configuration of each listener and the outbound trust settings, and reads
//! the system resolvers when none are configured. Any failure is reported
//! against the key that caused it.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use portcullis_certstore::{DEMO_ENTRY, Store};

use super::load::LoadedConfig;
use super::report::ConfigReport;
use super::source::KeyPath;
use super::validate::{self, Problem, parse_resolver, tls_settings};
use crate::settings::{
    DeliverySettings, EngineSettings, ListenerSettings, MtaStsSettings, OutboundTls, RetrySchedule,
};

const RESOLV_CONF: &str = "/etc/resolv.conf";

impl LoadedConfig {
    /// Validates and builds everything the engine needs. Creates the data
    /// and certificate store directories and the demonstration certificate
    /// when needed; changes nothing else.
    pub fn to_engine_settings(&self) -> Result<EngineSettings, ConfigReport> {
        let c = &self.config;
        let checked = validate::check(c).map_err(|p| self.report(p))?;
        let root = KeyPath::root();
        let store_dir = c.store_dir();
        let store = Store::open_or_create(&store_dir).map_err(|e| {
            self.report(vec![(
                root.key("data-dir"),
                format!("certificate store: {e}"),
            )])
        })?;
        let missing = validate::check_certificates(c, Some(&store), &store_dir);
        if !missing.is_empty() {
            return Err(self.report(missing));
        }

        let mut problems: Vec<Problem> = Vec::new();
        let inbound_tls = tls_settings(&c.tls.inbound.versions, &c.tls.inbound.cipher_suites);
        let mut listeners = Vec::new();
        for (i, (lc, l)) in c.listener.iter().zip(checked.listeners).enumerate() {
            let at = root.key("listener").index(i);
            let mut s = ListenerSettings::new(lc.name.clone(), l.address, l.access);
            s.hostname = l.hostname.clone();
            s.max_concurrency = usize::try_from(lc.max_concurrency).unwrap_or(usize::MAX);
            s.backlog = lc.backlog;
            s.idle_timeout = Duration::from_secs(lc.idle_timeout_seconds);
            s.tls_handshake_timeout = Duration::from_secs(lc.tls_handshake_timeout_seconds);
            s.data_timeout = Duration::from_secs(lc.data_timeout_seconds);
            s.session_timeout = Duration::from_secs(lc.session_timeout_seconds);
            s.postmaster = c.postmaster.clone();
            s.max_errors = lc.max_errors;
            if l.offers_tls {
                let name = lc.certificate.as_deref().unwrap_or(DEMO_ENTRY);
                let entry = if name == DEMO_ENTRY {
                    store.demo_certificate(&l.hostname)
                } else {
                    store.entry(name)
                };
                let built = entry.and_then(|entry| {
                    // The listener presents what the store holds now: a
                    // renewal or a completed rollover needs no restart.
                    store
                        .live_server_config(name, &inbound_tls)
                        .map(|(cfg, _)| (cfg, entry.demo))
                });
                match built {
                    Ok((cfg, demo)) => {
                        s.tls = Some(cfg);
                        s.demo_certificate = demo;
                    }
                    Err(e) => problems.push((at.key("certificate"), e.to_string())),
                }
            }
            listeners.push(s);
        }

        let outbound_at = root.key("tls").key("outbound");
        let outbound_settings =
            tls_settings(&c.tls.outbound.versions, &c.tls.outbound.cipher_suites);
        let outbound_tls = store
            .root_store()
            .and_then(|roots| OutboundTls::new(roots, &outbound_settings))
            .map_err(|e| (outbound_at.clone(), e.to_string()));
        let outbound_tls = match outbound_tls {
            Ok(mut t) => {
                if let Some(name) = &c.tls.outbound.client_certificate {
                    match store.client_certificate(name, &outbound_settings) {
                        Ok(k) => t.client_certificate = Some(k),
                        Err(e) => {
                            problems.push((outbound_at.key("client-certificate"), e.to_string()))
                        }
                    }
                }
                Some(t)
            }
            Err(p) => {
                problems.push(p);
                None
            }
        };

        let dns = super::dns::resolver_settings(&c.dns, checked.dns, || {
            system_resolvers(Path::new(RESOLV_CONF))
        });

        let (Some(tls), true) = (outbound_tls, problems.is_empty()) else {
            return Err(self.report(problems));
        };
        let mut delivery = DeliverySettings::new(checked.outbound, tls);
        delivery.routes = checked.routes;
        delivery.dns = dns;
        delivery.mta_sts = MtaStsSettings {
            enabled: c.mta_sts.enabled,
            fetch_timeout: Duration::from_secs(c.mta_sts.fetch_timeout_seconds),
            addresses: checked.mta_sts_addresses,
        };
        delivery.retry = RetrySchedule {
            first: Duration::from_secs(c.queue.retry_first_seconds),
            max: Duration::from_secs(c.queue.retry_max_seconds),
        };
        delivery.queue_lifetime = Duration::from_secs(c.queue.lifetime_seconds);
        delivery.max_connections =
            usize::try_from(c.delivery.max_connections).unwrap_or(usize::MAX);
        delivery.max_connections_per_destination =
            usize::try_from(c.delivery.max_connections_per_destination).unwrap_or(usize::MAX);
        delivery.mx_port = c.delivery.mx_port;
        delivery.connect_timeout = Duration::from_secs(c.delivery.connect_timeout_seconds);
        delivery.command_timeout = Duration::from_secs(c.delivery.command_timeout_seconds);
        delivery.data_timeout = Duration::from_secs(c.delivery.data_timeout_seconds);
        delivery.tls_handshake_timeout =
            Duration::from_secs(c.delivery.tls_handshake_timeout_seconds);

        Ok(EngineSettings {
            hostname: c.hostname.clone(),
            listeners,
            spool_dir: c.spool_dir(),
            spool: c.spool.options(),
            data_dir: c.data_dir.clone(),
            delivery,
            log_observer: None,
            health: checked.health,
        })
    }
}

impl LoadedConfig {
    /// The resolver settings of `[dns]` (checked; the resolv.conf servers
    /// when none are listed), for commands that ask DNS the way the gateway
    /// does. `None`: no server to ask.
    pub fn resolver_settings(
        &self,
    ) -> Result<Option<portcullis_dane::dns::ResolverSettings>, ConfigReport> {
        let checked = validate::check(&self.config).map_err(|p| self.report(p))?;
        Ok(super::dns::resolver_settings(
            &self.config.dns,
            checked.dns,
            || system_resolvers(Path::new(RESOLV_CONF)),
        ))
    }

    /// The settings of the certificate tasks (`[acme]`, `[dane]`): checked,
    /// with every entry to renew present in the store.
    pub fn to_certificate_settings(
        &self,
    ) -> Result<crate::cert_manager::CertificateSettings, ConfigReport> {
        let c = &self.config;
        let checked = validate::check(c).map_err(|p| self.report(p))?;
        let mut settings = checked.certificates;
        settings.store_dir = c.store_dir();
        if let Some(acme) = &c.acme {
            let store = Store::open_or_create(&settings.store_dir).map_err(|e| {
                self.report(vec![(
                    KeyPath::root().key("data-dir"),
                    format!("certificate store: {e}"),
                )])
            })?;
            let missing: Vec<Problem> = acme
                .certificate
                .iter()
                .enumerate()
                .filter(|(_, m)| !store.contains(&m.name))
                .map(|(i, m)| {
                    (
                        KeyPath::root().key("acme").key("certificate").index(i).key("name"),
                        format!(
                            "no certificate named {:?} in the store; obtain it once with `portcullis cert acme {} --domain {}`",
                            m.name,
                            m.name,
                            m.domains.join(" --domain ")
                        ),
                    )
                })
                .collect();
            if !missing.is_empty() {
                return Err(self.report(missing));
            }
        }
        Ok(settings)
    }
}

/// The `nameserver` lines of resolv.conf (port 53). Unreadable or empty:
/// no resolver, and only routed destinations can be delivered (the engine
/// says so when it defers).
fn system_resolvers(path: &Path) -> Vec<SocketAddr> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            match (words.next(), words.next()) {
                // A scoped IPv6 address (fe80::1%eth0) cannot be used here.
                (Some("nameserver"), Some(a)) => parse_resolver(a),
                _ => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn builtin_default_generates_the_demo_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Config::builtin_default();
        c.data_dir = dir.path().join("data");
        let s = c.to_engine_settings().unwrap();
        let l = &s.listeners[0];
        assert!(l.tls.is_some());
        assert!(
            l.demo_certificate,
            "the SPEC §1 warning depends on this flag"
        );
        assert_eq!(l.max_concurrency, 1000);
        assert_eq!(l.backlog, 50);
        assert_eq!(s.spool_dir, dir.path().join("data/spool"));
        let store = Store::open(dir.path().join("data/certs")).unwrap();
        assert!(store.entry(DEMO_ENTRY).unwrap().demo);
        // A second start reuses it.
        c.to_engine_settings().unwrap();
        assert_eq!(store.names().unwrap(), vec![DEMO_ENTRY.to_owned()]);
    }

    #[test]
    fn named_certificates_routes_and_numbers_are_mapped() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let anchor = dir.path().join("anchor.key");
        std::fs::write(&anchor, ". IN DNSKEY 257 3 8 AwEAAQ==\n").unwrap();
        let store = Store::open_or_create(data.join("certs")).unwrap();
        let req = portcullis_certstore::SelfSignedRequest::new("mx1.example.com");
        store.create_self_signed("mx1", &req).unwrap();
        let text = format!(
            r#"
            hostname = "mx1.example.com"
            data-dir = {data:?}
            [[listener]]
            name = "in"
            address = "127.0.0.1:0"
            certificate = "mx1"
            max-concurrency = 7
            rat.accept = ["example.com"]
            [[listener.hat.sender-group]]
            name = "ALL"
            match = ["ALL"]
            policy = "P"
            [listener.hat.policy.P]
            action = "accept"
            tls = "required"
            [[listener]]
            name = "plain"
            address = "127.0.0.1:0"
            rat.accept = ["example.com"]
            [[route]]
            domain = "example.com"
            hosts = ["127.0.0.1:2526", "mx.example.net"]
            [dns]
            resolvers = ["127.0.0.1:5353"]
            trust-anchor-file = {anchor:?}
            [queue]
            lifetime-seconds = 60
            retry-first-seconds = 2
            retry-max-seconds = 8
            [tls.outbound]
            client-certificate = "mx1"
            versions = ["TLSv1.3"]
            "#,
            data = data.display().to_string(),
            anchor = anchor.display().to_string(),
        );
        let s = crate::config::LoadedConfig::parse("t.toml", &text)
            .unwrap()
            .to_engine_settings()
            .unwrap();
        assert!(s.listeners[0].tls.is_some());
        assert!(!s.listeners[0].demo_certificate);
        assert_eq!(s.listeners[0].max_concurrency, 7);
        assert!(
            s.listeners[1].tls.is_none(),
            "TLS off everywhere: no certificate needed"
        );
        let d = &s.delivery;
        assert_eq!(d.routes.len(), 1);
        assert_eq!(d.routes[0].hosts.len(), 2);
        assert_eq!(d.routes[0].hosts[0].port, 2526);
        let dns = d.dns.as_ref().unwrap();
        assert_eq!(
            dns.servers,
            vec!["127.0.0.1:5353".parse::<SocketAddr>().unwrap()]
        );
        assert!(dns.trust_anchor_file.is_some());
        assert_eq!(d.queue_lifetime, Duration::from_secs(60));
        assert_eq!(d.retry.delay(10), Duration::from_secs(8));
        assert!(d.tls.client_certificate.is_some());
        assert_eq!(d.tls.versions.len(), 1);
        assert!(
            !store.contains(DEMO_ENTRY),
            "no demo certificate when none is needed"
        );
    }

    #[test]
    fn resolv_conf_parsing() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("resolv.conf");
        std::fs::write(
            &f,
            "# comment\nsearch example\nnameserver 192.0.2.53\nnameserver ::1\nnameserver fe80::1%eth0\noptions x\n",
        )
        .unwrap();
        let r = system_resolvers(&f);
        assert_eq!(
            r,
            vec![
                "192.0.2.53:53".parse::<SocketAddr>().unwrap(),
                "[::1]:53".parse().unwrap()
            ]
        );
        assert!(system_resolvers(&dir.path().join("missing")).is_empty());
    }
}
