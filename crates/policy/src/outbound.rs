//! The whole outbound policy as configured: destination table, STARTTLS
//! lists, exemption duration, REQUIRETLS rules and the `TLS-Required: No`
//! switch. Validation rejects contradictions, naming both entries: a host
//! on both STARTTLS lists, an exclusion that covers a `required*` or DANE
//! `mandatory` destination, a requirement entry that covers a `tls = none`
//! destination.
//!
//! Precedence, strongest first (the rows of [`crate::decide`]):
//! 1. DNS security failures (bogus/failed TLSA; DANE `mandatory` unmet;
//!    MX not in an enforced MTA-STS policy): never delivered to that host.
//! 2. STARTTLS exclusion list against anything that demands TLS: defer.
//! 3. REQUIRETLS on the message.
//! 4. DANE (secure TLSA records) — beats MTA-STS.
//! 5. MTA-STS `enforce`.
//! 6. The operator's `required*` level and the STARTTLS requirement list.
//! 7. STARTTLS exclusion list, then `tls = none`, then the temporary
//!    exemption: cleartext.
//! 8. Opportunistic TLS (`preferred`, `preferred-verify`, MTA-STS `testing`).

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::decision::{DecisionInput, DecisionSettings, HopRequirement, TlsaFacts, decide};
use crate::destination::{
    DestinationConfig, DestinationTable, EffectiveDane, ResolvedDestination, TlsLevel,
};
use crate::error::{ConfigError, ConfigErrors};
use crate::exemptions::TlsExemptions;
use crate::hop::NextHop;
use crate::mta_sts::MtaStsFacts;
use crate::name::{DomainName, DomainPattern};
use crate::requiretls::{MessageTls, RequireTlsConfig, RequireTlsRules};
use crate::starttls_lists::{HostPattern, StarttlsLists};

/// The STARTTLS lists as written in config.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct StarttlsListsConfig {
    /// Never send STARTTLS to these hosts, addresses or domains.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Always require STARTTLS with these.
    #[serde(default)]
    pub require: Vec<String>,
}

/// The outbound policy as written in config.
///
/// ```toml
/// tls-fallback-exemption-seconds = 3600
/// honour-tls-required-no = true
///
/// [[destination]]
/// domain = "default"
/// tls = "preferred"
///
/// [[destination]]
/// domain = "partner.example"
/// tls = "required-verify"
///
/// [starttls]
/// exclude = ["legacy.example", "192.0.2.0/28"]
/// require = [".bank.example"]
///
/// [requiretls]
/// recipient-domains = ["bank.example"]
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct OutboundConfig {
    /// Destination entries.
    #[serde(default)]
    pub destination: Vec<DestinationConfig>,
    /// STARTTLS exclusion and requirement lists.
    #[serde(default)]
    pub starttls: StarttlsListsConfig,
    /// Seconds a host stays exempt from STARTTLS after a failed handshake
    /// at an opportunistic level; 0 disables the exemption. Default 3600.
    #[serde(default = "default_exemption")]
    pub tls_fallback_exemption_seconds: u64,
    /// Honour `TLS-Required: No`. Default true (RFC 8689).
    #[serde(default = "yes")]
    pub honour_tls_required_no: bool,
    /// REQUIRETLS tag and rules.
    #[serde(default)]
    pub requiretls: RequireTlsConfig,
}

fn default_exemption() -> u64 {
    3600
}

fn yes() -> bool {
    true
}

impl Default for OutboundConfig {
    fn default() -> Self {
        OutboundConfig {
            destination: Vec::new(),
            starttls: StarttlsListsConfig::default(),
            tls_fallback_exemption_seconds: default_exemption(),
            honour_tls_required_no: true,
            requiretls: RequireTlsConfig::default(),
        }
    }
}

/// The validated outbound policy.
/// The default: built-in destination defaults, empty lists, one-hour
/// exemption, `TLS-Required: No` honoured.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    table: DestinationTable,
    lists: StarttlsLists,
    settings: DecisionSettings,
    requiretls: RequireTlsRules,
}

/// The per-hop facts [`OutboundPolicy::decide`] needs besides config.
#[derive(Clone, Copy, Debug)]
pub struct HopFacts<'a, T> {
    /// Destination domain.
    pub domain: &'a DomainName,
    /// Next hop.
    pub hop: &'a NextHop,
    /// TLSA lookup result.
    pub tlsa: &'a TlsaFacts<T>,
    /// MTA-STS state.
    pub mta_sts: &'a MtaStsFacts,
    /// REQUIRETLS flag or opt-out.
    pub message: MessageTls,
    /// Now.
    pub now: SystemTime,
}

impl OutboundPolicy {
    /// Validates config, reporting every problem.
    ///
    /// ```
    /// use portcullis_policy::{OutboundConfig, OutboundPolicy};
    /// let cfg: OutboundConfig = toml::from_str(r#"
    ///     [[destination]]
    ///     domain = "bank.example"
    ///     tls = "required-verify"
    ///     [starttls]
    ///     exclude = ["bank.example"]
    /// "#).unwrap();
    /// let err = OutboundPolicy::from_config(&cfg).unwrap_err().to_string();
    /// assert!(err.contains("starttls.exclude[0]") && err.contains("destination[0]"));
    /// ```
    pub fn from_config(c: &OutboundConfig) -> Result<Self, ConfigErrors> {
        let mut errors = Vec::new();
        let table = DestinationTable::from_config(&c.destination).unwrap_or_else(|mut e| {
            errors.append(&mut e);
            DestinationTable::default()
        });
        let mut parse_list = |list: &[String], field: &str| {
            let mut out = Vec::new();
            for (i, s) in list.iter().enumerate() {
                match HostPattern::parse(s) {
                    Ok(p) => out.push((i, s.clone(), p)),
                    Err(e) => errors.push(ConfigError::new(
                        format!("starttls.{field}[{i}]"),
                        e.to_string(),
                    )),
                }
            }
            out
        };
        let exclude = parse_list(&c.starttls.exclude, "exclude");
        let require = parse_list(&c.starttls.require, "require");
        for (i, es, e) in &exclude {
            for (j, rs, r) in &require {
                if e.overlaps(r) {
                    errors.push(ConfigError::new(
                        format!("starttls.exclude[{i}] {es:?}"),
                        format!("contradicts starttls.require[{j}] {rs:?}: a host cannot be both excluded from and required to use STARTTLS"),
                    ));
                }
            }
            if let HostPattern::Name(p) = e {
                for (label, dest) in governing(&table, p) {
                    if dest.tls.is_required() || dest.dane == EffectiveDane::Mandatory {
                        let what = if dest.tls.is_required() {
                            format!("tls = \"{}\"", dest.tls)
                        } else {
                            "dane = \"mandatory\"".to_owned()
                        };
                        errors.push(ConfigError::new(
                            format!("starttls.exclude[{i}] {es:?}"),
                            format!("contradicts {label} {what}: an excluded host never gets STARTTLS, so that destination could never be delivered"),
                        ));
                    }
                }
            }
        }
        for (j, rs, r) in &require {
            if let HostPattern::Name(p) = r {
                for (label, dest) in governing(&table, p) {
                    if dest.tls == TlsLevel::None {
                        errors.push(ConfigError::new(
                            format!("starttls.require[{j}] {rs:?}"),
                            format!("contradicts {label} tls = \"none\"; remove one of them"),
                        ));
                    }
                }
            }
        }
        let requiretls = RequireTlsRules::from_config(&c.requiretls).unwrap_or_else(|mut e| {
            errors.append(&mut e);
            RequireTlsRules::default()
        });
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        Ok(OutboundPolicy {
            table,
            lists: StarttlsLists::new(
                exclude.into_iter().map(|(_, _, p)| p).collect(),
                require.into_iter().map(|(_, _, p)| p).collect(),
            ),
            settings: DecisionSettings {
                exemption: (c.tls_fallback_exemption_seconds > 0)
                    .then(|| Duration::from_secs(c.tls_fallback_exemption_seconds)),
                honour_tls_required_no: c.honour_tls_required_no,
            },
            requiretls,
        })
    }

    /// The destination table.
    pub fn destinations(&self) -> &DestinationTable {
        &self.table
    }

    /// The STARTTLS lists.
    pub fn starttls_lists(&self) -> &StarttlsLists {
        &self.lists
    }

    /// Exemption duration and opt-out switch.
    pub fn settings(&self) -> &DecisionSettings {
        &self.settings
    }

    /// REQUIRETLS rules (to classify messages).
    pub fn requiretls(&self) -> &RequireTlsRules {
        &self.requiretls
    }

    /// Looks up the destination and the lists, then runs [`decide`].
    pub fn decide<T: Clone>(
        &self,
        exemptions: &TlsExemptions,
        facts: &HopFacts<'_, T>,
    ) -> HopRequirement<T> {
        let destination: ResolvedDestination = self.table.lookup(facts.domain);
        decide(&DecisionInput {
            domain: facts.domain,
            destination: &destination,
            lists: self.lists.classify(facts.domain, facts.hop),
            hop: facts.hop,
            tlsa: facts.tlsa,
            mta_sts: facts.mta_sts,
            message: facts.message,
            temporarily_exempt: exemptions.is_exempt(&facts.hop.host, facts.now),
            settings: &self.settings,
            now: facts.now,
        })
    }
}

/// The destination entries a list name pattern reaches: for an exact name,
/// the entry governing that domain; for a subtree, every entry inside it
/// plus the one governing its otherwise unconfigured names.
fn governing(table: &DestinationTable, p: &DomainPattern) -> Vec<(String, ResolvedDestination)> {
    match p {
        DomainPattern::Exact(n) => vec![table.lookup_labelled(n)],
        DomainPattern::Subdomains(base) => {
            let mut v = table.overlapping(p);
            v.push(table.governing_subtree(base));
            v
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errs(t: &str) -> String {
        let c: OutboundConfig = toml::from_str(t).unwrap();
        OutboundPolicy::from_config(&c).unwrap_err().to_string()
    }

    #[test]
    fn host_on_both_lists() {
        let e = errs(
            r#"
            [starttls]
            exclude = ["mx.example.net", "192.0.2.0/24"]
            require = ["MX.example.net.", "192.0.2.9"]
        "#,
        );
        assert!(e.contains("starttls.exclude[0] \"mx.example.net\": contradicts starttls.require[0] \"MX.example.net.\""), "{e}");
        assert!(e.contains("starttls.exclude[1] \"192.0.2.0/24\": contradicts starttls.require[1] \"192.0.2.9\""), "{e}");
    }

    #[test]
    fn exclusion_against_required_entries() {
        let e = errs(
            r#"
            [[destination]]
            domain = ".corp.example"
            tls = "required"
            [[destination]]
            domain = "dane.example"
            dane = "mandatory"
            [starttls]
            exclude = ["x.corp.example", "dane.example", ".example"]
        "#,
        );
        assert!(e.contains("starttls.exclude[0] \"x.corp.example\": contradicts destination[0] \".corp.example\" tls = \"required\""), "{e}");
        assert!(e.contains("starttls.exclude[1] \"dane.example\": contradicts destination[1] \"dane.example\" dane = \"mandatory\""), "{e}");
        assert!(
            e.contains("starttls.exclude[2] \".example\": contradicts destination[0]"),
            "{e}"
        );
    }

    #[test]
    fn default_required_makes_any_name_exclusion_contradictory() {
        let e = errs(
            r#"
            [[destination]]
            domain = "default"
            tls = "required-verify"
            [[destination]]
            domain = "legacy.example"
            tls = "preferred"
            [starttls]
            exclude = ["legacy.example", "other.example"]
        "#,
        );
        assert!(!e.contains("exclude[0]"), "{e}");
        assert!(e.contains("starttls.exclude[1] \"other.example\": contradicts destination[0] \"default\" tls = \"required-verify\""), "{e}");
    }

    #[test]
    fn requirement_against_tls_none() {
        let e = errs(
            r#"
            [[destination]]
            domain = "plain.example"
            tls = "none"
            [starttls]
            require = ["plain.example"]
        "#,
        );
        assert!(e.contains("starttls.require[0] \"plain.example\": contradicts destination[0] \"plain.example\" tls = \"none\""), "{e}");
    }

    #[test]
    fn bad_entries_are_located() {
        let e = errs(
            r#"
            [starttls]
            exclude = ["10.0.0.1/8"]
            [requiretls]
            sender-domains = ["bad..example"]
        "#,
        );
        assert!(
            e.contains("starttls.exclude[0]: pattern \"10.0.0.1/8\""),
            "{e}"
        );
        assert!(e.contains("requiretls sender-domains[0]"), "{e}");
    }

    #[test]
    fn consistent_config_loads() {
        let c: OutboundConfig = toml::from_str(
            r#"
            tls-fallback-exemption-seconds = 600
            [[destination]]
            domain = "default"
            tls = "preferred"
            [[destination]]
            domain = "partner.example"
            tls = "required-verify"
            [starttls]
            exclude = ["legacy.example", "192.0.2.0/28"]
            require = [".bank.example"]
        "#,
        )
        .unwrap();
        let p = OutboundPolicy::from_config(&c).unwrap();
        assert_eq!(p.settings().exemption, Some(Duration::from_secs(600)));
    }
}
