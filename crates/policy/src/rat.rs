//! The recipient access table of one listener: which recipient domains it
//! accepts mail for. Everything else is refused unless the client's mail
//! flow policy relays. Patterns are `example.com`, `.example.com` (every
//! subdomain) and `ALL` (any recipient; an open relay on a public listener,
//! see [`crate::ListenerAccess`]).

use std::fmt;

use crate::error::PatternError;
use crate::hat::ConnectionAction;
use crate::name::{DomainName, DomainPattern};
use crate::status::EnhancedStatus;

/// One RAT entry.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecipientPattern {
    /// A domain or a subtree.
    Domain(DomainPattern),
    /// Any recipient domain.
    All,
}

impl RecipientPattern {
    /// Parses `example.com`, `.example.com` or `ALL`.
    ///
    /// ```
    /// use portcullis_policy::RecipientPattern;
    /// assert!(RecipientPattern::parse(".example.com").is_ok());
    /// assert!(RecipientPattern::parse("user@example.com").is_err());
    /// ```
    pub fn parse(input: &str) -> Result<Self, PatternError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(PatternError::new(input, "empty pattern"));
        }
        if s.eq_ignore_ascii_case("all") {
            return Ok(RecipientPattern::All);
        }
        if s.contains('@') {
            return Err(PatternError::new(
                input,
                "the RAT lists domains, not addresses; write example.com or .example.com",
            ));
        }
        if s.starts_with('[') || s.parse::<std::net::IpAddr>().is_ok() {
            return Err(PatternError::new(
                input,
                "address literals are not accepted recipient domains",
            ));
        }
        let pattern =
            DomainPattern::parse(s).map_err(|e| PatternError::new(input, e.to_string()))?;
        // "ALL." would name the domain "all", which prints as ALL and so
        // reads back as every domain (an open relay on a public listener).
        if matches!(&pattern, DomainPattern::Exact(d) if d.as_str() == "all") {
            return Err(PatternError::new(
                input,
                "a domain named \"all\" reads as ALL (every domain); write ALL, or the full domain",
            ));
        }
        Ok(RecipientPattern::Domain(pattern))
    }

    /// Whether the recipient domain is covered.
    pub fn matches(&self, domain: &DomainName) -> bool {
        match self {
            RecipientPattern::All => true,
            RecipientPattern::Domain(p) => p.matches(domain),
        }
    }
}

impl fmt::Display for RecipientPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecipientPattern::All => f.write_str("ALL"),
            RecipientPattern::Domain(d) => write!(f, "{d}"),
        }
    }
}

/// A validated RAT.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Rat {
    accept: Vec<RecipientPattern>,
}

/// What to answer to one `RCPT TO`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RcptVerdict {
    /// The domain is ours: accept.
    Accept,
    /// Not ours, but the client may relay: accept for onward delivery.
    Relay,
    /// Refuse with this status (`550 5.7.1 relaying denied`, …).
    Refuse {
        /// Enhanced status for the `550` reply.
        status: EnhancedStatus,
        /// Reply text.
        reason: String,
    },
}

impl Rat {
    /// Builds a RAT from parsed patterns.
    pub fn new(accept: Vec<RecipientPattern>) -> Self {
        Rat { accept }
    }

    /// The patterns.
    pub fn patterns(&self) -> &[RecipientPattern] {
        &self.accept
    }

    /// True when the RAT accepts any domain.
    pub fn accepts_all(&self) -> bool {
        self.accept
            .iter()
            .any(|p| matches!(p, RecipientPattern::All))
    }

    /// Decides one recipient. `domain` is the domain part as received
    /// (UTF-8 allowed with SMTPUTF8; an address literal such as `[192.0.2.1]`
    /// is never one of our domains). `action` is the client's HAT action.
    pub fn check(&self, domain: &str, action: ConnectionAction) -> RcptVerdict {
        let relay_or = |status, reason: String| {
            if action == ConnectionAction::Relay {
                RcptVerdict::Relay
            } else {
                RcptVerdict::Refuse { status, reason }
            }
        };
        let name = match DomainName::parse(domain) {
            Ok(n) => n,
            Err(_) if domain.starts_with('[') => {
                return relay_or(
                    EnhancedStatus::RELAY_DENIED,
                    format!("relaying to {domain} denied"),
                );
            }
            Err(e) => {
                return RcptVerdict::Refuse {
                    status: EnhancedStatus::BAD_DESTINATION,
                    reason: e.to_string(),
                };
            }
        };
        if matches!(
            action,
            ConnectionAction::Reject | ConnectionAction::TcpRefuse
        ) {
            return RcptVerdict::Refuse {
                status: EnhancedStatus::POLICY_REJECT,
                reason: "connection refused by policy".to_owned(),
            };
        }
        if self.accept.iter().any(|p| p.matches(&name)) {
            RcptVerdict::Accept
        } else {
            relay_or(
                EnhancedStatus::RELAY_DENIED,
                format!("relaying to {name} denied"),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rat(p: &[&str]) -> Rat {
        Rat::new(
            p.iter()
                .map(|s| RecipientPattern::parse(s).unwrap())
                .collect(),
        )
    }

    #[test]
    fn domains_and_subdomains() {
        let r = rat(&["example.com", ".example.org"]);
        assert_eq!(
            r.check("EXAMPLE.com", ConnectionAction::Accept),
            RcptVerdict::Accept
        );
        assert_eq!(
            r.check("a.example.org", ConnectionAction::Accept),
            RcptVerdict::Accept
        );
        assert!(matches!(
            r.check("example.org", ConnectionAction::Accept),
            RcptVerdict::Refuse { status, .. } if status == EnhancedStatus::RELAY_DENIED
        ));
        assert_eq!(
            r.check("other.net", ConnectionAction::Relay),
            RcptVerdict::Relay
        );
        assert!(matches!(
            r.check("[192.0.2.1]", ConnectionAction::Accept),
            RcptVerdict::Refuse { .. }
        ));
        assert!(matches!(
            r.check("bad..name", ConnectionAction::Relay),
            RcptVerdict::Refuse { .. }
        ));
        assert!(matches!(
            r.check("example.com", ConnectionAction::Reject),
            RcptVerdict::Refuse { .. }
        ));
    }

    #[test]
    fn idn_recipient_domain() {
        let r = rat(&["bücher.example"]);
        assert_eq!(
            r.check("xn--bcher-kva.example", ConnectionAction::Accept),
            RcptVerdict::Accept
        );
        assert_eq!(
            r.check("BÜCHER.example", ConnectionAction::Accept),
            RcptVerdict::Accept
        );
    }

    #[test]
    fn parse_errors() {
        for bad in [
            "",
            "user@example.com",
            "[192.0.2.1]",
            "192.0.2.1",
            "*.example.com",
            "a..b",
        ] {
            assert!(RecipientPattern::parse(bad).is_err(), "{bad:?}");
        }
    }

    /// Found by the fuzz target policy_rat_pattern: "ALL." parsed as the
    /// domain "all", printed as "all" and read back as ALL (every domain).
    #[test]
    fn a_domain_named_all_is_refused() {
        for bad in ["ALL.", "all.", " All. "] {
            let e = RecipientPattern::parse(bad).unwrap_err();
            assert!(e.to_string().contains("reads as ALL"), "{bad:?}: {e}");
        }
        assert_eq!(
            RecipientPattern::parse("ALL").unwrap(),
            RecipientPattern::All
        );
        let suffix = RecipientPattern::parse(".all").unwrap();
        assert_eq!(
            RecipientPattern::parse(&suffix.to_string()).unwrap(),
            suffix
        );
    }
}
