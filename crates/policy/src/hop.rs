//! The next hop of one delivery attempt: which host, at which address, and
//! how the gateway learned it. How it was learned matters: an MX name from
//! insecure DNS may have been chosen by an attacker, so it cannot serve as a
//! reference identity where the RFCs or the operator demand a trusted one.

use std::fmt;
use std::net::IpAddr;

use crate::name::DomainName;
use crate::sender_pattern::canonical_ip;

/// A next-hop host: a name (MX or route host) or an address literal route.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HopHost {
    /// A host name.
    Name(DomainName),
    /// An IP address (an SMTP route written as `[192.0.2.1]`).
    Ip(IpAddr),
}

impl HopHost {
    /// The host name, if it is one.
    pub fn name(&self) -> Option<&DomainName> {
        match self {
            HopHost::Name(n) => Some(n),
            HopHost::Ip(_) => None,
        }
    }

    /// An address host in canonical form (IPv4-mapped IPv6 → IPv4).
    pub fn ip(ip: IpAddr) -> Self {
        HopHost::Ip(canonical_ip(ip))
    }
}

impl fmt::Display for HopHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HopHost::Name(n) => write!(f, "{n}"),
            HopHost::Ip(a) => write!(f, "[{a}]"),
        }
    }
}

/// How the next hop was learned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MxOrigin {
    /// From an operator-configured SMTP route: trusted, and not subject to
    /// the destination's MTA-STS policy (which is about its MX hosts).
    SmtpRoute,
    /// From an MX (or implicit MX) lookup whose answer DNSSEC validated as secure.
    DnssecSecure,
    /// From an MX lookup whose answer is insecure (unsigned zone).
    Insecure,
}

/// One next hop.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NextHop {
    /// Host name or address literal.
    pub host: HopHost,
    /// The address the connection goes to, when known (for IP-based
    /// STARTTLS list entries).
    pub address: Option<IpAddr>,
    /// How it was learned.
    pub origin: MxOrigin,
}

impl NextHop {
    /// An MX host.
    pub fn mx(name: DomainName, origin: MxOrigin) -> Self {
        NextHop {
            host: HopHost::Name(name),
            address: None,
            origin,
        }
    }

    /// The same hop at a known address.
    pub fn at(mut self, address: IpAddr) -> Self {
        self.address = Some(canonical_ip(address));
        self
    }
}
