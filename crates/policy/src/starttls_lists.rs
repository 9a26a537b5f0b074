//! The STARTTLS exclusion list (hosts never sent STARTTLS) and requirement
//! list (hosts that must use it). Entries are IP addresses, CIDR ranges,
//! names (`legacy.example`: matches a next-hop host of that name *or* the
//! destination domain of that name) and subtrees (`.legacy.example`). The
//! lists override the destination table's TLS level; validation in
//! [`crate::OutboundPolicy`] refuses entries that contradict each other or a
//! `required*` destination.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::error::PatternError;
use crate::hop::{HopHost, NextHop};
use crate::name::{DomainName, DomainPattern};
use crate::sender_pattern::{IpOrNet, parse_ip_or_cidr};

/// One list entry.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HostPattern {
    /// One address.
    Ip(IpAddr),
    /// A range.
    Net(IpNet),
    /// A host or destination domain name, or a subtree of them.
    Name(DomainPattern),
}

impl HostPattern {
    /// Parses an address, CIDR range, name or `.subtree`.
    pub fn parse(input: &str) -> Result<Self, PatternError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(PatternError::new(input, "empty pattern"));
        }
        if let Some(r) = parse_ip_or_cidr(s) {
            return r.map(|v| match v {
                IpOrNet::Ip(ip) => HostPattern::Ip(ip),
                IpOrNet::Net(n) => HostPattern::Net(n),
            });
        }
        DomainPattern::parse(s).map(HostPattern::Name).map_err(|e| {
            PatternError::new(
                input,
                format!(
                    "{e}; expected an IP address, a CIDR range, a host or domain name, or .domain"
                ),
            )
        })
    }

    /// Whether the hop (or the destination domain) is covered.
    pub fn matches(&self, domain: &DomainName, hop: &NextHop) -> bool {
        let addrs = [
            hop.address,
            match hop.host {
                HopHost::Ip(a) => Some(a),
                HopHost::Name(_) => None,
            },
        ];
        match self {
            HostPattern::Ip(a) => addrs.iter().flatten().any(|x| x == a),
            HostPattern::Net(n) => addrs.iter().flatten().any(|x| n.contains(x)),
            HostPattern::Name(p) => {
                p.matches(domain) || hop.host.name().is_some_and(|h| p.matches(h))
            }
        }
    }

    /// Whether some hop could match both patterns.
    pub fn overlaps(&self, other: &HostPattern) -> bool {
        use HostPattern::*;
        match (self, other) {
            (Name(a), Name(b)) => a.overlaps(b),
            (Ip(a), Ip(b)) => a == b,
            (Ip(a), Net(n)) | (Net(n), Ip(a)) => n.contains(a),
            (Net(a), Net(b)) => a.contains(&b.network()) || b.contains(&a.network()),
            _ => false,
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Ip(a) => write!(f, "{a}"),
            HostPattern::Net(n) => write!(f, "{n}"),
            HostPattern::Name(p) => write!(f, "{p}"),
        }
    }
}

/// Which list(s) cover a hop.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ListMatch {
    /// On the exclusion list.
    pub excluded: bool,
    /// On the requirement list.
    pub required: bool,
}

/// Both lists, validated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StarttlsLists {
    pub(crate) exclude: Vec<HostPattern>,
    pub(crate) require: Vec<HostPattern>,
}

impl StarttlsLists {
    /// Lists from parsed patterns (contradictions are checked by
    /// [`crate::OutboundPolicy::from_config`]).
    pub fn new(exclude: Vec<HostPattern>, require: Vec<HostPattern>) -> Self {
        StarttlsLists { exclude, require }
    }

    /// Which lists cover this hop to this destination.
    pub fn classify(&self, domain: &DomainName, hop: &NextHop) -> ListMatch {
        ListMatch {
            excluded: self.exclude.iter().any(|p| p.matches(domain, hop)),
            required: self.require.iter().any(|p| p.matches(domain, hop)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hop::MxOrigin;

    fn n(s: &str) -> DomainName {
        DomainName::parse(s).unwrap()
    }

    #[test]
    fn matches_host_ip_and_domain() {
        let hop = NextHop::mx(n("mx1.mail.example"), MxOrigin::Insecure)
            .at("192.0.2.10".parse().unwrap());
        let dom = n("customer.example");
        for (p, want) in [
            ("192.0.2.10", true),
            ("192.0.2.0/24", true),
            ("198.51.100.0/24", false),
            ("mx1.mail.example", true),
            (".mail.example", true),
            ("customer.example", true),
            (".customer.example", false),
            ("other.example", false),
        ] {
            assert_eq!(
                HostPattern::parse(p).unwrap().matches(&dom, &hop),
                want,
                "{p}"
            );
        }
    }

    #[test]
    fn overlaps() {
        let p = |s| HostPattern::parse(s).unwrap();
        assert!(p("192.0.2.0/24").overlaps(&p("192.0.2.7")));
        assert!(p("192.0.0.0/16").overlaps(&p("192.0.2.0/24")));
        assert!(!p("192.0.2.0/24").overlaps(&p("192.0.3.0/24")));
        assert!(p(".example.com").overlaps(&p("mx.example.com")));
        assert!(!p("example.com").overlaps(&p("192.0.2.1")));
    }
}
