//! Reference identifiers and the certificate name check of RFC 7672 §3.2.3:
//! the reference names are the MX hostname and, after secure CNAME
//! expansion, the TLSA base domain; a certificate matches when one of its
//! SAN dNSNames (or, without SAN, its CN) equals a reference name, a
//! wildcard `*.` covering exactly one left-most label.

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
}
