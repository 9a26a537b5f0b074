//! The patterns a HAT sender group is made of, parsed from operator config
//! text: an IP address, a CIDR range, a forward-confirmed reverse-DNS host
//! name, a `.suffix` of such names, or `ALL`. Parsing is strict and explains
//! itself, because a typo here silently changes who may relay.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::error::PatternError;
use crate::name::DomainName;

/// One sender-group pattern.
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum SenderPattern {
    /// One address (IPv4-mapped IPv6 is stored as IPv4).
    Ip(IpAddr),
    /// A CIDR range with no host bits set.
    Cidr(IpNet),
    /// A host name; matches only a forward-confirmed reverse-DNS name.
    Host(DomainName),
    /// `.example.com`: any forward-confirmed name strictly below it.
    Suffix(DomainName),
    /// Every client.
    All,
}

/// What the gateway knows about a connecting client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientFacts {
    /// The peer address of the TCP connection.
    pub ip: IpAddr,
    /// The reverse-DNS name, only if it forward-confirmed (the PTR name's
    /// A/AAAA records contain `ip`). An unconfirmed PTR name must be `None`:
    /// anyone who controls a reverse zone can claim any name.
    pub fcrdns: Option<DomainName>,
}

/// Maps IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`, seen on dual-stack
/// sockets) to IPv4 so that `192.0.2.0/24` matches them.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// Parses an address or CIDR range; shared by the HAT and the STARTTLS lists.
pub(crate) fn parse_ip_or_cidr(input: &str) -> Option<Result<IpOrNet, PatternError>> {
    let s = input.trim();
    let bare = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s);
    if let Some((addr, len)) = bare.split_once('/') {
        let Ok(addr) = addr.parse::<IpAddr>() else {
            // Looks like CIDR only if the left side looks like an address.
            if addr.contains(':') || addr.chars().all(|c| c.is_ascii_digit() || c == '.') {
                return Some(Err(PatternError::new(
                    input,
                    format!("{addr:?} is not an IPv4 or IPv6 address"),
                )));
            }
            return None;
        };
        let addr = canonical_ip(addr);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let Ok(len) = len.parse::<u8>() else {
            return Some(Err(PatternError::new(
                input,
                format!("prefix length {len:?} is not a number from 0 to {max}"),
            )));
        };
        let net = match IpNet::new(addr, len) {
            Ok(n) => n,
            Err(_) => {
                return Some(Err(PatternError::new(
                    input,
                    format!("prefix length {len} is larger than {max}"),
                )));
            }
        };
        if net.network() != addr {
            return Some(Err(PatternError::new(
                input,
                format!(
                    "host bits are set after /{len}; did you mean {}?",
                    net.trunc()
                ),
            )));
        }
        return Some(Ok(IpOrNet::Net(net)));
    }
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Some(Ok(IpOrNet::Ip(canonical_ip(ip))));
    }
    if !bare.is_empty() && bare.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Some(Err(PatternError::new(
            input,
            "looks like an IPv4 address but is not one (four numbers 0-255; ranges are written as CIDR, 192.0.2.0/24)",
        )));
    }
    None
}

pub(crate) enum IpOrNet {
    Ip(IpAddr),
    Net(IpNet),
}

impl SenderPattern {
    /// Parses one pattern:
    ///
    /// | text | meaning |
    /// |---|---|
    /// | `ALL` | every client |
    /// | `192.0.2.7`, `2001:db8::7` | one address |
    /// | `192.0.2.0/24`, `2001:db8::/32` | a range (host bits must be zero) |
    /// | `mail.example.com` | that forward-confirmed reverse-DNS name |
    /// | `.example.com` | any forward-confirmed name below `example.com` |
    pub fn parse(input: &str) -> Result<Self, PatternError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(PatternError::new(input, "empty pattern"));
        }
        if s.eq_ignore_ascii_case("all") {
            return Ok(SenderPattern::All);
        }
        if let Some(r) = parse_ip_or_cidr(s) {
            return r.map(|v| match v {
                IpOrNet::Ip(ip) => SenderPattern::Ip(ip),
                IpOrNet::Net(n) => SenderPattern::Cidr(n),
            });
        }
        if s.starts_with("*.") {
            return Err(PatternError::new(
                input,
                "wildcards are not used; write .example.com to match every name below example.com",
            ));
        }
        if let Some(rest) = s.strip_prefix('.') {
            return DomainName::parse(rest)
                .map(SenderPattern::Suffix)
                .map_err(|e| PatternError::new(input, e.to_string()));
        }
        let host = DomainName::parse(s).map_err(|e| {
            PatternError::new(
                input,
                format!("{e}; expected ALL, an IP address, a CIDR range, a host name or .domain"),
            )
        })?;
        // "ALL." (or a form IDNA maps to "all") would name a host "all", which
        // prints as ALL and so reads back as every client.
        if host.as_str() == "all" {
            return Err(PatternError::new(
                input,
                "a host named \"all\" reads as ALL (every client); write ALL, or the host's full name",
            ));
        }
        Ok(SenderPattern::Host(host))
    }

    /// Whether the client is covered.
    pub fn matches(&self, client: &ClientFacts) -> bool {
        let ip = canonical_ip(client.ip);
        match self {
            SenderPattern::All => true,
            SenderPattern::Ip(a) => *a == ip,
            SenderPattern::Cidr(n) => n.contains(&ip),
            SenderPattern::Host(h) => client.fcrdns.as_ref() == Some(h),
            SenderPattern::Suffix(s) => client
                .fcrdns
                .as_ref()
                .is_some_and(|n| n.is_strictly_under(s)),
        }
    }

    /// True for patterns that cover every address: `ALL`, `0.0.0.0/0`,
    /// `::/0`. A relay policy on such a group is an open relay.
    pub fn covers_everyone(&self) -> bool {
        match self {
            SenderPattern::All => true,
            SenderPattern::Cidr(n) => n.prefix_len() == 0,
            _ => false,
        }
    }
}

impl fmt::Display for SenderPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SenderPattern::Ip(a) => write!(f, "{a}"),
            SenderPattern::Cidr(n) => write!(f, "{n}"),
            SenderPattern::Host(h) => write!(f, "{h}"),
            SenderPattern::Suffix(s) => write!(f, ".{s}"),
            SenderPattern::All => f.write_str("ALL"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(ip: &str, name: Option<&str>) -> ClientFacts {
        ClientFacts {
            ip: ip.parse().unwrap(),
            fcrdns: name.map(|n| DomainName::parse(n).unwrap()),
        }
    }

    #[test]
    fn parses_every_kind() {
        assert_eq!(SenderPattern::parse("all").unwrap(), SenderPattern::All);
        assert!(matches!(
            SenderPattern::parse("192.0.2.7").unwrap(),
            SenderPattern::Ip(_)
        ));
        assert!(matches!(
            SenderPattern::parse("2001:db8::/32").unwrap(),
            SenderPattern::Cidr(_)
        ));
        assert!(matches!(
            SenderPattern::parse("Mail.Example.com").unwrap(),
            SenderPattern::Host(_)
        ));
        assert!(matches!(
            SenderPattern::parse(".example.com").unwrap(),
            SenderPattern::Suffix(_)
        ));
    }

    /// Found by the fuzz target policy_hat_pattern: "ALL." parsed as a host
    /// named "all", printed as "all" and read back as ALL (every client).
    #[test]
    fn a_host_named_all_is_refused() {
        for bad in ["ALL.", "all.", " All. "] {
            let e = SenderPattern::parse(bad).unwrap_err();
            assert!(e.reason.contains("reads as ALL"), "{bad:?}: {e}");
        }
        assert_eq!(SenderPattern::parse(" ALL ").unwrap(), SenderPattern::All);
        let suffix = SenderPattern::parse(".all").unwrap();
        assert_eq!(SenderPattern::parse(&suffix.to_string()).unwrap(), suffix);
    }

    #[test]
    fn explains_errors() {
        let e = SenderPattern::parse("10.1.1.5/24").unwrap_err();
        assert!(e.reason.contains("10.1.1.0/24"), "{e}");
        assert!(
            SenderPattern::parse("10.1.1.300")
                .unwrap_err()
                .reason
                .contains("IPv4")
        );
        assert!(
            SenderPattern::parse("10.0.0.0/33")
                .unwrap_err()
                .reason
                .contains("32")
        );
        assert!(SenderPattern::parse("10.0.0.0/x").is_err());
        assert!(SenderPattern::parse("*.example.com").is_err());
        assert!(SenderPattern::parse("").is_err());
        assert!(SenderPattern::parse("bad_name.example").is_err());
        // Fuzzer find (policy_hat_pattern): soft hyphen + "8" parsed as host
        // "8", whose display form then failed to re-parse.
        assert!(SenderPattern::parse("\u{ad}8").is_err());
    }

    #[test]
    fn matching() {
        let net = SenderPattern::parse("192.0.2.0/24").unwrap();
        assert!(net.matches(&client("192.0.2.9", None)));
        assert!(net.matches(&client("::ffff:192.0.2.9", None)), "v4-mapped");
        assert!(!net.matches(&client("192.0.3.9", None)));
        let suffix = SenderPattern::parse(".example.com").unwrap();
        assert!(suffix.matches(&client("198.51.100.1", Some("mx.example.com"))));
        assert!(!suffix.matches(&client("198.51.100.1", Some("example.com"))));
        assert!(!suffix.matches(&client("198.51.100.1", None)));
        let host = SenderPattern::parse("mx.example.com").unwrap();
        assert!(host.matches(&client("198.51.100.1", Some("MX.example.com"))));
        assert!(SenderPattern::parse("0.0.0.0/0").unwrap().covers_everyone());
        assert!(SenderPattern::parse("::/0").unwrap().covers_everyone());
    }
}
