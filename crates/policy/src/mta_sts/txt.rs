//! The `_mta-sts.<domain>` TXT record (RFC 8461 §3.1):
//!
//! ```text
//! sts-text-record = sts-version 1*(sts-sep sts-field) [sts-sep]
//! sts-field       = sts-id / sts-extension
//! sts-version     = %s"v=STSv1"
//! sts-id          = %s"id=" 1*32(ALPHA / DIGIT)
//! sts-extension   = sts-ext-name "=" sts-ext-value
//! sts-ext-name    = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
//! sts-ext-value   = 1*(%x21-3A / %x3C / %x3E-7E)
//! sts-sep         = *WSP %x3B *WSP
//! ```
//!
//! Records that do not begin with `v=STSv1` are discarded; if the number
//! left is not exactly one, or that one is invalid, the domain has no
//! available policy. The record text comes from DNS: untrusted bytes.

use std::fmt;

use crate::error::MtaStsTxtError;

/// A valid `_mta-sts` record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StsTxtRecord {
    id: String,
    extensions: Vec<(String, String)>,
}

impl StsTxtRecord {
    /// The policy id (1-32 letters and digits, compared case-sensitively).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Extension fields in order, unknown to this version and ignored.
    pub fn extensions(&self) -> &[(String, String)] {
        &self.extensions
    }

    /// Builds a record (for serving our own domains' records).
    pub fn new(id: &str) -> Result<Self, MtaStsTxtError> {
        if valid_id(id) {
            Ok(StsTxtRecord {
                id: id.to_owned(),
                extensions: Vec::new(),
            })
        } else {
            Err(MtaStsTxtError::Syntax(format!(
                "id {id:?} must be 1 to 32 letters and digits"
            )))
        }
    }

    /// Parses one TXT record (its character-strings already concatenated).
    pub fn parse(record: &[u8]) -> Result<Self, MtaStsTxtError> {
        let err = |m: String| MtaStsTxtError::Syntax(m);
        let text =
            std::str::from_utf8(record).map_err(|_| err("record is not ASCII text".to_owned()))?;
        let rest = text
            .strip_prefix("v=STSv1")
            .ok_or_else(|| err("record does not start with v=STSv1".to_owned()))?;
        let mut fields = Vec::new();
        let mut rest = rest;
        loop {
            // sts-sep: *WSP ";" *WSP
            let after_wsp = rest.trim_start_matches([' ', '\t']);
            if after_wsp.is_empty() {
                if rest.is_empty() {
                    break;
                }
                return Err(err("trailing whitespace without ';'".to_owned()));
            }
            let Some(after_semi) = after_wsp.strip_prefix(';') else {
                return Err(err(format!(
                    "expected ';' before {:?}",
                    after_wsp.chars().take(20).collect::<String>()
                )));
            };
            let field_start = after_semi.trim_start_matches([' ', '\t']);
            if field_start.is_empty() {
                break; // optional final separator
            }
            let end = field_start
                .find([';', ' ', '\t'])
                .unwrap_or(field_start.len());
            let (field, tail) = field_start.split_at(end);
            fields.push(field);
            rest = tail;
        }
        if fields.is_empty() {
            return Err(err("no fields after v=STSv1".to_owned()));
        }
        let mut id = None;
        let mut extensions = Vec::new();
        for f in fields {
            let Some((name, value)) = f.split_once('=') else {
                return Err(err(format!("field {f:?} is not name=value")));
            };
            if name == "id" {
                if !valid_id(value) {
                    return Err(err(format!(
                        "id {value:?} must be 1 to 32 letters and digits"
                    )));
                }
                if id.is_some() {
                    return Err(err("id appears more than once".to_owned()));
                }
                id = Some(value.to_owned());
            } else {
                if !valid_ext_name(name) {
                    return Err(err(format!("extension name {name:?} is invalid")));
                }
                if value.is_empty()
                    || !value
                        .bytes()
                        .all(|b| (0x21..=0x7e).contains(&b) && b != b'=' && b != b';')
                {
                    return Err(err(format!("extension value {value:?} is invalid")));
                }
                extensions.push((name.to_owned(), value.to_owned()));
            }
        }
        let id = id.ok_or_else(|| err("record has no id field".to_owned()))?;
        Ok(StsTxtRecord { id, extensions })
    }

    /// Selects and parses the one `v=STSv1` record among all TXT records at
    /// `_mta-sts.<domain>` (RFC 8461 §3.1).
    ///
    /// ```
    /// use portcullis_policy::mta_sts::StsTxtRecord;
    /// let r = StsTxtRecord::select([&b"v=spf1 -all"[..], b"v=STSv1; id=20240101T000000;"]).unwrap();
    /// assert_eq!(r.id(), "20240101T000000");
    /// assert!(StsTxtRecord::select([&b"v=STSv1; id=a"[..], b"v=STSv1; id=b"]).is_err());
    /// ```
    pub fn select<'a>(records: impl IntoIterator<Item = &'a [u8]>) -> Result<Self, MtaStsTxtError> {
        let candidates: Vec<&[u8]> = records
            .into_iter()
            .filter(|r| {
                r.strip_prefix(b"v=STSv1")
                    .is_some_and(|rest| matches!(rest.first(), None | Some(b';' | b' ' | b'\t')))
            })
            .collect();
        match candidates.as_slice() {
            [] => Err(MtaStsTxtError::NoRecord),
            [one] => Self::parse(one),
            many => Err(MtaStsTxtError::MultipleRecords(many.len())),
        }
    }
}

impl fmt::Display for StsTxtRecord {
    /// The canonical form `v=STSv1; id=…;` followed by extensions.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v=STSv1; id={};", self.id)?;
        for (k, v) in &self.extensions {
            write!(f, " {k}={v};")?;
        }
        Ok(())
    }
}

fn valid_id(id: &str) -> bool {
    (1..=32).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn valid_ext_name(name: &str) -> bool {
    let b = name.as_bytes();
    (1..=32).contains(&b.len())
        && b.first().is_some_and(|c| c.is_ascii_alphanumeric())
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_records() {
        for (rec, id) in [
            ("v=STSv1; id=20160831085700Z;", "20160831085700Z"),
            ("v=STSv1;id=abc", "abc"),
            ("v=STSv1 ;\tid=abc ; ", "abc"),
            ("v=STSv1; id=ABC; ext.name-1=val:ue", "ABC"),
            ("v=STSv1; id=ab; ext=1;", "ab"),
        ] {
            let r = StsTxtRecord::parse(rec.as_bytes()).unwrap_or_else(|e| panic!("{rec}: {e}"));
            assert_eq!(r.id(), id);
        }
        let r = StsTxtRecord::parse(b"v=STSv1; id=x1; foo=bar").unwrap();
        assert_eq!(r.extensions(), &[("foo".to_owned(), "bar".to_owned())]);
    }

    #[test]
    fn invalid_records() {
        for rec in [
            "v=STSv1",
            "v=STSv1;",
            "v=STSv1; id=",
            "v=STSv1; id=abc-def",
            "v=STSv1; id=012345678901234567890123456789012",
            "v=STSv1; id=a; id=b",
            "v=stsv1; id=a",
            "v=STSv1 id=a",
            "v=STSv1; foo=bar",
            "v=STSv1; id=a; =x",
            "v=STSv1; id=a; _x=y",
            "v=STSv1; id=a; x=",
            "v=STSv1; id=a; x=b=c",
            "v=STSv1; id=a \t",
            " v=STSv1; id=a",
            "v=STSv1; id=a; x",
        ] {
            assert!(
                StsTxtRecord::parse(rec.as_bytes()).is_err(),
                "accepted {rec:?}"
            );
        }
        assert!(StsTxtRecord::parse(b"v=STSv1; id=\xff").is_err());
    }

    #[test]
    fn selection_per_rfc() {
        assert_eq!(
            StsTxtRecord::select(std::iter::empty::<&[u8]>()),
            Err(MtaStsTxtError::NoRecord)
        );
        assert_eq!(
            StsTxtRecord::select([&b"v=STSv1; id=a"[..], b"v=STSv1; id=a"]),
            Err(MtaStsTxtError::MultipleRecords(2))
        );
        // A record that merely starts with the letters is not a candidate.
        assert_eq!(
            StsTxtRecord::select([&b"v=STSv10; id=a"[..], b"v=STSv1; id=b"])
                .unwrap()
                .id(),
            "b"
        );
        // One candidate that is invalid: no policy.
        assert!(matches!(
            StsTxtRecord::select([&b"v=STSv1; id=!"[..]]),
            Err(MtaStsTxtError::Syntax(_))
        ));
    }

    #[test]
    fn display_round_trips() {
        let r = StsTxtRecord::parse(b"v=STSv1;id=abc;  x=1").unwrap();
        assert_eq!(r.to_string(), "v=STSv1; id=abc; x=1;");
        assert_eq!(StsTxtRecord::parse(r.to_string().as_bytes()).unwrap(), r);
    }
}
