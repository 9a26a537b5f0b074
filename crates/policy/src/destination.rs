//! Destination controls: per-domain outbound TLS level, DANE mode, MTA-STS
//! switch and delivery limits, keyed by `example.com` (that domain),
//! `.example.com` (every domain below it) or `default`. Lookup picks the
//! exact entry, else the deepest matching subtree entry, else `default`;
//! every field an entry leaves unset comes from `default`, and what
//! `default` leaves unset from the built-in defaults.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::name::{DomainName, DomainPattern};

/// Outbound TLS level of a destination (SPEC §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum TlsLevel {
    /// Never send STARTTLS.
    None,
    /// STARTTLS if offered, no certificate check, cleartext fallback.
    Preferred,
    /// TLS must succeed; the certificate is not checked.
    Required,
    /// STARTTLS if offered and try to verify; deliver either way.
    PreferredVerify,
    /// TLS and a certificate verified for the domain or the MX host name.
    RequiredVerify,
    /// TLS and a certificate verified for the domain or a name below it;
    /// the MX host name only when it was not learned from insecure DNS.
    RequiredVerifyHostedDomain,
}

impl TlsLevel {
    /// `required`, `required-verify` or `required-verify-hosted-domain`.
    pub fn is_required(self) -> bool {
        matches!(
            self,
            TlsLevel::Required | TlsLevel::RequiredVerify | TlsLevel::RequiredVerifyHostedDomain
        )
    }

    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsLevel::None => "none",
            TlsLevel::Preferred => "preferred",
            TlsLevel::Required => "required",
            TlsLevel::PreferredVerify => "preferred-verify",
            TlsLevel::RequiredVerify => "required-verify",
            TlsLevel::RequiredVerifyHostedDomain => "required-verify-hosted-domain",
        }
    }
}

impl fmt::Display for TlsLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// DANE mode as written in config; `default` inherits from the default entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DaneMode {
    /// Inherit.
    #[default]
    Default,
    /// Never use TLSA records.
    None,
    /// Use DANE when secure TLSA records exist; otherwise the TLS level.
    Opportunistic,
    /// No secure usable TLSA records, no delivery.
    Mandatory,
}

/// DANE mode after inheritance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EffectiveDane {
    /// TLSA records are ignored.
    None,
    /// Secure TLSA records are honoured.
    Opportunistic,
    /// Secure usable TLSA records are demanded.
    Mandatory,
}

/// Delivery limits of a destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct DestinationLimits {
    /// Simultaneous connections to the destination.
    pub max_connections: u32,
    /// Messages sent over one connection before it is closed.
    pub max_messages_per_connection: u32,
    /// Recipients per hour; `None` is unlimited.
    pub max_recipients_per_hour: Option<u32>,
}

impl DestinationLimits {
    /// 50 connections, 50 messages per connection, no hourly limit.
    pub const DEFAULT: DestinationLimits = DestinationLimits {
        max_connections: 50,
        max_messages_per_connection: 50,
        max_recipients_per_hour: None,
    };
}

/// One destination entry as written in config.
///
/// ```toml
/// [[destination]]
/// domain = "default"
/// tls = "preferred"
/// dane = "opportunistic"
///
/// [[destination]]
/// domain = ".partner.example"
/// tls = "required-verify"
/// max-connections = 5
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct DestinationConfig {
    /// `example.com`, `.example.com` or `default`.
    pub domain: String,
    /// Unset: inherit from `default` (built-in: preferred).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsLevel>,
    /// `default` inherits (built-in: opportunistic).
    #[serde(default)]
    pub dane: DaneMode,
    /// Apply the domain's MTA-STS policy. Unset: inherit (built-in: true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mta_sts: Option<bool>,
    /// Unset: inherit (built-in 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    /// Unset: inherit (built-in 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_messages_per_connection: Option<u32>,
    /// Unset: inherit (built-in unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_recipients_per_hour: Option<u32>,
    /// Remember a delivery with authenticated TLS (DANE, MTA-STS, verified
    /// PKIX) and refuse to deliver unauthenticated while the memory lasts.
    /// Unset: inherit (built-in: off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub never_downgrade: Option<bool>,
    /// How long that memory lasts after the last authenticated delivery.
    /// Unset: inherit (built-in 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub never_downgrade_days: Option<u32>,
}

impl DestinationConfig {
    /// An entry for `domain` with every field inherited.
    pub fn new(domain: &str) -> Self {
        DestinationConfig {
            domain: domain.to_owned(),
            tls: None,
            dane: DaneMode::Default,
            mta_sts: None,
            max_connections: None,
            max_messages_per_connection: None,
            max_recipients_per_hour: None,
            never_downgrade: None,
            never_downgrade_days: None,
        }
    }
}

/// Longest never-downgrade memory a destination may ask for.
pub const MAX_NEVER_DOWNGRADE_DAYS: u32 = 3650;
/// The built-in never-downgrade memory.
pub const DEFAULT_NEVER_DOWNGRADE_DAYS: u32 = 30;

/// Which entry a destination came from, for logs and error messages.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DestinationKey {
    /// The `default` entry (or the built-in defaults when there is none).
    Default,
    /// An `example.com` or `.example.com` entry.
    Entry(DomainPattern),
}

impl fmt::Display for DestinationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DestinationKey::Default => f.write_str("default"),
            DestinationKey::Entry(p) => write!(f, "{p}"),
        }
    }
}

/// A destination after lookup and inheritance: what the decision function
/// reads.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ResolvedDestination {
    /// The entry that matched.
    pub key: DestinationKey,
    /// TLS level.
    pub tls: TlsLevel,
    /// DANE mode. Always [`EffectiveDane::None`] when `tls` is `none`: an
    /// operator who turns TLS off for a destination turns DANE off with it.
    pub dane: EffectiveDane,
    /// Whether the domain's MTA-STS policy is applied (never with `tls = none`).
    pub mta_sts: bool,
    /// Limits.
    pub limits: DestinationLimits,
    /// Never-downgrade memory in days (`None`: off).
    pub never_downgrade_days: Option<u32>,
}

impl ResolvedDestination {
    /// The built-in default: preferred TLS, opportunistic DANE, MTA-STS on.
    pub fn builtin_default() -> Self {
        ResolvedDestination {
            key: DestinationKey::Default,
            tls: TlsLevel::Preferred,
            dane: EffectiveDane::Opportunistic,
            mta_sts: true,
            limits: DestinationLimits::DEFAULT,
            never_downgrade_days: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    index: usize,
    pattern: DomainPattern,
    config: DestinationConfig,
}

/// The validated destination table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DestinationTable {
    default: DestinationConfig,
    default_index: Option<usize>,
    entries: Vec<Entry>,
}

impl Default for DestinationTable {
    fn default() -> Self {
        DestinationTable {
            default: DestinationConfig::new("default"),
            default_index: None,
            entries: Vec::new(),
        }
    }
}

impl DestinationTable {
    /// Validates the entries: domains parse, no domain twice, one `default`
    /// at most, no `tls = "none"` together with an explicit DANE mode.
    pub fn from_config(entries: &[DestinationConfig]) -> Result<Self, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut table = DestinationTable::default();
        for (i, e) in entries.iter().enumerate() {
            let at = format!("destination[{i}] {:?}", e.domain);
            if e.tls == Some(TlsLevel::None)
                && matches!(e.dane, DaneMode::Opportunistic | DaneMode::Mandatory)
            {
                errors.push(ConfigError::new(
                    format!("{at} dane"),
                    format!(
                        "dane = \"{}\" contradicts tls = \"none\" in the same entry: DANE needs TLS",
                        if e.dane == DaneMode::Mandatory { "mandatory" } else { "opportunistic" }
                    ),
                ));
            }
            for (field, v) in [
                ("max-connections", e.max_connections),
                ("max-messages-per-connection", e.max_messages_per_connection),
                ("max-recipients-per-hour", e.max_recipients_per_hour),
            ] {
                if v == Some(0) {
                    errors.push(ConfigError::new(
                        format!("{at} {field}"),
                        "must be at least 1",
                    ));
                }
            }
            if let Some(days) = e.never_downgrade_days
                && !(1..=MAX_NEVER_DOWNGRADE_DAYS).contains(&days)
            {
                errors.push(ConfigError::new(
                    format!("{at} never-downgrade-days"),
                    format!("must be between 1 and {MAX_NEVER_DOWNGRADE_DAYS} (days), not {days}"),
                ));
            }
            if e.domain.trim().eq_ignore_ascii_case("default") {
                if let Some(first) = table.default_index {
                    errors.push(ConfigError::new(
                        format!("{at} domain"),
                        format!("a second default entry (the first is destination[{first}])"),
                    ));
                } else {
                    table.default_index = Some(i);
                    table.default = e.clone();
                }
                continue;
            }
            match DomainPattern::parse(&e.domain) {
                Ok(pattern) => {
                    if let Some(prev) = table.entries.iter().find(|x| x.pattern == pattern) {
                        errors.push(ConfigError::new(
                            format!("{at} domain"),
                            format!(
                                "{pattern} is already configured by destination[{}]",
                                prev.index
                            ),
                        ));
                    } else {
                        table.entries.push(Entry {
                            index: i,
                            pattern,
                            config: e.clone(),
                        });
                    }
                }
                Err(err) => errors.push(ConfigError::new(format!("{at} domain"), err.to_string())),
            }
        }
        if errors.is_empty() {
            Ok(table)
        } else {
            Err(errors)
        }
    }

    fn best_entry(&self, domain: &DomainName) -> Option<&Entry> {
        self.entries
            .iter()
            .filter(|e| e.pattern.matches(domain))
            .max_by_key(|e| e.pattern.specificity())
    }

    /// The entry that governs every name strictly below `base` that has no
    /// entry of its own (used to check list contradictions).
    pub(crate) fn governing_subtree(&self, base: &DomainName) -> (String, ResolvedDestination) {
        let entry = self
            .entries
            .iter()
            .filter(|e| match &e.pattern {
                DomainPattern::Subdomains(s) => s == base || base.is_strictly_under(s),
                DomainPattern::Exact(_) => false,
            })
            .max_by_key(|e| e.pattern.specificity());
        self.describe(entry)
    }

    /// Entries whose own pattern overlaps `pattern`.
    pub(crate) fn overlapping(
        &self,
        pattern: &DomainPattern,
    ) -> Vec<(String, ResolvedDestination)> {
        self.entries
            .iter()
            .filter(|e| e.pattern.overlaps(pattern))
            .map(|e| self.describe(Some(e)))
            .collect()
    }

    fn describe(&self, entry: Option<&Entry>) -> (String, ResolvedDestination) {
        let label = match entry {
            Some(e) => format!("destination[{}] {:?}", e.index, e.config.domain),
            None => match self.default_index {
                Some(i) => format!("destination[{i}] \"default\""),
                None => "the built-in default destination".to_owned(),
            },
        };
        (label, self.resolve(entry))
    }

    /// Label and settings of the entry governing `domain`.
    pub(crate) fn lookup_labelled(&self, domain: &DomainName) -> (String, ResolvedDestination) {
        self.describe(self.best_entry(domain))
    }

    /// The settings for a destination domain.
    ///
    /// ```
    /// use portcullis_policy::{DestinationConfig, DestinationTable, DomainName, TlsLevel};
    /// let mut partner = DestinationConfig::new(".partner.example");
    /// partner.tls = Some(TlsLevel::RequiredVerify);
    /// let table = DestinationTable::from_config(&[partner]).unwrap();
    /// let d = table.lookup(&DomainName::parse("mail.partner.example").unwrap());
    /// assert_eq!(d.tls, TlsLevel::RequiredVerify);
    /// let d = table.lookup(&DomainName::parse("partner.example").unwrap());
    /// assert_eq!(d.tls, TlsLevel::Preferred);
    /// ```
    pub fn lookup(&self, domain: &DomainName) -> ResolvedDestination {
        self.resolve(self.best_entry(domain))
    }

    fn resolve(&self, entry: Option<&Entry>) -> ResolvedDestination {
        let base = ResolvedDestination::builtin_default();
        let d = &self.default;
        let (key, e) = match entry {
            Some(e) => (DestinationKey::Entry(e.pattern.clone()), Some(&e.config)),
            None => (DestinationKey::Default, None),
        };
        let pick = |f: &dyn Fn(&DestinationConfig) -> Option<u32>| e.and_then(f).or_else(|| f(d));
        let tls = e.and_then(|e| e.tls).or(d.tls).unwrap_or(base.tls);
        let dane_setting = match e.map(|e| e.dane) {
            Some(DaneMode::Default) | None => d.dane,
            Some(m) => m,
        };
        let dane = match (tls, dane_setting) {
            (TlsLevel::None, _) => EffectiveDane::None,
            (_, DaneMode::None) => EffectiveDane::None,
            (_, DaneMode::Mandatory) => EffectiveDane::Mandatory,
            (_, DaneMode::Opportunistic | DaneMode::Default) => EffectiveDane::Opportunistic,
        };
        let mta_sts = tls != TlsLevel::None
            && e.and_then(|e| e.mta_sts)
                .or(d.mta_sts)
                .unwrap_or(base.mta_sts);
        // Never-downgrade is meaningless where the operator turned TLS off.
        let never_downgrade = tls != TlsLevel::None
            && e.and_then(|e| e.never_downgrade)
                .or(d.never_downgrade)
                .unwrap_or(false);
        let never_downgrade_days = never_downgrade
            .then(|| pick(&|c| c.never_downgrade_days).unwrap_or(DEFAULT_NEVER_DOWNGRADE_DAYS));
        ResolvedDestination {
            key,
            tls,
            dane,
            mta_sts,
            never_downgrade_days,
            limits: DestinationLimits {
                max_connections: pick(&|c| c.max_connections)
                    .unwrap_or(DestinationLimits::DEFAULT.max_connections),
                max_messages_per_connection: pick(&|c| c.max_messages_per_connection)
                    .unwrap_or(DestinationLimits::DEFAULT.max_messages_per_connection),
                max_recipients_per_hour: pick(&|c| c.max_recipients_per_hour),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> DomainName {
        DomainName::parse(s).unwrap()
    }

    #[test]
    fn exact_beats_deeper_subtree_beats_shallower_beats_default() {
        let cfg: Vec<DestinationConfig> = toml::from_str::<toml::Table>(
            r#"
            [[d]]
            domain = "default"
            tls = "required"
            max-connections = 7
            [[d]]
            domain = ".example.com"
            tls = "preferred-verify"
            [[d]]
            domain = ".eu.example.com"
            tls = "required-verify"
            dane = "mandatory"
            [[d]]
            domain = "mx.eu.example.com"
            tls = "none"
            [[d]]
            domain = "BÜCHER.example."
            max-messages-per-connection = 3
        "#,
        )
        .unwrap()["d"]
            .clone()
            .try_into()
            .unwrap();
        let t = DestinationTable::from_config(&cfg).unwrap();
        assert_eq!(t.lookup(&name("other.net")).tls, TlsLevel::Required);
        assert_eq!(
            t.lookup(&name("a.example.com")).tls,
            TlsLevel::PreferredVerify
        );
        let eu = t.lookup(&name("x.eu.example.com"));
        assert_eq!(eu.tls, TlsLevel::RequiredVerify);
        assert_eq!(eu.dane, EffectiveDane::Mandatory);
        assert_eq!(eu.limits.max_connections, 7, "inherited from default");
        let mx = t.lookup(&name("mx.eu.example.com"));
        assert_eq!(mx.tls, TlsLevel::None);
        assert_eq!(mx.dane, EffectiveDane::None);
        assert!(!mx.mta_sts);
        let idn = t.lookup(&name("xn--bcher-kva.example"));
        assert_eq!(idn.limits.max_messages_per_connection, 3);
        assert_eq!(idn.tls, TlsLevel::Required, "inherits tls from default");
        assert_eq!(idn.dane, EffectiveDane::Opportunistic);
    }

    #[test]
    fn never_downgrade_is_off_unless_asked_and_inherits_days() {
        let t = DestinationTable::from_config(&[]).unwrap();
        assert_eq!(t.lookup(&name("a.example")).never_downgrade_days, None);
        let mut d = DestinationConfig::new("default");
        d.never_downgrade_days = Some(10);
        let mut a = DestinationConfig::new(".a.example");
        a.never_downgrade = Some(true);
        let mut off = DestinationConfig::new("none.a.example");
        off.tls = Some(TlsLevel::None);
        let t = DestinationTable::from_config(&[d, a, off]).unwrap();
        assert_eq!(
            t.lookup(&name("x.a.example")).never_downgrade_days,
            Some(10)
        );
        assert_eq!(t.lookup(&name("b.example")).never_downgrade_days, None);
        assert_eq!(t.lookup(&name("none.a.example")).never_downgrade_days, None);
        let mut bad = DestinationConfig::new("c.example");
        bad.never_downgrade_days = Some(0);
        let errs = DestinationTable::from_config(&[bad]).unwrap_err();
        assert!(
            errs[0].to_string().contains("never-downgrade-days"),
            "{}",
            errs[0]
        );
    }

    #[test]
    fn rejects_duplicates_and_contradictions() {
        let mut a = DestinationConfig::new("Example.com.");
        a.tls = Some(TlsLevel::None);
        a.dane = DaneMode::Mandatory;
        let b = DestinationConfig::new("example.com");
        let c = DestinationConfig::new("default");
        let d = DestinationConfig::new("default");
        let mut z = DestinationConfig::new("bad..name");
        z.max_connections = Some(0);
        let errs = DestinationTable::from_config(&[a, b, c, d, z]).unwrap_err();
        let all: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        let all = all.join("\n");
        assert!(
            all.contains("destination[0] \"Example.com.\" dane"),
            "{all}"
        );
        assert!(all.contains("destination[1] \"example.com\" domain: example.com is already configured by destination[0]"), "{all}");
        assert!(
            all.contains("destination[3] \"default\" domain: a second default"),
            "{all}"
        );
        assert!(all.contains("destination[4] \"bad..name\" domain"), "{all}");
        assert!(
            all.contains("destination[4] \"bad..name\" max-connections"),
            "{all}"
        );
    }
}
