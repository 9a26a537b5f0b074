//! Mailbox addresses as they appear in `MAIL FROM:<…>` and `RCPT TO:<…>`:
//! RFC 5321 §4.1.2 syntax with the RFC 6531 (SMTPUTF8) extension that lets
//! local parts and domains carry UTF-8, and the §4.5.3.1 length limits.
//! Whether UTF-8 is *allowed* in a given transaction is the session's call;
//! this module only reports it through [`Mailbox::is_utf8`].

use std::fmt;

/// Longest local part, in octets (RFC 5321 §4.5.3.1.1).
pub const MAX_LOCAL_PART: usize = 64;
/// Longest domain, in octets (RFC 5321 §4.5.3.1.2).
pub const MAX_DOMAIN: usize = 255;
/// Longest path including the angle brackets (RFC 5321 §4.5.3.1.3).
pub const MAX_PATH: usize = 256;

/// `local-part@domain`, syntax-checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Mailbox {
    local: String,
    domain: String,
}

/// What was wrong with an address, for the 501 reply text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// Missing `<` or `>`.
    #[error("address must be enclosed in angle brackets <...>")]
    Brackets,
    /// No `@` in a mailbox.
    #[error("address has no @domain")]
    NoDomain,
    /// Local part is empty, badly dotted, or has characters not allowed.
    #[error("local part {0:?} is not a valid dot-string or quoted string")]
    LocalPart(String),
    /// Domain is not a hostname or address literal.
    #[error("domain {0:?} is not a valid hostname or address literal")]
    Domain(String),
    /// A length limit of RFC 5321 §4.5.3.1 was exceeded.
    #[error("{what} is {len} octets; the limit is {max} (RFC 5321 section 4.5.3.1)")]
    TooLong {
        /// Which part.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

impl Mailbox {
    /// Parses `local@domain` (no brackets).
    pub fn parse(s: &str) -> Result<Self, AddressError> {
        let at = s.rfind('@').ok_or(AddressError::NoDomain)?;
        let (local, domain) = (&s[..at], &s[at + 1..]);
        if local.len() > MAX_LOCAL_PART {
            return Err(AddressError::TooLong {
                what: "local part",
                len: local.len(),
                max: MAX_LOCAL_PART,
            });
        }
        if !valid_local_part(local) {
            return Err(AddressError::LocalPart(local.to_string()));
        }
        if domain.len() > MAX_DOMAIN {
            return Err(AddressError::TooLong {
                what: "domain",
                len: domain.len(),
                max: MAX_DOMAIN,
            });
        }
        if !valid_domain(domain) && !valid_address_literal(domain) {
            return Err(AddressError::Domain(domain.to_string()));
        }
        Ok(Self {
            local: local.to_string(),
            domain: domain.to_string(),
        })
    }

    /// The local part as sent (quoted strings keep their quotes).
    pub fn local_part(&self) -> &str {
        &self.local
    }

    /// The domain as sent (U-labels are not converted).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// True when local part or domain contains non-ASCII characters, which
    /// RFC 6531 allows only in an SMTPUTF8 transaction.
    pub fn is_utf8(&self) -> bool {
        !self.local.is_ascii() || !self.domain.is_ascii()
    }
}

impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

/// The sender in `MAIL FROM:`: a mailbox or the null path `<>` of bounces.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ReversePath {
    /// `<>`
    Null,
    /// `<local@domain>`
    Mailbox(Mailbox),
}

impl ReversePath {
    /// Parses `<>` or `<mailbox>`, ignoring an RFC 5321 source route.
    pub fn parse(s: &str) -> Result<Self, AddressError> {
        if s == "<>" {
            return Ok(Self::Null);
        }
        parse_bracketed(s).map(Self::Mailbox)
    }

    /// The mailbox, unless this is the null path.
    pub fn mailbox(&self) -> Option<&Mailbox> {
        match self {
            Self::Null => None,
            Self::Mailbox(m) => Some(m),
        }
    }

    /// True when the mailbox carries non-ASCII characters.
    pub fn is_utf8(&self) -> bool {
        self.mailbox().is_some_and(Mailbox::is_utf8)
    }
}

impl fmt::Display for ReversePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Null => f.write_str("<>"),
            Self::Mailbox(m) => write!(f, "<{m}>"),
        }
    }
}

/// The recipient in `RCPT TO:`: a mailbox or the special `<Postmaster>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ForwardPath {
    /// `<Postmaster>` without a domain (RFC 5321 §4.5.1).
    Postmaster,
    /// `<local@domain>`
    Mailbox(Mailbox),
}

impl ForwardPath {
    /// Parses `<Postmaster>` or `<mailbox>`, ignoring a source route.
    pub fn parse(s: &str) -> Result<Self, AddressError> {
        if s.eq_ignore_ascii_case("<postmaster>") {
            return Ok(Self::Postmaster);
        }
        parse_bracketed(s).map(Self::Mailbox)
    }

    /// The mailbox, unless this is the bare postmaster.
    pub fn mailbox(&self) -> Option<&Mailbox> {
        match self {
            Self::Postmaster => None,
            Self::Mailbox(m) => Some(m),
        }
    }

    /// True when the mailbox carries non-ASCII characters.
    pub fn is_utf8(&self) -> bool {
        self.mailbox().is_some_and(Mailbox::is_utf8)
    }
}

impl fmt::Display for ForwardPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Postmaster => f.write_str("<Postmaster>"),
            Self::Mailbox(m) => write!(f, "<{m}>"),
        }
    }
}

fn parse_bracketed(s: &str) -> Result<Mailbox, AddressError> {
    if s.len() > MAX_PATH {
        return Err(AddressError::TooLong {
            what: "path",
            len: s.len(),
            max: MAX_PATH,
        });
    }
    let inner = s
        .strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .ok_or(AddressError::Brackets)?;
    // A source route `@a,@b:` is obsolete; RFC 5321 §4.1.2 says accept and
    // ignore it. A quoted local part may contain ':' so only strip a route
    // that starts with '@'.
    let inner = match inner.strip_prefix('@') {
        Some(route) => route
            .split_once(':')
            .map(|(_, m)| m)
            .ok_or(AddressError::Brackets)?,
        None => inner,
    };
    Mailbox::parse(inner)
}

/// RFC 5321 atext, plus any non-ASCII character (RFC 6531 UTF8-non-ascii).
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || "!#$%&'*+-/=?^_`{|}~".contains(c)
        || (!c.is_ascii() && !c.is_control())
}

fn valid_local_part(s: &str) -> bool {
    if let Some(q) = s.strip_prefix('"') {
        let Some(body) = q.strip_suffix('"') else {
            return false;
        };
        let mut chars = body.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some(' '..='~') => {}
                    _ => return false,
                },
                '"' => return false,
                c if c == ' ' || c.is_ascii_graphic() || (!c.is_ascii() && !c.is_control()) => {}
                _ => return false,
            }
        }
        true
    } else {
        !s.is_empty()
            && s.split('.')
                .all(|atom| !atom.is_empty() && atom.chars().all(is_atext))
    }
}

/// Hostname: LDH labels (U-labels allowed for SMTPUTF8), at most 63 octets each.
pub(crate) fn valid_domain(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.len() <= MAX_DOMAIN
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| {
                    c.is_ascii_alphanumeric() || c == '-' || (!c.is_ascii() && c.is_alphanumeric())
                })
        })
}

/// `[192.0.2.1]` or `[IPv6:…]`; contents checked by the standard library.
pub(crate) fn valid_address_literal(s: &str) -> bool {
    let Some(inner) = s.strip_prefix('[').and_then(|s| s.strip_suffix(']')) else {
        return false;
    };
    match inner.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => inner
            .get(5..)
            .is_some_and(|a| a.parse::<std::net::Ipv6Addr>().is_ok()),
        _ => inner.parse::<std::net::Ipv4Addr>().is_ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_paths() {
        assert_eq!(ReversePath::parse("<>"), Ok(ReversePath::Null));
        let p = ForwardPath::parse("<a.b+c@mx.example.org>").unwrap();
        assert_eq!(p.to_string(), "<a.b+c@mx.example.org>");
        assert_eq!(
            ForwardPath::parse("<POSTMASTER>"),
            Ok(ForwardPath::Postmaster)
        );
        let routed = ForwardPath::parse("<@relay.example,@b.example:user@example.org>").unwrap();
        assert_eq!(routed.to_string(), "<user@example.org>");
        assert!(ForwardPath::parse("<\"john doe\"@[192.0.2.1]>").is_ok());
        assert!(ForwardPath::parse("<x@[IPv6:2001:db8::1]>").is_ok());
    }

    #[test]
    fn rejects_bad_paths_with_a_reason() {
        assert_eq!(
            ForwardPath::parse("user@example.org"),
            Err(AddressError::Brackets)
        );
        assert_eq!(ForwardPath::parse("<user>"), Err(AddressError::NoDomain));
        assert!(matches!(
            ForwardPath::parse("<a..b@example.org>"),
            Err(AddressError::LocalPart(_))
        ));
        assert!(matches!(
            ForwardPath::parse("<a@-x.org>"),
            Err(AddressError::Domain(_))
        ));
        assert!(matches!(
            ForwardPath::parse("<a@[300.1.1.1]>"),
            Err(AddressError::Domain(_))
        ));
        let long_local = format!("<{}@example.org>", "a".repeat(65));
        assert!(matches!(
            ForwardPath::parse(&long_local),
            Err(AddressError::TooLong {
                what: "local part",
                ..
            })
        ));
        let long_path = format!("<a@{}.org>", "b.".repeat(130));
        assert!(matches!(
            ForwardPath::parse(&long_path),
            Err(AddressError::TooLong { what: "path", .. })
        ));
    }

    #[test]
    fn utf8_addresses_are_flagged() {
        let p = ForwardPath::parse("<jösé@bücher.example>").unwrap();
        assert!(p.is_utf8());
        assert!(!ForwardPath::parse("<jose@example.org>").unwrap().is_utf8());
    }
}
