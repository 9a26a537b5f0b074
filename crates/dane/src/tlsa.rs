//! The TLSA record model (RFC 6698 §2) and its two parsers: presentation
//! format (zone-file text) and DNS wire format (RDATA bytes).
//!
//! Unknown field values are kept, not rejected: RFC 7671 §4 and RFC 7672
//! §2.1.1 say a client ignores records it cannot use while the rest of the
//! set still counts, and a set with nothing usable still makes TLS mandatory.
//! Only text or bytes that are not a TLSA record at all are parse errors.

use std::fmt;
use std::str::FromStr;

use crate::error::ParseError;
use crate::hex;

/// Certificate usage field (RFC 6698 §2.1.1, RFC 7218 acronyms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Usage {
    /// 0: CA constraint checked together with PKIX validation.
    PkixTa,
    /// 1: end-entity constraint checked together with PKIX validation.
    PkixEe,
    /// 2: trust anchor assertion (RFC 7671 §5.2).
    DaneTa,
    /// 3: domain-issued end-entity certificate or key (RFC 7671 §5.1).
    DaneEe,
    /// Any other value: the record is unusable.
    Unassigned(u8),
}

/// Selector field (RFC 6698 §2.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Selector {
    /// 0: the full DER certificate.
    FullCert,
    /// 1: the DER SubjectPublicKeyInfo.
    Spki,
    /// Any other value: the record is unusable.
    Unassigned(u8),
}

/// Matching type field (RFC 6698 §2.1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MatchingType {
    /// 0: the selected content itself.
    Exact,
    /// 1: SHA-256 of the selected content.
    Sha256,
    /// 2: SHA-512 of the selected content.
    Sha512,
    /// Any other value: the record is unusable.
    Unassigned(u8),
}

impl From<u8> for Usage {
    fn from(v: u8) -> Self {
        match v {
            0 => Self::PkixTa,
            1 => Self::PkixEe,
            2 => Self::DaneTa,
            3 => Self::DaneEe,
            n => Self::Unassigned(n),
        }
    }
}

impl From<Usage> for u8 {
    fn from(u: Usage) -> u8 {
        match u {
            Usage::PkixTa => 0,
            Usage::PkixEe => 1,
            Usage::DaneTa => 2,
            Usage::DaneEe => 3,
            Usage::Unassigned(n) => n,
        }
    }
}

impl From<u8> for Selector {
    fn from(v: u8) -> Self {
        match v {
            0 => Self::FullCert,
            1 => Self::Spki,
            n => Self::Unassigned(n),
        }
    }
}

impl From<Selector> for u8 {
    fn from(s: Selector) -> u8 {
        match s {
            Selector::FullCert => 0,
            Selector::Spki => 1,
            Selector::Unassigned(n) => n,
        }
    }
}

impl From<u8> for MatchingType {
    fn from(v: u8) -> Self {
        match v {
            0 => Self::Exact,
            1 => Self::Sha256,
            2 => Self::Sha512,
            n => Self::Unassigned(n),
        }
    }
}

impl From<MatchingType> for u8 {
    fn from(m: MatchingType) -> u8 {
        match m {
            MatchingType::Exact => 0,
            MatchingType::Sha256 => 1,
            MatchingType::Sha512 => 2,
            MatchingType::Unassigned(n) => n,
        }
    }
}

impl MatchingType {
    /// The digest length this matching type requires, if it is a digest.
    pub fn digest_len(self) -> Option<usize> {
        match self {
            Self::Sha256 => Some(32),
            Self::Sha512 => Some(64),
            Self::Exact | Self::Unassigned(_) => None,
        }
    }
}

/// Why a syntactically valid record cannot be used to authenticate a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unusable {
    /// The usage value is not assigned.
    UnknownUsage(u8),
    /// The selector value is not assigned.
    UnknownSelector(u8),
    /// The matching type value is not assigned.
    UnknownMatchingType(u8),
    /// A digest whose length does not fit its matching type.
    WrongDigestLength {
        /// Bytes the matching type needs.
        expected: usize,
        /// Bytes the record carries.
        found: usize,
    },
    /// No certificate association data at all.
    EmptyData,
    /// PKIX-TA/PKIX-EE, which SMTP does not use (RFC 7672 §3.1.3) unless
    /// [`MatchOptions::pkix`](crate::MatchOptions) enables them.
    PkixUsageDisabled,
    /// A SHA-256 record superseded by SHA-512 records of the same usage and
    /// selector (digest agility, RFC 7671 §9).
    WeakerDigest,
}

impl fmt::Display for Unusable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownUsage(n) => write!(f, "unknown certificate usage {n}"),
            Self::UnknownSelector(n) => write!(f, "unknown selector {n}"),
            Self::UnknownMatchingType(n) => write!(f, "unknown matching type {n}"),
            Self::WrongDigestLength { expected, found } => write!(
                f,
                "digest is {found} bytes, the matching type needs {expected}"
            ),
            Self::EmptyData => f.write_str("no certificate association data"),
            Self::PkixUsageDisabled => {
                f.write_str("PKIX-TA/PKIX-EE usages are not used for SMTP (RFC 7672 section 3.1.3)")
            }
            Self::WeakerDigest => f.write_str(
                "SHA-256 record ignored: SHA-512 records exist for the same usage and selector (RFC 7671 section 9)",
            ),
        }
    }
}

/// One TLSA record: usage, selector, matching type and association data.
///
/// Construction never fails on field values; [`TlsaRecord::intrinsic_unusable`]
/// says whether the record can ever be used.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TlsaRecord {
    usage: Usage,
    selector: Selector,
    matching: MatchingType,
    data: Vec<u8>,
}

impl TlsaRecord {
    /// Builds a record from its four fields.
    pub fn new(
        usage: impl Into<Usage>,
        selector: impl Into<Selector>,
        matching: impl Into<MatchingType>,
        data: Vec<u8>,
    ) -> Self {
        Self {
            usage: usage.into(),
            selector: selector.into(),
            matching: matching.into(),
            data,
        }
    }

    /// The certificate usage.
    pub fn usage(&self) -> Usage {
        self.usage
    }
    /// The selector.
    pub fn selector(&self) -> Selector {
        self.selector
    }
    /// The matching type.
    pub fn matching(&self) -> MatchingType {
        self.matching
    }
    /// The certificate association data.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Why this record can never be used, whatever the options; `None` if it
    /// is well formed with assigned values.
    pub fn intrinsic_unusable(&self) -> Option<Unusable> {
        if let Usage::Unassigned(n) = self.usage {
            return Some(Unusable::UnknownUsage(n));
        }
        if let Selector::Unassigned(n) = self.selector {
            return Some(Unusable::UnknownSelector(n));
        }
        if let MatchingType::Unassigned(n) = self.matching {
            return Some(Unusable::UnknownMatchingType(n));
        }
        if self.data.is_empty() {
            return Some(Unusable::EmptyData);
        }
        if let Some(expected) = self.matching.digest_len()
            && expected != self.data.len()
        {
            return Some(Unusable::WrongDigestLength {
                expected,
                found: self.data.len(),
            });
        }
        None
    }

    /// Parses TLSA RDATA in DNS wire format (RFC 6698 §2.1): three octets
    /// then the association data. Only fewer than three octets is an error.
    pub fn from_wire(rdata: &[u8]) -> Result<Self, ParseError> {
        match rdata {
            [u, s, m, data @ ..] => Ok(Self::new(*u, *s, *m, data.to_vec())),
            _ => Err(ParseError::WireTooShort { len: rdata.len() }),
        }
    }

    /// Encodes the RDATA in DNS wire format.
    pub fn to_wire(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(3 + self.data.len());
        out.push(self.usage.into());
        out.push(self.selector.into());
        out.push(self.matching.into());
        out.extend_from_slice(&self.data);
        out
    }

    /// Parses the presentation format `usage selector matching hex…`.
    ///
    /// Tolerates what zone files and `dig` output contain: any whitespace,
    /// hex split into several words, either case, parentheses, and a leading
    /// `owner [ttl] [class] TLSA` prefix (everything up to a `TLSA` word).
    pub fn from_presentation(text: &str) -> Result<Self, ParseError> {
        let cleaned: String = text
            .chars()
            .map(|c| if c == '(' || c == ')' { ' ' } else { c })
            .collect();
        let words: Vec<&str> = cleaned.split_whitespace().collect();
        // The last `TLSA` word is the type: an owner name may be `tlsa`
        // too, and hex data never contains the letters T, L or S.
        let start = words
            .iter()
            .rposition(|w| w.eq_ignore_ascii_case("TLSA"))
            .map_or(0, |i| i + 1);
        let mut fields = words.get(start..).unwrap_or_default().iter();
        let usage = number_field(fields.next(), "certificate usage")?;
        let selector = number_field(fields.next(), "selector")?;
        let matching = number_field(fields.next(), "matching type")?;
        let digits: String = fields.copied().collect();
        if digits.is_empty() {
            return Err(ParseError::MissingField("certificate association data"));
        }
        let data = hex::decode(&digits).map_err(|e| match e {
            hex::HexError::OddLength(n) => ParseError::OddHexLength { digits: n },
            hex::HexError::BadDigit(at) => ParseError::BadHexDigit {
                at,
                found: digits
                    .get(at..)
                    .and_then(|s| s.chars().next())
                    .unwrap_or('?'),
            },
        })?;
        Ok(Self::new(usage, selector, matching, data))
    }
}

fn number_field(word: Option<&&str>, what: &'static str) -> Result<u8, ParseError> {
    let word = word.ok_or(ParseError::MissingField(what))?;
    word.parse::<u8>().map_err(|_| ParseError::BadNumber {
        field: what,
        found: word.chars().take(40).collect(),
    })
}

impl FromStr for TlsaRecord {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_presentation(s)
    }
}

impl fmt::Display for TlsaRecord {
    /// Presentation format: `3 1 1 <lower-case hex>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {}",
            u8::from(self.usage),
            u8::from(self.selector),
            u8::from(self.matching),
            hex::encode(&self.data)
        )
    }
}

#[cfg(feature = "dns")]
impl From<&hickory_proto::rr::rdata::TLSA> for TlsaRecord {
    /// Converts hickory's TLSA RDATA, keeping unassigned values as unusable.
    fn from(t: &hickory_proto::rr::rdata::TLSA) -> Self {
        Self::new(
            u8::from(t.cert_usage),
            u8::from(t.selector),
            u8::from(t.matching),
            t.cert_data.clone(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presentation_tolerates_zone_file_forms() {
        let a: TlsaRecord = "3 1 1 0011AAbb".parse().unwrap();
        let b: TlsaRecord = "  3\t1 1 00 11\n aa BB ".parse().unwrap();
        let c: TlsaRecord = "_25._tcp.mx.example.com. 3600 IN TLSA ( 3 1 1 0011 aabb )"
            .parse()
            .unwrap();
        // An owner name spelled like the type (relative name `tlsa`).
        let d: TlsaRecord = "tlsa 300 IN TLSA 3 1 1 0011aabb".parse().unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(a, d);
        assert_eq!(a.to_string(), "3 1 1 0011aabb");
        assert_eq!(a.data(), &[0x00, 0x11, 0xaa, 0xbb]);
    }

    #[test]
    fn unknown_values_are_unusable_not_errors() {
        let r: TlsaRecord = "4 1 1 00".parse().unwrap();
        assert_eq!(r.intrinsic_unusable(), Some(Unusable::UnknownUsage(4)));
        let r: TlsaRecord = "3 2 1 00".parse().unwrap();
        assert_eq!(r.intrinsic_unusable(), Some(Unusable::UnknownSelector(2)));
        let r: TlsaRecord = "3 1 255 00".parse().unwrap();
        assert_eq!(
            r.intrinsic_unusable(),
            Some(Unusable::UnknownMatchingType(255))
        );
        let r: TlsaRecord = "3 1 1 00".parse().unwrap();
        assert_eq!(
            r.intrinsic_unusable(),
            Some(Unusable::WrongDigestLength {
                expected: 32,
                found: 1
            })
        );
    }

    #[test]
    fn syntax_errors_name_the_field() {
        assert!(matches!(
            "3 1".parse::<TlsaRecord>(),
            Err(ParseError::MissingField("matching type"))
        ));
        assert!(matches!(
            "3 x 1 00".parse::<TlsaRecord>(),
            Err(ParseError::BadNumber {
                field: "selector",
                ..
            })
        ));
        assert!(matches!(
            "3 1 1 0g".parse::<TlsaRecord>(),
            Err(ParseError::BadHexDigit { at: 1, found: 'g' })
        ));
        assert!(matches!(
            "256 1 1 00".parse::<TlsaRecord>(),
            Err(ParseError::BadNumber { .. })
        ));
        assert!(matches!(
            "3 1 1".parse::<TlsaRecord>(),
            Err(ParseError::MissingField(_))
        ));
    }

    #[test]
    fn wire_round_trip() {
        let r = TlsaRecord::from_wire(&[3, 1, 1, 0xde, 0xad]).unwrap();
        assert_eq!(r.usage(), Usage::DaneEe);
        assert_eq!(r.to_wire(), vec![3, 1, 1, 0xde, 0xad]);
        assert!(TlsaRecord::from_wire(&[3, 1]).is_err());
        let empty = TlsaRecord::from_wire(&[3, 1, 1]).unwrap();
        assert_eq!(empty.intrinsic_unusable(), Some(Unusable::EmptyData));
    }
}
