//! A listener's access policy: its kind (public or private), HAT and RAT,
//! validated together because only together do they say whether the
//! listener is an open relay. A public listener that would relay for
//! everyone is refused unless the operator sets `allow-open-relay = true`.

use serde::{Deserialize, Serialize};

use crate::error::{ConfigError, ConfigErrors};
use crate::hat::{ConnectionAction, Hat, HatConfig, HatMatch};
use crate::rat::{Rat, RcptVerdict, RecipientPattern};
use crate::sender_pattern::ClientFacts;

/// Public listeners face the Internet; private ones face internal systems.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ListenerKind {
    /// Receives mail from the Internet.
    #[default]
    Public,
    /// Receives mail from internal systems for relaying out.
    Private,
}

/// The RAT as written in config.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RatConfig {
    /// Accepted recipient domains: `example.com`, `.example.com`, `ALL`.
    #[serde(default)]
    pub accept: Vec<String>,
}

/// A listener's access policy as written in config.
///
/// ```toml
/// kind = "public"
/// rat.accept = ["example.com", ".example.com"]
///
/// [[hat.sender-group]]
/// name = "ALL"
/// match = ["ALL"]
/// policy = "ACCEPTED"
///
/// [hat.policy.ACCEPTED]
/// action = "accept"
/// tls = "preferred"
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ListenerAccessConfig {
    /// public (default) or private.
    #[serde(default)]
    pub kind: ListenerKind,
    /// Host access table.
    #[serde(default)]
    pub hat: HatConfig,
    /// Recipient access table.
    #[serde(default)]
    pub rat: RatConfig,
    /// Accept a public listener that relays for everyone. Never needed in
    /// production; exists so that a test rig can say so explicitly.
    #[serde(default)]
    pub allow_open_relay: bool,
}

/// A validated listener access policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerAccess {
    kind: ListenerKind,
    hat: Hat,
    rat: Rat,
}

impl ListenerAccess {
    /// Validates HAT, RAT and the open-relay rule. `name` is the listener's
    /// name, used in error locations.
    ///
    /// ```
    /// use portcullis_policy::{ListenerAccess, ListenerAccessConfig};
    /// let cfg: ListenerAccessConfig = toml::from_str(r#"
    ///     rat.accept = ["ALL"]
    /// "#).unwrap();
    /// let err = ListenerAccess::from_config(&cfg, "inbound").unwrap_err();
    /// assert!(err.to_string().contains("open relay"));
    /// ```
    pub fn from_config(config: &ListenerAccessConfig, name: &str) -> Result<Self, ConfigErrors> {
        let at = format!("listener {name:?}");
        let mut errors = Vec::new();
        let hat = match Hat::from_config(&config.hat, &format!("{at} hat")) {
            Ok(h) => Some(h),
            Err(mut e) => {
                errors.append(&mut e);
                None
            }
        };
        let mut patterns = Vec::new();
        for (i, p) in config.rat.accept.iter().enumerate() {
            match RecipientPattern::parse(p) {
                Ok(p) => patterns.push(p),
                Err(e) => errors.push(ConfigError::new(
                    format!("{at} rat.accept[{i}]"),
                    e.to_string(),
                )),
            }
        }
        let rat = Rat::new(patterns);
        if config.kind == ListenerKind::Public && !config.allow_open_relay {
            if rat.accepts_all() {
                errors.push(ConfigError::new(
                    format!("{at} rat.accept"),
                    "ALL on a public listener makes an open relay; list your domains, or set allow-open-relay = true if you really mean it",
                ));
            }
            if let Some(hat) = &hat {
                for (i, g) in hat.groups().iter().enumerate() {
                    if g.policy.action != ConnectionAction::Relay {
                        continue;
                    }
                    if let Some(p) = g.patterns.iter().find(|p| p.covers_everyone()) {
                        errors.push(ConfigError::new(
                            format!("{at} hat.sender-group[{i}] {:?}", g.name),
                            format!(
                                "matches {p} with relay policy {:?} on a public listener: an open relay; restrict the group, or set allow-open-relay = true if you really mean it",
                                g.policy_name
                            ),
                        ));
                    }
                }
            }
        }
        match hat {
            Some(hat) if errors.is_empty() => Ok(ListenerAccess {
                kind: config.kind,
                hat,
                rat,
            }),
            _ => Err(ConfigErrors(errors)),
        }
    }

    /// Public or private.
    pub fn kind(&self) -> ListenerKind {
        self.kind
    }

    /// The HAT.
    pub fn hat(&self) -> &Hat {
        &self.hat
    }

    /// The RAT.
    pub fn rat(&self) -> &Rat {
        &self.rat
    }

    /// HAT decision for a connecting client.
    pub fn connect(&self, client: &ClientFacts) -> HatMatch<'_> {
        self.hat.evaluate(client)
    }

    /// RAT decision for one recipient domain, given the client's HAT match.
    pub fn recipient(&self, hat: &HatMatch<'_>, domain: &str) -> RcptVerdict {
        self.rat.check(domain, hat.policy.action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> ListenerAccessConfig {
        toml::from_str(t).unwrap()
    }

    #[test]
    fn relay_for_all_on_public_is_refused() {
        let cfg = parse(
            r#"
            rat.accept = ["example.com"]
            [[hat.sender-group]]
            name = "EVERYONE"
            match = ["0.0.0.0/0"]
            policy = "RELAYED"
            [hat.policy.RELAYED]
            action = "relay"
        "#,
        );
        let e = ListenerAccess::from_config(&cfg, "in")
            .unwrap_err()
            .to_string();
        assert!(e.contains("hat.sender-group[0] \"EVERYONE\""), "{e}");
        assert!(e.contains("open relay"), "{e}");
        let mut forced = cfg.clone();
        forced.allow_open_relay = true;
        assert!(ListenerAccess::from_config(&forced, "in").is_ok());
        let mut private = cfg;
        private.kind = ListenerKind::Private;
        assert!(ListenerAccess::from_config(&private, "in").is_ok());
    }

    #[test]
    fn limited_relay_is_fine() {
        let cfg = parse(
            r#"
            rat.accept = ["example.com"]
            [[hat.sender-group]]
            name = "INTERNAL"
            match = ["10.0.0.0/8"]
            policy = "RELAYED"
            [[hat.sender-group]]
            name = "ALL"
            match = ["ALL"]
            policy = "ACCEPTED"
            [hat.policy.RELAYED]
            action = "relay"
            [hat.policy.ACCEPTED]
            action = "accept"
        "#,
        );
        let l = ListenerAccess::from_config(&cfg, "in").unwrap();
        let inside = ClientFacts {
            ip: "10.9.9.9".parse().unwrap(),
            fcrdns: None,
        };
        let outside = ClientFacts {
            ip: "203.0.113.9".parse().unwrap(),
            fcrdns: None,
        };
        let m = l.connect(&inside);
        assert_eq!(l.recipient(&m, "elsewhere.net"), RcptVerdict::Relay);
        let m = l.connect(&outside);
        assert!(matches!(
            l.recipient(&m, "elsewhere.net"),
            RcptVerdict::Refuse { .. }
        ));
        assert_eq!(l.recipient(&m, "example.com"), RcptVerdict::Accept);
    }

    #[test]
    fn rat_errors_are_located() {
        let cfg = parse(r#"rat.accept = ["ok.example", "user@x.example"]"#);
        let e = ListenerAccess::from_config(&cfg, "in")
            .unwrap_err()
            .to_string();
        assert!(e.contains("listener \"in\" rat.accept[1]"), "{e}");
    }
}
