//! EHLO keywords an embedder adds to what the server session advertises
//! (RFC 5321 §4.1.1.1), each for a TLS state: before STARTTLS, once TLS is
//! up, or both. The session's own extensions stay its own: a keyword whose
//! behaviour lives in the state machine (framing, size, TLS, 8-bit and UTF-8
//! handling) cannot be added, so an embedder cannot advertise what the
//! session would then refuse or mishandle.
//!
//! This is the advertising half of an extension only: a keyword's commands
//! and `MAIL`/`RCPT` parameters are still parsed by the session, which
//! answers verbs and parameters it does not know with `500`/`555`.

use std::fmt;

/// Most extensions an embedder may add: an EHLO reply must stay well within
/// what clients read (this crate's own client stops at
/// [`MAX_REPLY_LINES`](crate::MAX_REPLY_LINES)).
pub const MAX_EXTENSIONS: usize = 32;

/// Longest EHLO line: `250-` + line + CRLF must fit the 512 octets of
/// RFC 5321 §4.5.3.1.5.
const MAX_EHLO_LINE: usize = 512 - 4 - 2;

/// Keywords the session implements or deliberately withholds; it decides
/// when they are offered.
const OWNED_BY_SESSION: &[&str] = &[
    "PIPELINING",
    "SIZE",
    "8BITMIME",
    "ENHANCEDSTATUSCODES",
    "SMTPUTF8",
    "STARTTLS",
    "REQUIRETLS",
    // BDAT changes how message text is framed: only the session can offer it.
    "CHUNKING",
    "BINARYMIME",
];

/// In which TLS state an extension is advertised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Advertise {
    /// In every EHLO reply.
    Always,
    /// Only while the session is in cleartext.
    BeforeTls,
    /// Only once STARTTLS has succeeded (e.g. `AUTH PLAIN`, which must not
    /// expose a password in cleartext).
    WithTls,
}

impl Advertise {
    fn applies(self, tls_active: bool) -> bool {
        match self {
            Self::Always => true,
            Self::BeforeTls => !tls_active,
            Self::WithTls => tls_active,
        }
    }

    fn overlaps(self, other: Self) -> bool {
        [false, true]
            .into_iter()
            .any(|tls| self.applies(tls) && other.applies(tls))
    }
}

/// One EHLO line the embedder adds: a keyword and its parameters, e.g.
/// `DSN` or `AUTH PLAIN LOGIN`.
///
/// ```
/// use portcullis_smtp_tls::{Advertise, EhloExtension};
/// let auth = EhloExtension::new("auth plain", Advertise::WithTls).unwrap();
/// assert_eq!(auth.to_string(), "AUTH plain");
/// assert!(EhloExtension::new("STARTTLS", Advertise::Always).is_err());
/// assert!(EhloExtension::new("X-FOO bad\r\nparam", Advertise::Always).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EhloExtension {
    keyword: String,
    params: Vec<String>,
    when: Advertise,
}

impl EhloExtension {
    /// Parses `keyword *(SP param)`; the keyword is upper-cased (keywords
    /// are case-insensitive), parameters are kept as written.
    pub fn new(line: &str, when: Advertise) -> Result<Self, ExtensionError> {
        if line.len() > MAX_EHLO_LINE {
            return Err(ExtensionError::TooLong { len: line.len() });
        }
        let mut words = line.split(' ');
        let keyword = words.next().unwrap_or_default();
        let keyword_ok = keyword
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
            && keyword
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !keyword_ok {
            return Err(ExtensionError::BadKeyword(shorten(keyword)));
        }
        let keyword = keyword.to_ascii_uppercase();
        if OWNED_BY_SESSION.contains(&keyword.as_str()) {
            return Err(ExtensionError::OwnedBySession(keyword));
        }
        let params: Vec<String> = words.map(str::to_owned).collect();
        if let Some(bad) = params
            .iter()
            .find(|p| p.is_empty() || !p.bytes().all(|b| (33..=126).contains(&b)))
        {
            return Err(ExtensionError::BadParameter {
                keyword,
                param: shorten(bad),
            });
        }
        Ok(Self {
            keyword,
            params,
            when,
        })
    }

    /// The keyword, upper case.
    pub fn keyword(&self) -> &str {
        &self.keyword
    }

    /// The parameters after the keyword.
    pub fn params(&self) -> &[String] {
        &self.params
    }

    /// When it is advertised.
    pub fn when(&self) -> Advertise {
        self.when
    }

    /// Whether it belongs in an EHLO reply given the TLS state.
    pub(crate) fn offered(&self, tls_active: bool) -> bool {
        self.when.applies(tls_active)
    }
}

impl fmt::Display for EhloExtension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.keyword)?;
        for p in &self.params {
            write!(f, " {p}")?;
        }
        Ok(())
    }
}

/// Checks that `new` may join `existing`: no keyword twice in one EHLO
/// reply, and at most [`MAX_EXTENSIONS`].
pub(crate) fn check_addition(
    existing: &[EhloExtension],
    new: &EhloExtension,
) -> Result<(), ExtensionError> {
    if existing.len() >= MAX_EXTENSIONS {
        return Err(ExtensionError::TooMany);
    }
    if existing
        .iter()
        .any(|e| e.keyword == new.keyword && e.when.overlaps(new.when))
    {
        return Err(ExtensionError::Duplicate(new.keyword.clone()));
    }
    Ok(())
}

fn shorten(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Why an EHLO extension cannot be advertised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExtensionError {
    /// The keyword is not letters, digits and hyphens starting with a letter
    /// or digit (RFC 5321 §4.1.1.1 `ehlo-keyword`).
    #[error(
        "EHLO keyword {0:?} is invalid: use letters, digits and '-', starting with a letter or digit"
    )]
    BadKeyword(String),
    /// A parameter is empty or holds a character outside `!`..`~`.
    #[error(
        "EHLO parameter {param:?} of {keyword} is invalid: printable ASCII without spaces only"
    )]
    BadParameter {
        /// The extension's keyword.
        keyword: String,
        /// The parameter as given (shortened).
        param: String,
    },
    /// The line would exceed the 512 octets of an SMTP reply line.
    #[error("EHLO line is {len} octets; at most {MAX_EHLO_LINE} fit in a reply line")]
    TooLong {
        /// Its length.
        len: usize,
    },
    /// The session offers this keyword itself, when its state allows.
    #[error(
        "EHLO keyword {0} is advertised by the SMTP session itself and cannot be added by the embedder"
    )]
    OwnedBySession(String),
    /// The keyword is already advertised in an overlapping TLS state.
    #[error("EHLO keyword {0} is already advertised")]
    Duplicate(String),
    /// More than [`MAX_EXTENSIONS`].
    #[error("at most {MAX_EXTENSIONS} EHLO extensions can be added")]
    TooMany,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammar_of_keywords_and_parameters() {
        let e = EhloExtension::new("dsn", Advertise::Always).unwrap();
        assert_eq!((e.keyword(), e.params().len()), ("DSN", 0));
        let e = EhloExtension::new("X-EXPS GSSAPI=1 NTLM", Advertise::WithTls).unwrap();
        assert_eq!(e.to_string(), "X-EXPS GSSAPI=1 NTLM");
        for bad in [
            "",
            "-DSN",
            "D_SN",
            "DSN ",
            "DSN  X",
            "AUTH PL\u{e4}IN",
            "AUTH a\tb",
        ] {
            assert!(
                EhloExtension::new(bad, Advertise::Always).is_err(),
                "{bad:?} accepted"
            );
        }
        for owned in [
            "pipelining",
            "SIZE 10",
            "StartTLS",
            "REQUIRETLS",
            "chunking",
        ] {
            assert!(matches!(
                EhloExtension::new(owned, Advertise::Always),
                Err(ExtensionError::OwnedBySession(_))
            ));
        }
        let long = format!("X {}", "a".repeat(MAX_EHLO_LINE));
        assert!(matches!(
            EhloExtension::new(&long, Advertise::Always),
            Err(ExtensionError::TooLong { .. })
        ));
    }

    #[test]
    fn duplicates_only_when_the_tls_states_overlap() {
        let before = EhloExtension::new("AUTH LOGIN", Advertise::BeforeTls).unwrap();
        let after = EhloExtension::new("AUTH PLAIN LOGIN", Advertise::WithTls).unwrap();
        let always = EhloExtension::new("AUTH", Advertise::Always).unwrap();
        let list = vec![before.clone()];
        assert_eq!(check_addition(&list, &after), Ok(()));
        assert_eq!(
            check_addition(&list, &always),
            Err(ExtensionError::Duplicate("AUTH".into()))
        );
        assert_eq!(
            check_addition(&list, &before),
            Err(ExtensionError::Duplicate("AUTH".into()))
        );
        let full = vec![always; MAX_EXTENSIONS];
        assert_eq!(check_addition(&full, &after), Err(ExtensionError::TooMany));
    }
}
