//! REQUIRETLS (RFC 8689) on the message side: whether a message demands TLS
//! all the way (the `REQUIRETLS` MAIL parameter, a `+requiretls` local-part
//! tag, or an operator rule), or opts out of recipient-side TLS policy with
//! `TLS-Required: No`. What a flagged message demands of the next hop is
//! decided by [`crate::decide`] (rows R5-R7 of its table).

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::name::{DomainName, DomainPattern};

/// Why a message demands REQUIRETLS handling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RequireTlsSource {
    /// `MAIL FROM:<…> REQUIRETLS`.
    MailParameter,
    /// A recipient written `local+requiretls@domain`.
    LocalPartTag,
    /// An operator rule.
    Rule,
}

/// The message's TLS stance, one per message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MessageTls {
    /// Neither flagged nor opted out.
    #[default]
    Default,
    /// Flagged: deliver only over REQUIRETLS-grade hops, else return it.
    RequireTls(RequireTlsSource),
    /// `TLS-Required: No`: recipient-side policies (DANE, MTA-STS) are
    /// ignored for this message; the operator's own TLS requirements still
    /// apply.
    OptOut,
}

impl MessageTls {
    /// True when flagged.
    pub fn is_require_tls(self) -> bool {
        matches!(self, MessageTls::RequireTls(_))
    }
}

/// Whether a `TLS-Required` header field value says `No` (RFC 8689 §5:
/// the only defined value; case-insensitive; surrounding folding white
/// space allowed).
pub fn tls_required_header_says_no(value: &str) -> bool {
    value
        .trim_matches(|c: char| c == ' ' || c == '\t' || c == '\r' || c == '\n')
        .eq_ignore_ascii_case("no")
}

/// The value of the first `TLS-Required` header field of a message (its
/// header section ends at the first empty line), unfolded. The message
/// comes from the network: any bytes are accepted, invalid UTF-8 is
/// replaced.
///
/// ```
/// use portcullis_policy::requiretls::tls_required_header;
/// let message = b"Subject: hi\r\nTLS-Required:\r\n No\r\n\r\nbody";
/// assert_eq!(tls_required_header(message).as_deref(), Some(" No"));
/// ```
pub fn tls_required_header(message: &[u8]) -> Option<String> {
    let end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(message.len());
    let head = String::from_utf8_lossy(message.get(..end).unwrap_or_default());
    let mut lines = head.split("\r\n").peekable();
    while let Some(line) = lines.next() {
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("TLS-Required")
        {
            let mut v = value.to_owned();
            while let Some(cont) = lines.next_if(|l| l.starts_with([' ', '\t'])) {
                v.push_str(cont);
            }
            return Some(v);
        }
    }
    None
}

/// Splits `local+requiretls@domain`: returns the address without the tag
/// when the local part carries it (any `+`-separated part equal to
/// `requiretls`, case-insensitive), `None` otherwise. The tag is removed so
/// the next hop sees the real mailbox.
///
/// ```
/// use portcullis_policy::requiretls::strip_requiretls_tag;
/// assert_eq!(strip_requiretls_tag("arvel+requiretls@example.com").as_deref(), Some("arvel@example.com"));
/// assert_eq!(strip_requiretls_tag("arvel+news@example.com"), None);
/// ```
pub fn strip_requiretls_tag(address: &str) -> Option<String> {
    let (local, domain) = address.rsplit_once('@')?;
    // A quoted local part is taken literally: no sub-addressing inside.
    if local.starts_with('"') {
        return None;
    }
    let mut parts = local.split('+');
    let base = parts.next()?;
    let rest: Vec<&str> = parts.collect();
    if base.is_empty() || !rest.iter().any(|p| p.eq_ignore_ascii_case("requiretls")) {
        return None;
    }
    let kept: Vec<&str> = std::iter::once(base)
        .chain(
            rest.into_iter()
                .filter(|p| !p.eq_ignore_ascii_case("requiretls")),
        )
        .collect();
    Some(format!("{}@{domain}", kept.join("+")))
}

/// REQUIRETLS settings as written in config.
///
/// ```toml
/// enabled = true
/// local-part-tag = true
/// sender-domains = [".finance.example"]
/// recipient-domains = ["partner.example"]
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RequireTlsConfig {
    /// Honour REQUIRETLS at all (the MAIL parameter is always honoured
    /// when the extension was offered; this switch covers tag and rules).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Treat `+requiretls` recipients as flagged.
    #[serde(default = "yes")]
    pub local_part_tag: bool,
    /// Flag every message from these sender domains.
    #[serde(default)]
    pub sender_domains: Vec<String>,
    /// Flag every message to these recipient domains.
    #[serde(default)]
    pub recipient_domains: Vec<String>,
}

fn yes() -> bool {
    true
}

impl Default for RequireTlsConfig {
    fn default() -> Self {
        RequireTlsConfig {
            enabled: true,
            local_part_tag: true,
            sender_domains: Vec::new(),
            recipient_domains: Vec::new(),
        }
    }
}

/// Validated REQUIRETLS settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequireTlsRules {
    enabled: bool,
    local_part_tag: bool,
    senders: Vec<DomainPattern>,
    recipients: Vec<DomainPattern>,
}

impl Default for RequireTlsRules {
    fn default() -> Self {
        RequireTlsRules {
            enabled: true,
            local_part_tag: true,
            senders: Vec::new(),
            recipients: Vec::new(),
        }
    }
}

/// What the gateway knows about a message when classifying it.
#[derive(Clone, Copy, Debug, Default)]
pub struct MessageFacts<'a> {
    /// `REQUIRETLS` was on `MAIL FROM`.
    pub mail_parameter: bool,
    /// The recipient as received (for the `+requiretls` tag).
    pub recipient: Option<&'a str>,
    /// The sender's domain (for rules).
    pub sender_domain: Option<&'a DomainName>,
    /// The recipient's domain (for rules).
    pub recipient_domain: Option<&'a DomainName>,
    /// Value of the `TLS-Required` header field, if present.
    pub tls_required_header: Option<&'a str>,
}

impl RequireTlsRules {
    /// Validates config; errors are located under `requiretls`.
    pub fn from_config(c: &RequireTlsConfig) -> Result<Self, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut parse = |list: &[String], field: &str| {
            let mut out = Vec::new();
            for (i, s) in list.iter().enumerate() {
                match DomainPattern::parse(s) {
                    Ok(p) => out.push(p),
                    Err(e) => errors.push(ConfigError::new(
                        format!("requiretls {field}[{i}]"),
                        e.to_string(),
                    )),
                }
            }
            out
        };
        let senders = parse(&c.sender_domains, "sender-domains");
        let recipients = parse(&c.recipient_domains, "recipient-domains");
        if errors.is_empty() {
            Ok(RequireTlsRules {
                enabled: c.enabled,
                local_part_tag: c.local_part_tag,
                senders,
                recipients,
            })
        } else {
            Err(errors)
        }
    }

    /// Classifies a message. The MAIL parameter (and the tag and rules,
    /// which stand for it locally) wins over `TLS-Required: No`: RFC 8689
    /// §4.1 says the header field is ignored when REQUIRETLS is specified.
    pub fn classify(&self, m: &MessageFacts<'_>) -> MessageTls {
        if m.mail_parameter {
            return MessageTls::RequireTls(RequireTlsSource::MailParameter);
        }
        if self.enabled {
            if self.local_part_tag && m.recipient.and_then(strip_requiretls_tag).is_some() {
                return MessageTls::RequireTls(RequireTlsSource::LocalPartTag);
            }
            let hit = |pats: &[DomainPattern], d: Option<&DomainName>| {
                d.is_some_and(|d| pats.iter().any(|p| p.matches(d)))
            };
            if hit(&self.senders, m.sender_domain) || hit(&self.recipients, m.recipient_domain) {
                return MessageTls::RequireTls(RequireTlsSource::Rule);
            }
        }
        if m.tls_required_header
            .is_some_and(tls_required_header_says_no)
        {
            return MessageTls::OptOut;
        }
        MessageTls::Default
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_tls_required_header() {
        let body = b"Subject: x\r\nTLS-Required:\r\n No\r\n\r\nTLS-Required: yes\r\n";
        assert_eq!(tls_required_header(body).as_deref(), Some(" No"));
        assert_eq!(tls_required_header(b"Subject: y\r\n\r\nbody"), None);
        assert_eq!(tls_required_header(b""), None);
    }

    proptest::proptest! {
        /// Message bytes come from the network: never a panic.
        #[test]
        fn header_scan_never_panics(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = tls_required_header(&body);
        }
    }

    #[test]
    fn header_value() {
        for yes in ["No", "no", " NO\r\n", "\tNo "] {
            assert!(tls_required_header_says_no(yes), "{yes:?}");
        }
        for no in ["Yes", "", "No way", "N o"] {
            assert!(!tls_required_header_says_no(no), "{no:?}");
        }
    }

    #[test]
    fn tag() {
        assert_eq!(
            strip_requiretls_tag("a+RequireTLS@x.example").as_deref(),
            Some("a@x.example")
        );
        assert_eq!(
            strip_requiretls_tag("a+list+requiretls@x.example").as_deref(),
            Some("a+list@x.example")
        );
        assert_eq!(strip_requiretls_tag("+requiretls@x.example"), None);
        assert_eq!(strip_requiretls_tag("\"a+requiretls\"@x.example"), None);
        assert_eq!(strip_requiretls_tag("requiretls@x.example"), None);
        assert_eq!(strip_requiretls_tag("no-at-sign"), None);
    }

    #[test]
    fn classification_precedence() {
        let cfg = RequireTlsConfig {
            recipient_domains: vec![".bank.example".into()],
            ..Default::default()
        };
        let rules = RequireTlsRules::from_config(&cfg).unwrap();
        let bank = DomainName::parse("eu.bank.example").unwrap();
        let m = MessageFacts {
            mail_parameter: true,
            tls_required_header: Some("No"),
            ..Default::default()
        };
        assert_eq!(
            rules.classify(&m),
            MessageTls::RequireTls(RequireTlsSource::MailParameter)
        );
        let m = MessageFacts {
            recipient: Some("x+requiretls@a.example"),
            tls_required_header: Some("No"),
            ..Default::default()
        };
        assert_eq!(
            rules.classify(&m),
            MessageTls::RequireTls(RequireTlsSource::LocalPartTag)
        );
        let m = MessageFacts {
            recipient_domain: Some(&bank),
            ..Default::default()
        };
        assert_eq!(
            rules.classify(&m),
            MessageTls::RequireTls(RequireTlsSource::Rule)
        );
        let m = MessageFacts {
            tls_required_header: Some("no"),
            ..Default::default()
        };
        assert_eq!(rules.classify(&m), MessageTls::OptOut);
        assert_eq!(
            rules.classify(&MessageFacts::default()),
            MessageTls::Default
        );
        let off = RequireTlsRules::from_config(&RequireTlsConfig {
            enabled: false,
            ..cfg
        })
        .unwrap();
        let m = MessageFacts {
            recipient: Some("x+requiretls@a.example"),
            ..Default::default()
        };
        assert_eq!(off.classify(&m), MessageTls::Default);
        assert!(
            RequireTlsRules::from_config(&RequireTlsConfig {
                sender_domains: vec!["a..b".into()],
                ..Default::default()
            })
            .is_err()
        );
    }
}
