//! The host access table: an ordered list of sender groups, each mapping the
//! clients it matches to a mail flow policy (connection action, inbound TLS
//! setting, limits). The first matching group wins; a client no group
//! matches is rejected, so a HAT fails closed. Config types are serde
//! (kebab-case TOML); [`Hat::from_config`] validates them into the matcher.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::sender_pattern::{ClientFacts, SenderPattern};

/// What happens to a connection from a matching client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ConnectionAction {
    /// Accept mail for the listener's RAT domains.
    Accept,
    /// Accept mail for any recipient (an internal or authorised client).
    Relay,
    /// Answer the greeting with `554` and accept nothing.
    Reject,
    /// Close the TCP connection without a greeting.
    TcpRefuse,
}

/// The inbound STARTTLS setting of a mail flow policy (SPEC §1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InboundTls {
    /// STARTTLS is not offered (every listener's default).
    #[default]
    Off,
    /// STARTTLS is offered; cleartext sessions still work.
    Preferred,
    /// STARTTLS is offered and required before any mail command (`530 5.7.0`).
    Required,
}

/// Limits of a mail flow policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct InboundLimits {
    /// Largest message accepted, in bytes (advertised with `SIZE`).
    pub max_message_size: u64,
    /// Most `RCPT TO` accepted per message.
    pub max_recipients_per_message: u32,
    /// Most simultaneous connections from one client address.
    pub max_connections_per_host: u32,
}

impl InboundLimits {
    /// Defaults: 10 MiB, 1000 recipients, 10 connections per host.
    pub const DEFAULT: InboundLimits = InboundLimits {
        max_message_size: 10 * 1024 * 1024,
        max_recipients_per_message: 1000,
        max_connections_per_host: 10,
    };
}

impl Default for InboundLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A mail flow policy after validation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct MailFlowPolicy {
    /// Connection behaviour.
    pub action: ConnectionAction,
    /// STARTTLS setting.
    pub tls: InboundTls,
    /// Limits.
    pub limits: InboundLimits,
}

impl MailFlowPolicy {
    /// The policy applied when no sender group matches: reject.
    pub const UNLISTED: MailFlowPolicy = MailFlowPolicy {
        action: ConnectionAction::Reject,
        tls: InboundTls::Off,
        limits: InboundLimits::DEFAULT,
    };
}

/// A mail flow policy as written in config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct MailFlowPolicyConfig {
    /// accept, relay, reject or tcp-refuse.
    pub action: ConnectionAction,
    /// off (default), preferred or required.
    #[serde(default)]
    pub tls: InboundTls,
    /// Bytes; default 10485760.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_message_size: Option<u64>,
    /// Default 1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_recipients_per_message: Option<u32>,
    /// Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections_per_host: Option<u32>,
}

/// A sender group as written in config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SenderGroupConfig {
    /// Unique name, used in logs (`RELAYLIST`).
    pub name: String,
    /// Patterns: see [`SenderPattern::parse`].
    #[serde(rename = "match")]
    pub patterns: Vec<String>,
    /// Name of a policy in `policy`.
    pub policy: String,
}

/// A HAT as written in config.
///
/// ```toml
/// [[sender-group]]
/// name = "RELAYLIST"
/// match = ["10.0.0.0/8", ".corp.example"]
/// policy = "RELAYED"
///
/// [[sender-group]]
/// name = "ALL"
/// match = ["ALL"]
/// policy = "ACCEPTED"
///
/// [policy.RELAYED]
/// action = "relay"
/// tls = "preferred"
///
/// [policy.ACCEPTED]
/// action = "accept"
/// tls = "preferred"
/// max-message-size = 20971520
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct HatConfig {
    /// Ordered sender groups; the first match wins.
    #[serde(default)]
    pub sender_group: Vec<SenderGroupConfig>,
    /// Mail flow policies by name.
    #[serde(default)]
    pub policy: BTreeMap<String, MailFlowPolicyConfig>,
}

impl Default for HatConfig {
    /// One group, `ALL`, with policy `ACCEPTED` (accept, TLS off).
    fn default() -> Self {
        let mut policy = BTreeMap::new();
        policy.insert(
            "ACCEPTED".to_owned(),
            MailFlowPolicyConfig {
                action: ConnectionAction::Accept,
                tls: InboundTls::Off,
                max_message_size: None,
                max_recipients_per_message: None,
                max_connections_per_host: None,
            },
        );
        HatConfig {
            sender_group: vec![SenderGroupConfig {
                name: "ALL".to_owned(),
                patterns: vec!["ALL".to_owned()],
                policy: "ACCEPTED".to_owned(),
            }],
            policy,
        }
    }
}

/// A validated sender group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SenderGroup {
    /// Its name.
    pub name: String,
    /// Its patterns.
    pub patterns: Vec<SenderPattern>,
    /// Name of its policy.
    pub policy_name: String,
    /// Its policy.
    pub policy: MailFlowPolicy,
}

/// A validated HAT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hat {
    groups: Vec<SenderGroup>,
}

/// The outcome of matching a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HatMatch<'a> {
    /// The matching group, `None` when no group matched.
    pub group: Option<&'a str>,
    /// The policy to apply ([`MailFlowPolicy::UNLISTED`] when none matched).
    pub policy: MailFlowPolicy,
}

impl Hat {
    /// Validates a HAT. `location` prefixes error locations (for example
    /// `listener "public" hat`). Every problem is reported, not just the first.
    pub fn from_config(config: &HatConfig, location: &str) -> Result<Hat, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut policies = BTreeMap::new();
        for (name, p) in &config.policy {
            let at = format!("{location} policy {name:?}");
            let limits = InboundLimits {
                max_message_size: p
                    .max_message_size
                    .unwrap_or(InboundLimits::DEFAULT.max_message_size),
                max_recipients_per_message: p
                    .max_recipients_per_message
                    .unwrap_or(InboundLimits::DEFAULT.max_recipients_per_message),
                max_connections_per_host: p
                    .max_connections_per_host
                    .unwrap_or(InboundLimits::DEFAULT.max_connections_per_host),
            };
            for (field, zero) in [
                ("max-message-size", limits.max_message_size == 0),
                (
                    "max-recipients-per-message",
                    limits.max_recipients_per_message == 0,
                ),
                (
                    "max-connections-per-host",
                    limits.max_connections_per_host == 0,
                ),
            ] {
                if zero {
                    errors.push(ConfigError::new(
                        format!("{at} {field}"),
                        "must be at least 1 (use action = \"reject\" to refuse mail)",
                    ));
                }
            }
            policies.insert(
                name.as_str(),
                MailFlowPolicy {
                    action: p.action,
                    tls: p.tls,
                    limits,
                },
            );
        }
        let mut groups = Vec::new();
        let mut seen = BTreeMap::new();
        for (i, g) in config.sender_group.iter().enumerate() {
            let at = format!("{location} sender-group[{i}] {:?}", g.name);
            if g.name.trim().is_empty() {
                errors.push(ConfigError::new(format!("{at} name"), "must not be empty"));
            }
            if let Some(first) = seen.insert(g.name.as_str(), i) {
                errors.push(ConfigError::new(
                    format!("{at} name"),
                    format!("duplicates sender-group[{first}] of the same name"),
                ));
            }
            if g.patterns.is_empty() {
                errors.push(ConfigError::new(
                    format!("{at} match"),
                    "is empty; the group would match nothing",
                ));
            }
            let mut patterns = Vec::new();
            for (j, text) in g.patterns.iter().enumerate() {
                match SenderPattern::parse(text) {
                    Ok(p) => patterns.push(p),
                    Err(e) => {
                        errors.push(ConfigError::new(format!("{at} match[{j}]"), e.to_string()))
                    }
                }
            }
            match policies.get(g.policy.as_str()) {
                Some(policy) => groups.push(SenderGroup {
                    name: g.name.clone(),
                    patterns,
                    policy_name: g.policy.clone(),
                    policy: *policy,
                }),
                None => errors.push(ConfigError::new(
                    format!("{at} policy"),
                    format!(
                        "no mail flow policy named {:?} (defined: {})",
                        g.policy,
                        policies.keys().copied().collect::<Vec<_>>().join(", ")
                    ),
                )),
            }
        }
        if errors.is_empty() {
            Ok(Hat { groups })
        } else {
            Err(errors)
        }
    }

    /// The first group that matches `client`, and its policy.
    pub fn evaluate(&self, client: &ClientFacts) -> HatMatch<'_> {
        for g in &self.groups {
            if g.patterns.iter().any(|p| p.matches(client)) {
                return HatMatch {
                    group: Some(&g.name),
                    policy: g.policy,
                };
            }
        }
        HatMatch {
            group: None,
            policy: MailFlowPolicy::UNLISTED,
        }
    }

    /// The groups in order.
    pub fn groups(&self) -> &[SenderGroup] {
        &self.groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::name::DomainName;

    const TOML: &str = r#"
        [[sender-group]]
        name = "RELAYLIST"
        match = ["10.0.0.0/8", ".corp.example"]
        policy = "RELAYED"

        [[sender-group]]
        name = "BLOCKED"
        match = ["192.0.2.66"]
        policy = "BLOCKED"

        [[sender-group]]
        name = "ALL"
        match = ["ALL"]
        policy = "ACCEPTED"

        [policy.RELAYED]
        action = "relay"
        tls = "required"

        [policy.BLOCKED]
        action = "tcp-refuse"

        [policy.ACCEPTED]
        action = "accept"
        tls = "preferred"
        max-message-size = 20971520
    "#;

    fn client(ip: &str, name: Option<&str>) -> ClientFacts {
        ClientFacts {
            ip: ip.parse().unwrap(),
            fcrdns: name.map(|n| DomainName::parse(n).unwrap()),
        }
    }

    #[test]
    fn first_match_wins() {
        let cfg: HatConfig = toml::from_str(TOML).unwrap();
        let hat = Hat::from_config(&cfg, "hat").unwrap();
        let m = hat.evaluate(&client("10.1.2.3", None));
        assert_eq!(m.group, Some("RELAYLIST"));
        assert_eq!(m.policy.action, ConnectionAction::Relay);
        assert_eq!(m.policy.tls, InboundTls::Required);
        let m = hat.evaluate(&client("198.51.100.9", Some("mx.corp.example")));
        assert_eq!(m.group, Some("RELAYLIST"));
        let m = hat.evaluate(&client("192.0.2.66", None));
        assert_eq!(m.policy.action, ConnectionAction::TcpRefuse);
        let m = hat.evaluate(&client("203.0.113.1", None));
        assert_eq!(m.group, Some("ALL"));
        assert_eq!(m.policy.limits.max_message_size, 20971520);
        assert_eq!(m.policy.limits.max_recipients_per_message, 1000);
    }

    #[test]
    fn unmatched_is_rejected() {
        let mut cfg: HatConfig = toml::from_str(TOML).unwrap();
        cfg.sender_group.pop();
        let hat = Hat::from_config(&cfg, "hat").unwrap();
        let m = hat.evaluate(&client("203.0.113.1", None));
        assert_eq!(m.group, None);
        assert_eq!(m.policy.action, ConnectionAction::Reject);
    }

    #[test]
    fn errors_name_entry_and_field() {
        let cfg: HatConfig = toml::from_str(
            r#"
            [[sender-group]]
            name = "X"
            match = ["10.0.0.1/8", "ok.example"]
            policy = "MISSING"
            [[sender-group]]
            name = "X"
            match = []
            policy = "P"
            [policy.P]
            action = "accept"
            max-recipients-per-message = 0
        "#,
        )
        .unwrap();
        let errs = Hat::from_config(&cfg, "listener \"in\" hat").unwrap_err();
        let text: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        let all = text.join("\n");
        assert!(all.contains("sender-group[0] \"X\" match[0]"), "{all}");
        assert!(all.contains("10.0.0.0/8"), "{all}");
        assert!(
            all.contains("sender-group[0] \"X\" policy: no mail flow policy named \"MISSING\""),
            "{all}"
        );
        assert!(
            all.contains("sender-group[1] \"X\" name: duplicates sender-group[0]"),
            "{all}"
        );
        assert!(
            all.contains("sender-group[1] \"X\" match: is empty"),
            "{all}"
        );
        assert!(
            all.contains("policy \"P\" max-recipients-per-message"),
            "{all}"
        );
        assert!(all.starts_with("listener \"in\" hat"), "{all}");
    }

    #[test]
    fn default_accepts_everyone_without_tls() {
        let hat = Hat::from_config(&HatConfig::default(), "hat").unwrap();
        let m = hat.evaluate(&client("2001:db8::1", None));
        assert_eq!(m.policy.action, ConnectionAction::Accept);
        assert_eq!(m.policy.tls, InboundTls::Off);
    }
}
