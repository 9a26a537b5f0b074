//! Domain names in the one form every comparison in this crate uses: IDNA
//! A-labels (punycode), lower case, without the trailing root dot. Config
//! text, RCPT domains, MX names and MTA-STS `mx` patterns all pass through
//! [`DomainName::parse`], so `Bücher.Example.` and `xn--bcher-kva.example`
//! are the same name everywhere and no caller compares raw strings.

use std::fmt;

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::NameError;

/// A DNS host or domain name, normalised to lower-case A-labels without the
/// trailing dot. Only [`DomainName::parse`] builds one, so holding a
/// `DomainName` means the name was valid LDH (after IDNA mapping) and within
/// DNS length limits.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DomainName(String);

impl DomainName {
    /// Parses and normalises a name: UTS #46 mapping (case folding, IDN to
    /// punycode), STD3 letters-digits-hyphens only, labels of 1..=63 octets,
    /// at most 253 octets, one optional trailing dot ignored.
    ///
    /// ```
    /// use portcullis_policy::DomainName;
    /// let a = DomainName::parse("Bücher.Example.").unwrap();
    /// assert_eq!(a.as_str(), "xn--bcher-kva.example");
    /// assert!(DomainName::parse("bad..example").is_err());
    /// ```
    pub fn parse(input: &str) -> Result<Self, NameError> {
        let trimmed = input.strip_suffix('.').unwrap_or(input);
        if trimmed.is_empty() {
            return Err(NameError::Empty);
        }
        if trimmed.contains("..") || trimmed.starts_with('.') || trimmed.ends_with('.') {
            return Err(NameError::EmptyLabel(input.to_owned()));
        }
        let ascii = Uts46::new()
            .to_ascii(
                trimmed.as_bytes(),
                AsciiDenyList::STD3,
                Hyphens::Allow,
                DnsLength::Verify,
            )
            .map_err(|_| NameError::Invalid(input.to_owned()))?;
        // The mapping can turn odd code points into dots or nothing; re-check
        // the result rather than trusting the input shape.
        if ascii.is_empty() || ascii.split('.').any(|l| l.is_empty() || l.len() > 63) {
            return Err(NameError::Invalid(input.to_owned()));
        }
        if ascii
            .split('.')
            .any(|l| l.starts_with('-') || l.ends_with('-'))
        {
            return Err(NameError::Invalid(input.to_owned()));
        }
        // An all-numeric top label is never a host name (RFC 3696 §2); it is
        // an address written oddly (`８`, soft hyphens and other code points
        // that IDNA mapping removes or folds to digits).
        if ascii
            .rsplit('.')
            .next()
            .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(NameError::Numeric(input.to_owned()));
        }
        Ok(DomainName(ascii.into_owned()))
    }

    /// The normalised A-label form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Number of labels (`mx.example.com` has 3).
    pub fn label_count(&self) -> usize {
        self.0.split('.').count()
    }

    /// True when `self` is strictly below `parent` (`a.example.com` under
    /// `example.com`; `example.com` is not under itself).
    pub fn is_strictly_under(&self, parent: &DomainName) -> bool {
        self.0.len() > parent.0.len()
            && self.0.ends_with(parent.0.as_str())
            && self.0.as_bytes().get(self.0.len() - parent.0.len() - 1) == Some(&b'.')
    }

    /// The name without its left-most label (`mx.example.com` → `example.com`).
    pub fn parent(&self) -> Option<DomainName> {
        self.0
            .split_once('.')
            .map(|(_, rest)| DomainName(rest.to_owned()))
    }
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DomainName({})", self.0)
    }
}

impl std::str::FromStr for DomainName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DomainName::parse(s)
    }
}

impl Serialize for DomainName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for DomainName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        DomainName::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A domain or a whole subtree: `example.com` matches that name only,
/// `.example.com` matches every name strictly below it (the convention of
/// the destination table, the RAT and the STARTTLS lists).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum DomainPattern {
    /// Exactly this name.
    Exact(DomainName),
    /// Every name strictly below this one.
    Subdomains(DomainName),
}

impl DomainPattern {
    /// Parses `example.com` or `.example.com`.
    pub fn parse(input: &str) -> Result<Self, NameError> {
        let input = input.trim();
        if input.starts_with("*.") {
            return Err(NameError::Wildcard(input.to_owned()));
        }
        match input.strip_prefix('.') {
            Some(rest) => Ok(DomainPattern::Subdomains(DomainName::parse(rest)?)),
            None => Ok(DomainPattern::Exact(DomainName::parse(input)?)),
        }
    }

    /// Whether `name` is covered.
    pub fn matches(&self, name: &DomainName) -> bool {
        match self {
            DomainPattern::Exact(d) => d == name,
            DomainPattern::Subdomains(d) => name.is_strictly_under(d),
        }
    }

    /// Whether some name could match both patterns.
    pub fn overlaps(&self, other: &DomainPattern) -> bool {
        use DomainPattern::*;
        match (self, other) {
            (Exact(a), Exact(b)) => a == b,
            (Exact(a), Subdomains(b)) | (Subdomains(b), Exact(a)) => a.is_strictly_under(b),
            (Subdomains(a), Subdomains(b)) => {
                a == b || a.is_strictly_under(b) || b.is_strictly_under(a)
            }
        }
    }

    /// How specific the pattern is, for longest-match selection: exact names
    /// beat any subtree; deeper subtrees beat shallower ones.
    pub fn specificity(&self) -> (bool, usize) {
        match self {
            DomainPattern::Exact(d) => (true, d.label_count()),
            DomainPattern::Subdomains(d) => (false, d.label_count()),
        }
    }
}

impl fmt::Display for DomainPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DomainPattern::Exact(d) => write!(f, "{d}"),
            DomainPattern::Subdomains(d) => write!(f, ".{d}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_idn_and_trailing_dot() {
        let a = DomainName::parse("MX.Bücher.example.").unwrap();
        assert_eq!(a.as_str(), "mx.xn--bcher-kva.example");
        assert_eq!(a, DomainName::parse("mx.xn--bcher-kva.EXAMPLE").unwrap());
    }

    #[test]
    fn rejects_bad_names() {
        for bad in [
            "",
            ".",
            "a..b",
            ".a",
            "a b.example",
            "under_score.example",
            "-a.example",
            "a-.example",
            "a.example..",
        ] {
            assert!(DomainName::parse(bad).is_err(), "{bad:?} accepted");
        }
        let long_label = format!("{}.example", "a".repeat(64));
        assert!(DomainName::parse(&long_label).is_err());
        let long_name = ["abcdefghi"; 30].join(".");
        // Fuzzer find: a soft hyphen vanishes in IDNA mapping, leaving "8".
        assert_eq!(
            DomainName::parse("\u{ad}8"),
            Err(NameError::Numeric("\u{ad}8".to_owned()))
        );
        assert!(DomainName::parse("１９２.０.２.１").is_err());
        assert!(DomainName::parse("mx.123").is_err());
        assert!(DomainName::parse("123.example").is_ok());
        assert!(DomainName::parse(&long_name).is_err());
    }

    #[test]
    fn subtree_relations() {
        let p = DomainPattern::parse(".example.com").unwrap();
        assert!(p.matches(&DomainName::parse("a.example.com").unwrap()));
        assert!(p.matches(&DomainName::parse("a.b.example.com").unwrap()));
        assert!(!p.matches(&DomainName::parse("example.com").unwrap()));
        assert!(!p.matches(&DomainName::parse("badexample.com").unwrap()));
        let e = DomainPattern::parse("mx.example.com").unwrap();
        assert!(p.overlaps(&e) && e.overlaps(&p));
        assert!(!DomainPattern::parse("example.com").unwrap().overlaps(&p));
        assert!(DomainPattern::parse("*.example.com").is_err());
    }
}
