//! Reference identifiers and the certificate name checks.
//!
//! [`ReferenceNames`] serve RFC 7672 §3.2.3 (DANE-TA): the MX hostname and,
//! after secure CNAME expansion, the TLSA base domain; a certificate matches
//! when one of its SAN dNSNames (or, without SAN, its CN) equals a reference
//! name, a wildcard `*.` covering exactly one left-most label.
//! [`ReferenceId`] serves PKIX (RFC 6125), where a gateway may also accept
//! any name under a domain (`.example.com`: the hosted-domain rule).

use std::fmt;

/// The set of names a peer certificate may carry, normalised (lower case,
/// no trailing dot). Empty entries are dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReferenceNames(Vec<String>);

impl ReferenceNames {
    /// Builds the set from host names such as `mx.example.com` or
    /// `mx.example.com.`.
    pub fn new<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut v: Vec<String> = Vec::new();
        for n in names {
            let n = normalise(n.as_ref());
            if !n.is_empty() && !v.contains(&n) {
                v.push(n);
            }
        }
        Self(v)
    }

    /// The names, normalised.
    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    /// Whether no names were given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether any presented certificate name matches any reference name.
    pub fn matches_any(&self, presented: &[String]) -> bool {
        presented
            .iter()
            .any(|p| self.0.iter().any(|r| name_matches(&normalise(p), r)))
    }
}

impl fmt::Display for ReferenceNames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(", "))
    }
}

/// One name a PKIX-verified peer certificate may carry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReferenceId {
    /// Exactly this DNS name (`mx.example.com`).
    Exact(String),
    /// Any name strictly below this domain (`.example.com`).
    Subdomains(String),
}

impl ReferenceId {
    /// `mx.example.com` is exact; `.example.com` means the names below it.
    /// Case and a trailing dot do not matter.
    pub fn parse(text: &str) -> Self {
        match text.trim().strip_prefix('.') {
            Some(base) => ReferenceId::Subdomains(normalise(base)),
            None => ReferenceId::Exact(normalise(text)),
        }
    }

    /// Whether a presented certificate name (possibly `*.`-wildcarded) is
    /// acceptable for this reference.
    pub fn accepts(&self, presented: &str) -> bool {
        let presented = normalise(presented);
        match self {
            ReferenceId::Exact(name) => name_matches(&presented, name),
            ReferenceId::Subdomains(base) => {
                // A wildcard `*.x.base` covers names strictly under `base`;
                // `*.base` covers `label.base`, also strictly under it.
                let rest = presented.strip_prefix("*.").unwrap_or(&presented);
                is_hostname(rest)
                    && (rest == base.as_str() && presented.starts_with("*.")
                        || is_strictly_under(rest, base))
            }
        }
    }
}

impl fmt::Display for ReferenceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReferenceId::Exact(n) => f.write_str(n),
            ReferenceId::Subdomains(n) => write!(f, ".{n}"),
        }
    }
}

fn is_strictly_under(name: &str, base: &str) -> bool {
    name.len() > base.len() + 1
        && name.ends_with(base)
        && name.as_bytes().get(name.len() - base.len() - 1) == Some(&b'.')
}

/// Letters, digits, hyphens and underscores in non-empty labels of at most
/// 63 bytes: what a certificate's DNS name may hold once the wildcard label
/// is removed.
fn is_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn normalise(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// `presented` may start with `*.`; the wildcard stands for exactly one
/// non-empty label and is only honoured as the whole left-most label.
fn name_matches(presented: &str, reference: &str) -> bool {
    if presented.is_empty() {
        return false;
    }
    if let Some(rest) = presented.strip_prefix("*.") {
        // A wildcard over a single label (e.g. `*.com`) is too broad.
        if rest.is_empty() || !rest.contains('.') {
            return false;
        }
        return match reference.split_once('.') {
            Some((first, tail)) => !first.is_empty() && tail == rest,
            None => false,
        };
    }
    presented == reference
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_wildcard() {
        let r = ReferenceNames::new(["MX.Example.COM.", "example.com"]);
        assert!(r.matches_any(&["mx.example.com".into()]));
        assert!(r.matches_any(&["*.example.com".into()]));
        assert!(!r.matches_any(&["*.mx.example.com".into()]));
        assert!(!r.matches_any(&["a.mx.example.com".into()]));
        assert!(!r.matches_any(&["*.com".into()]));
        assert!(!r.matches_any(&["ex*.example.com".into()]));
        let apex = ReferenceNames::new(["example.com"]);
        assert!(!apex.matches_any(&["*.example.com".into()]));
        assert!(apex.matches_any(&["example.com.".into()]));
    }

    #[test]
    fn reference_ids() {
        let exact = ReferenceId::parse("MX.example.net.");
        assert_eq!(exact.to_string(), "mx.example.net");
        assert!(exact.accepts("mx.example.net"));
        assert!(exact.accepts("*.example.net"));
        assert!(!exact.accepts("a.mx.example.net"));
        let below = ReferenceId::parse(".example.net");
        assert_eq!(below.to_string(), ".example.net");
        assert!(below.accepts("mx.example.net"));
        assert!(below.accepts("a.b.example.net"));
        assert!(below.accepts("*.example.net"), "covers label.example.net");
        assert!(below.accepts("*.mx.example.net"));
        assert!(!below.accepts("example.net"), "strictly below");
        assert!(!below.accepts("badexample.net"));
        assert!(!below.accepts("*.net"));
        assert!(!below.accepts("a..example.net"));
    }
}
