//! From a checked configuration to the engine's [`EngineSettings`]: opens
//! (or on first start creates) the certificate store under the data
//! directory, generates the demonstration certificate when a listener offers
//! STARTTLS without naming a certificate, builds the rustls server
//! configuration of each listener and the outbound trust settings, and reads
//! the system resolvers when none are configured. Any failure is reported
//! against the key that caused it.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use portcullis_certstore::{DEMO_ENTRY, Store};
use portcullis_dane::dns::ResolverSettings;
use rustls::sign::CertifiedKey;

use super::load::LoadedConfig;
use super::report::ConfigReport;
use super::source::KeyPath;
use super::validate::{self, Problem, parse_resolver, tls_settings};
use crate::engine::{
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
            s.max_errors = lc.max_errors;
            if l.offers_tls {
                let name = lc.certificate.as_deref().unwrap_or(DEMO_ENTRY);
                let entry = if name == DEMO_ENTRY {
                    store.demo_certificate(&l.hostname)
                } else {
                    store.entry(name)
                };
                let built = entry.and_then(|entry| {
                    store
                        .server_config(name, &inbound_tls)
                        .map(|cfg| (cfg, entry.demo))
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
                    match client_certificate(&store, name, &t) {
                        Ok(k) => t.client_certificate = Some(k),
                        Err(e) => problems.push((outbound_at.key("client-certificate"), e)),
                    }
                }
                Some(t)
            }
            Err(p) => {
                problems.push(p);
                None
            }
        };

        let servers = if checked.resolvers.is_empty() {
            system_resolvers(Path::new(RESOLV_CONF))
        } else {
            checked.resolvers
        };
        let dns = (!servers.is_empty()).then(|| ResolverSettings {
            servers,
            trust_anchor_file: c.dns.trust_anchor_file.clone(),
            probe_name: None,
            timeout: Duration::from_secs(c.dns.timeout_seconds.unwrap_or(5)),
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

        Ok(EngineSettings {
            hostname: c.hostname.clone(),
            listeners,
            spool_dir: c.spool_dir(),
            data_dir: c.data_dir.clone(),
            delivery,
            log_observer: None,
        })
    }
}

/// The store entry as a rustls client certificate, signed with the outbound
/// provider's key loader.
fn client_certificate(
    store: &Store,
    name: &str,
    tls: &OutboundTls,
) -> Result<Arc<CertifiedKey>, String> {
    let entry = store.entry(name).map_err(|e| e.to_string())?;
    let key = tls
        .provider
        .key_provider
        .load_private_key(entry.key.to_rustls())
        .map_err(|e| format!("certificate {name:?}: its key cannot be used: {e}"))?;
    Ok(Arc::new(CertifiedKey::new(entry.chain, key)))
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
