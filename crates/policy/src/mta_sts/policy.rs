//! The MTA-STS policy file (RFC 8461 §3.2) and its `mx` patterns (§4.1).
//!
//! Lines end in LF or CRLF; each is `key:` *WSP value. `version` must be
//! `STSv1`, `mode` none/testing/enforce, `max_age` 1-10 digits up to
//! 31557600, and `mx` (repeatable) `["*."] domain`; `mx` is required unless
//! the mode is `none`. Unknown keys are ignored. When `version`, `mode` or
//! `max_age` appears more than once the first instance is used (a later
//! line cannot weaken an earlier one); `mx` accumulates. Blank lines are
//! tolerated (the ABNF has none, but rejecting them would turn a cosmetic
//! slip into "no policy", which only helps an attacker). The body comes
//! from the network: untrusted bytes.

use std::fmt;

use crate::error::MtaStsPolicyError;
use crate::name::DomainName;

/// Largest policy body accepted (RFC 8461 §3.3 lets senders cap it at 64 KiB).
pub const MAX_POLICY_BYTES: usize = 64 * 1024;
/// Largest `max_age` (RFC 8461 §3.2: about one year).
pub const MAX_MAX_AGE: u32 = 31_557_600;

/// Policy mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StsMode {
    /// No active policy (used to retire one).
    None,
    /// Report failures, deliver anyway.
    Testing,
    /// Deliver only to matching MX hosts with verified certificates.
    Enforce,
}

impl StsMode {
    /// The policy-file spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            StsMode::None => "none",
            StsMode::Testing => "testing",
            StsMode::Enforce => "enforce",
        }
    }
}

/// An `mx` pattern: a host name, or `*.` + domain matching exactly one
/// additional left-most label.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MxPattern {
    /// Exactly this host.
    Exact(DomainName),
    /// `*.example.com`: `mx1.example.com`, not `example.com` nor `a.b.example.com`.
    Wildcard(DomainName),
}

impl MxPattern {
    /// Parses a pattern; IDN is normalised to A-labels.
    pub fn parse(input: &str) -> Result<Self, MtaStsPolicyError> {
        let bad = |reason: &str| MtaStsPolicyError::Mx {
            value: input.chars().take(100).collect(),
            reason: reason.to_owned(),
        };
        let (wild, rest) = match input.strip_prefix("*.") {
            Some(r) => (true, r),
            None => (false, input),
        };
        if rest.contains('*') {
            return Err(bad(
                "a wildcard is only allowed as the whole left-most label (*.example.com)",
            ));
        }
        let name = DomainName::parse(rest).map_err(|e| bad(&e.to_string()))?;
        if wild && name.label_count() < 2 {
            return Err(bad("a wildcard needs at least two labels after it"));
        }
        Ok(if wild {
            MxPattern::Wildcard(name)
        } else {
            MxPattern::Exact(name)
        })
    }

    /// Whether an MX host name matches (RFC 8461 §4.1).
    pub fn matches(&self, host: &DomainName) -> bool {
        match self {
            MxPattern::Exact(n) => n == host,
            MxPattern::Wildcard(base) => host.parent().as_ref() == Some(base),
        }
    }
}

impl fmt::Display for MxPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MxPattern::Exact(n) => write!(f, "{n}"),
            MxPattern::Wildcard(n) => write!(f, "*.{n}"),
        }
    }
}

/// A valid policy.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StsPolicy {
    mode: StsMode,
    max_age: u32,
    mx: Vec<MxPattern>,
}

impl StsPolicy {
    /// Builds a policy (for serving our own); same rules as parsing.
    pub fn new(mode: StsMode, max_age: u32, mx: Vec<MxPattern>) -> Result<Self, MtaStsPolicyError> {
        if max_age > MAX_MAX_AGE {
            return Err(MtaStsPolicyError::MaxAge(max_age.to_string()));
        }
        if mode != StsMode::None && mx.is_empty() {
            return Err(MtaStsPolicyError::NoMx(mode.as_str()));
        }
        Ok(StsPolicy { mode, max_age, mx })
    }

    /// Mode.
    pub fn mode(&self) -> StsMode {
        self.mode
    }

    /// Seconds the policy may be cached.
    pub fn max_age(&self) -> u32 {
        self.max_age
    }

    /// MX patterns.
    pub fn mx(&self) -> &[MxPattern] {
        &self.mx
    }

    /// Whether `host` is an MX this policy allows.
    pub fn allows_mx(&self, host: &DomainName) -> bool {
        self.mx.iter().any(|p| p.matches(host))
    }

    /// Parses a policy body.
    ///
    /// ```
    /// use portcullis_policy::mta_sts::{StsMode, StsPolicy};
    /// let p = StsPolicy::parse(b"version: STSv1\r\nmode: enforce\r\nmx: *.mail.example\r\nmax_age: 86400\r\n").unwrap();
    /// assert_eq!(p.mode(), StsMode::Enforce);
    /// assert_eq!(p.max_age(), 86400);
    /// ```
    pub fn parse(body: &[u8]) -> Result<Self, MtaStsPolicyError> {
        if body.len() > MAX_POLICY_BYTES {
            return Err(MtaStsPolicyError::TooLarge(body.len()));
        }
        let text = std::str::from_utf8(body).map_err(|_| MtaStsPolicyError::NotUtf8)?;
        let mut version: Option<&str> = None;
        let mut mode: Option<&str> = None;
        let mut max_age: Option<&str> = None;
        let mut mx = Vec::new();
        for (i, raw) in text.split('\n').enumerate() {
            let line_no = i + 1;
            let syntax = |reason: String| MtaStsPolicyError::Syntax {
                line: line_no,
                reason,
            };
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            if line.contains('\r') {
                return Err(syntax(
                    "carriage return not followed by line feed".to_owned(),
                ));
            }
            if line.is_empty() {
                continue;
            }
            let Some((key, value)) = line.split_once(':') else {
                return Err(syntax(format!(
                    "{:?} is not \"key: value\"",
                    line.chars().take(40).collect::<String>()
                )));
            };
            if !valid_key(key) {
                return Err(syntax(format!("key {key:?} is invalid")));
            }
            // sts-policy-field-delim = ":" *WSP; trailing *WSP ends the field.
            let value = value.trim_matches([' ', '\t']);
            if value.is_empty() {
                return Err(syntax(format!("{key} has no value")));
            }
            if value.chars().any(|c| c.is_control() && c != '\t') {
                return Err(syntax(format!("{key} value contains control characters")));
            }
            match key {
                "version" => {
                    version.get_or_insert(value);
                }
                "mode" => {
                    mode.get_or_insert(value);
                }
                "max_age" => {
                    max_age.get_or_insert(value);
                }
                "mx" => mx.push(MxPattern::parse(value)?),
                _ => {} // extensions are ignored
            }
        }
        let version = version.ok_or(MtaStsPolicyError::Missing("version"))?;
        if version != "STSv1" {
            return Err(MtaStsPolicyError::Version(version.to_owned()));
        }
        let mode = match mode.ok_or(MtaStsPolicyError::Missing("mode"))? {
            "none" => StsMode::None,
            "testing" => StsMode::Testing,
            "enforce" => StsMode::Enforce,
            other => return Err(MtaStsPolicyError::Mode(other.to_owned())),
        };
        let max_age_text = max_age.ok_or(MtaStsPolicyError::Missing("max_age"))?;
        let max_age = parse_max_age(max_age_text)
            .ok_or_else(|| MtaStsPolicyError::MaxAge(max_age_text.to_owned()))?;
        StsPolicy::new(mode, max_age, mx)
    }
}

impl fmt::Display for StsPolicy {
    /// The policy file, CRLF line endings.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "version: STSv1\r\nmode: {}\r\n", self.mode.as_str())?;
        for m in &self.mx {
            write!(f, "mx: {m}\r\n")?;
        }
        write!(f, "max_age: {}\r\n", self.max_age)
    }
}

fn parse_max_age(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v: u64 = s.parse().ok()?;
    u32::try_from(v).ok().filter(|v| *v <= MAX_MAX_AGE)
}

fn valid_key(k: &str) -> bool {
    let b = k.as_bytes();
    (1..=32).contains(&b.len())
        && b.first().is_some_and(|c| c.is_ascii_alphanumeric())
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> DomainName {
        DomainName::parse(s).unwrap()
    }

    const GOOD: &str = "version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\nmx: backupmx.example.com\nmax_age: 604800\n";

    #[test]
    fn lf_and_crlf_parse_alike() {
        let lf = StsPolicy::parse(GOOD.as_bytes()).unwrap();
        let crlf = StsPolicy::parse(GOOD.replace('\n', "\r\n").as_bytes()).unwrap();
        assert_eq!(lf, crlf);
        assert_eq!(lf.mx().len(), 3);
        let no_final_newline = GOOD.trim_end();
        assert_eq!(StsPolicy::parse(no_final_newline.as_bytes()).unwrap(), lf);
        assert!(
            StsPolicy::parse(GOOD.replace('\n', "\r").as_bytes()).is_err(),
            "bare CR"
        );
    }

    #[test]
    fn unknown_keys_ignored_and_whitespace() {
        let p = StsPolicy::parse(
            b"version:STSv1\nmode:\t testing \nfoo_bar: anything at all\nmx: mx.example\nmax_age: 0\n",
        )
        .unwrap();
        assert_eq!(p.mode(), StsMode::Testing);
        assert_eq!(p.max_age(), 0);
    }

    #[test]
    fn duplicate_keys_first_wins_mx_accumulates() {
        let p = StsPolicy::parse(
            b"version: STSv1\nmode: enforce\nmode: none\nmax_age: 100\nmax_age: 5\nmx: a.example\nmx: b.example\n",
        )
        .unwrap();
        assert_eq!(p.mode(), StsMode::Enforce);
        assert_eq!(p.max_age(), 100);
        assert_eq!(p.mx().len(), 2);
        // The first instance is used even when it is the invalid one.
        assert!(
            StsPolicy::parse(b"version: STSv2\nversion: STSv1\nmode: none\nmax_age: 1\n").is_err()
        );
    }

    #[test]
    fn max_age_range() {
        let with = |v: &str| {
            StsPolicy::parse(format!("version: STSv1\nmode: none\nmax_age: {v}\n").as_bytes())
        };
        assert_eq!(with("31557600").unwrap().max_age(), MAX_MAX_AGE);
        assert_eq!(with("0000000001").unwrap().max_age(), 1);
        for bad in [
            "31557601",
            "99999999999",
            "4294967296",
            "-1",
            "1e3",
            "+5",
            " ",
        ] {
            assert!(with(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn missing_fields() {
        assert_eq!(
            StsPolicy::parse(b"version: STSv1\nmode: enforce\nmax_age: 10\n"),
            Err(MtaStsPolicyError::NoMx("enforce"))
        );
        assert_eq!(
            StsPolicy::parse(b"version: STSv1\nmode: testing\nmax_age: 10\n"),
            Err(MtaStsPolicyError::NoMx("testing"))
        );
        assert!(StsPolicy::parse(b"version: STSv1\nmode: none\nmax_age: 10\n").is_ok());
        assert_eq!(
            StsPolicy::parse(b"mode: none\nmax_age: 10\n"),
            Err(MtaStsPolicyError::Missing("version"))
        );
        assert_eq!(
            StsPolicy::parse(b"version: STSv1\nmax_age: 10\n"),
            Err(MtaStsPolicyError::Missing("mode"))
        );
        assert_eq!(
            StsPolicy::parse(b"version: STSv1\nmode: none\n"),
            Err(MtaStsPolicyError::Missing("max_age"))
        );
        assert!(StsPolicy::parse(b"version: STSv1\nmode: Enforce\nmx: a.b\nmax_age: 1\n").is_err());
        assert!(StsPolicy::parse(b"version: STSv1\nmode none\n").is_err());
        assert!(StsPolicy::parse(b"version: STSv1\nmode: \n").is_err());
    }

    #[test]
    fn wildcard_depth() {
        let w = MxPattern::parse("*.example.com").unwrap();
        assert!(w.matches(&n("mx1.example.com")));
        assert!(!w.matches(&n("example.com")));
        assert!(!w.matches(&n("a.mx1.example.com")));
        assert!(!w.matches(&n("mx1.example.org")));
        for bad in [
            "*",
            "*.com",
            "**.example.com",
            "mx.*.example.com",
            "*example.com",
            "a*.example.com",
            "",
        ] {
            assert!(MxPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn idn_names() {
        let p = StsPolicy::parse(
            "version: STSv1\nmode: enforce\nmx: *.Bücher.example\nmax_age: 60\n".as_bytes(),
        )
        .unwrap();
        assert!(p.allows_mx(&n("mx.xn--bcher-kva.example")));
        assert!(p.allows_mx(&n("MX.bücher.example.")));
        assert!(p.to_string().contains("mx: *.xn--bcher-kva.example\r\n"));
    }

    #[test]
    fn size_and_encoding() {
        let big = format!(
            "version: STSv1\nmode: none\nmax_age: 1\nx: {}\n",
            "a".repeat(MAX_POLICY_BYTES)
        );
        assert!(matches!(
            StsPolicy::parse(big.as_bytes()),
            Err(MtaStsPolicyError::TooLarge(_))
        ));
        assert_eq!(
            StsPolicy::parse(b"version: STSv1\xff"),
            Err(MtaStsPolicyError::NotUtf8)
        );
        // UTF-8 in extension values is allowed.
        assert!(
            StsPolicy::parse(
                "version: STSv1\nmode: none\nmax_age: 1\nnote: ünïcode ok\n".as_bytes()
            )
            .is_ok()
        );
    }

    #[test]
    fn display_round_trips() {
        let p = StsPolicy::parse(GOOD.as_bytes()).unwrap();
        assert_eq!(StsPolicy::parse(p.to_string().as_bytes()).unwrap(), p);
    }
}
