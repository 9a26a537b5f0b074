//! The built-in default configuration: what `portcullis run` uses without
//! `--config`. It works on a fresh machine without root: one listener on
//! 127.0.0.1:2525 offering STARTTLS with the demonstration certificate
//! (generated on first start; a warning says it is for testing only), mail
//! accepted for `example.com` (the README walk-through), relaying only for
//! clients on 127.0.0.0/8 (a private listener on loopback: not an open
//! relay), the HTTPS admin listener on loopback with a free port (found by
//! `portcullis ctl` in the data directory), and everything kept under
//! `./portcullis-data`.

use super::schema::DaneConfig;
use std::collections::BTreeMap;

use portcullis_policy::{
    ConnectionAction, HatConfig, InboundTls, ListenerKind, MailFlowPolicyConfig, OutboundConfig,
    RatConfig, SenderGroupConfig,
};

use super::schema::{
    Config, DeliveryConfig, DnsConfig, ListenerConfig, LogConfig, MtaStsConfig, QueueConfig,
    SpoolConfig, TlsConfig, default_data_dir, default_hostname,
};

/// Address of the default listener.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:2525";

/// Name of the default listener.
pub const DEFAULT_LISTENER: &str = "loopback";

fn policy(action: ConnectionAction) -> MailFlowPolicyConfig {
    MailFlowPolicyConfig {
        action,
        tls: InboundTls::Preferred,
        max_message_size: None,
        max_recipients_per_message: None,
        max_connections_per_host: None,
    }
}

impl Config {
    /// The built-in default (see the module documentation).
    pub fn builtin_default() -> Config {
        let mut policies = BTreeMap::new();
        policies.insert("RELAYED".to_owned(), policy(ConnectionAction::Relay));
        policies.insert("ACCEPTED".to_owned(), policy(ConnectionAction::Accept));
        let mut listener = ListenerConfig::new(DEFAULT_LISTENER, DEFAULT_LISTEN);
        listener.kind = ListenerKind::Private;
        listener.hat = HatConfig {
            sender_group: vec![
                SenderGroupConfig {
                    name: "LOOPBACK".to_owned(),
                    patterns: vec!["127.0.0.0/8".to_owned()],
                    policy: "RELAYED".to_owned(),
                },
                SenderGroupConfig {
                    name: "ALL".to_owned(),
                    patterns: vec!["ALL".to_owned()],
                    policy: "ACCEPTED".to_owned(),
                },
            ],
            policy: policies,
        };
        listener.rat = RatConfig {
            accept: vec!["example.com".to_owned()],
        };
        Config {
            hostname: default_hostname(),
            postmaster: None,
            data_dir: default_data_dir(),
            shutdown_grace_seconds: 30,
            listener: vec![listener],
            outbound: OutboundConfig::default(),
            delivery: DeliveryConfig::default(),
            route: Vec::new(),
            dns: DnsConfig::default(),
            mta_sts: MtaStsConfig::default(),
            queue: QueueConfig::default(),
            spool: SpoolConfig::default(),
            tls: TlsConfig::default(),
            log: LogConfig::default(),
            admin: Some(super::admin::AdminConfig::loopback()),
            acme: None,
            dane: DaneConfig::default(),
            tls_report_inbox: None,
            health: Default::default(),
            alerts: None,
            tls_report: None,
            cluster: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::validate::check;

    #[test]
    fn default_is_valid_and_not_an_open_relay() {
        let c = Config::builtin_default();
        let checked = check(&c).unwrap();
        let l = &checked.listeners[0];
        assert!(l.offers_tls);
        assert_eq!(l.address.to_string(), DEFAULT_LISTEN);
        let local = portcullis_policy::ClientFacts {
            ip: "127.0.0.1".parse().unwrap(),
            fcrdns: None,
        };
        let remote = portcullis_policy::ClientFacts {
            ip: "192.0.2.1".parse().unwrap(),
            fcrdns: None,
        };
        let m = l.access.connect(&local);
        assert_eq!(
            l.access.recipient(&m, "anywhere.example"),
            portcullis_policy::RcptVerdict::Relay
        );
        let m = l.access.connect(&remote);
        assert!(matches!(
            l.access.recipient(&m, "anywhere.example"),
            portcullis_policy::RcptVerdict::Refuse { .. }
        ));
        assert_eq!(
            l.access.recipient(&m, "example.com"),
            portcullis_policy::RcptVerdict::Accept
        );
    }

    #[test]
    fn default_round_trips_through_toml() {
        let c = Config::builtin_default();
        let text = toml::to_string(&c).unwrap();
        let back = crate::config::LoadedConfig::parse("x", &text).unwrap();
        assert_eq!(back.config, c);
    }
}
