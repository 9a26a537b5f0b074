//! What `show` and `list` print about one certificate, extracted with
//! `x509-cert`: subject, SANs, issuer, validity, key type and size, SHA-256
//! fingerprints of the certificate and of its SubjectPublicKeyInfo. Also the
//! facts the chain logic needs (raw names, key identifiers, CA flag).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use der::{Decode, Encode};
use serde::Serialize;
use spki::ObjectIdentifier;
use x509_cert::Certificate;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, SubjectAltName, SubjectKeyIdentifier,
};

use crate::error::{Error, Result};
use crate::fingerprint::sha256_hex;

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// A point in time, as Unix seconds and as RFC 3339 text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Timestamp {
    /// Seconds since 1970-01-01 UTC.
    pub unix: i64,
}

impl Timestamp {
    /// From a `SystemTime` (times before 1970 clamp to 0).
    pub fn from_system(t: SystemTime) -> Self {
        let unix = t
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Timestamp { unix }
    }

    /// Now.
    pub fn now() -> Self {
        Self::from_system(SystemTime::now())
    }

    /// As a `SystemTime`.
    pub fn to_system(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(u64::try_from(self.unix).unwrap_or(0))
    }

    /// Whole days from `self` until `later` (negative if `later` is earlier).
    pub fn days_until(self, later: Timestamp) -> i64 {
        (later.unix - self.unix).div_euclid(86_400)
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let fmt =
            time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
        match time::OffsetDateTime::from_unix_timestamp(self.unix)
            .ok()
            .and_then(|t| t.format(&fmt).ok())
        {
            Some(s) => f.write_str(&s),
            None => write!(f, "@{}", self.unix),
        }
    }
}

/// Public key algorithm and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyDescription {
    /// `RSA`, `ECDSA P-256`, `ECDSA P-384`, `ECDSA P-521`, `Ed25519` or the OID.
    pub algorithm: String,
    /// Key size in bits (RSA modulus length or curve size).
    pub bits: u32,
}

impl std::fmt::Display for KeyDescription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} bits", self.algorithm, self.bits)
    }
}

/// The facts about one certificate.
#[derive(Debug, Clone, Serialize)]
pub struct CertInfo {
    /// Subject DN (RFC 4514 form).
    pub subject: String,
    /// Subject common name, if any.
    pub common_name: Option<String>,
    /// Subject alternative names, as `DNS:name`, `IP:addr`, `email:x`.
    pub sans: Vec<String>,
    /// Issuer DN (RFC 4514 form).
    pub issuer: String,
    /// Serial number (hex).
    pub serial: String,
    /// Start of validity.
    pub not_before: Timestamp,
    /// End of validity.
    pub not_after: Timestamp,
    /// Public key.
    pub key: KeyDescription,
    /// SHA-256 of the whole certificate (DER).
    pub sha256: String,
    /// SHA-256 of the SubjectPublicKeyInfo (what TLSA `3 1 1` publishes).
    pub spki_sha256: String,
    /// Subject and issuer are the same name.
    pub self_signed: bool,
    /// basicConstraints CA flag.
    pub is_ca: bool,
    #[serde(skip)]
    pub(crate) subject_der: Vec<u8>,
    #[serde(skip)]
    pub(crate) issuer_der: Vec<u8>,
    #[serde(skip)]
    pub(crate) spki_der: Vec<u8>,
    #[serde(skip)]
    pub(crate) ski: Option<Vec<u8>>,
    #[serde(skip)]
    pub(crate) aki: Option<Vec<u8>>,
}

impl CertInfo {
    /// Parse a DER certificate. `what` names it in error messages.
    pub fn from_der(der: &[u8], what: &str) -> Result<Self> {
        let cert = Certificate::from_der(der)
            .map_err(|e| Error::bad_input(what, format!("not a valid X.509 certificate: {e}")))?;
        let bad = |e: der::Error| {
            Error::bad_input(what, format!("certificate field cannot be decoded: {e}"))
        };
        let tbs = cert.tbs_certificate();
        let subject_der = tbs.subject().to_der().map_err(bad)?;
        let issuer_der = tbs.issuer().to_der().map_err(bad)?;
        let spki_der = tbs.subject_public_key_info().to_der().map_err(bad)?;

        let mut sans = Vec::new();
        if let Ok(Some((_, san))) = tbs.get_extension::<SubjectAltName>() {
            for name in san.0 {
                match name {
                    GeneralName::DnsName(n) => sans.push(format!("DNS:{}", n.as_str())),
                    GeneralName::Rfc822Name(n) => sans.push(format!("email:{}", n.as_str())),
                    GeneralName::UniformResourceIdentifier(n) => {
                        sans.push(format!("URI:{}", n.as_str()))
                    }
                    GeneralName::IpAddress(ip) => {
                        sans.push(format!("IP:{}", ip_text(ip.as_bytes())))
                    }
                    _ => {}
                }
            }
        }
        let ski = match tbs.get_extension::<SubjectKeyIdentifier>() {
            Ok(Some((_, s))) => Some(s.0.as_bytes().to_vec()),
            _ => None,
        };
        let aki = match tbs.get_extension::<AuthorityKeyIdentifier>() {
            Ok(Some((_, a))) => a.key_identifier.map(|k| k.as_bytes().to_vec()),
            _ => None,
        };
        let is_ca = matches!(tbs.get_extension::<BasicConstraints>(), Ok(Some((_, bc))) if bc.ca);
        let common_name = tbs
            .subject()
            .common_name()
            .ok()
            .flatten()
            .map(|cn| cn.value().into_owned());

        Ok(CertInfo {
            subject: tbs.subject().to_string(),
            common_name,
            sans,
            issuer: tbs.issuer().to_string(),
            serial: hex_upper(tbs.serial_number().as_bytes()),
            not_before: Timestamp::from_system(tbs.validity().not_before.to_system_time()),
            not_after: Timestamp::from_system(tbs.validity().not_after.to_system_time()),
            key: describe_spki(&spki_der),
            sha256: sha256_hex(der),
            spki_sha256: sha256_hex(&spki_der),
            self_signed: subject_der == issuer_der,
            is_ca,
            subject_der,
            issuer_der,
            spki_der,
            ski,
            aki,
        })
    }

    /// A short label for messages: the CN if there is one, else the subject.
    pub fn label(&self) -> String {
        match &self.common_name {
            Some(cn) => format!("CN={cn}"),
            None if self.subject.is_empty() => format!("(empty subject, SHA-256 {})", self.sha256),
            None => self.subject.clone(),
        }
    }

    /// The dNSName SANs without the `DNS:` prefix.
    pub fn dns_names(&self) -> impl Iterator<Item = &str> {
        self.sans.iter().filter_map(|s| s.strip_prefix("DNS:"))
    }

    /// `Ok` if `now` is inside the validity period, else [`Error::NotValidNow`].
    pub fn check_valid_at(&self, now: Timestamp) -> Result<()> {
        if now > self.not_after {
            return Err(Error::NotValidNow {
                subject: self.label(),
                reason: format!("it expired on {}", self.not_after),
            });
        }
        if now < self.not_before {
            return Err(Error::NotValidNow {
                subject: self.label(),
                reason: format!("it is not valid before {}", self.not_before),
            });
        }
        Ok(())
    }

    /// Whether `issuer` plausibly issued `self`: names match and, when both
    /// carry them, the key identifiers match too.
    pub(crate) fn issued_by(&self, issuer: &CertInfo) -> bool {
        if self.issuer_der != issuer.subject_der {
            return false;
        }
        match (&self.aki, &issuer.ski) {
            (Some(a), Some(s)) => a == s,
            _ => true,
        }
    }
}

/// Algorithm and size of a DER SubjectPublicKeyInfo.
pub fn describe_spki(spki_der: &[u8]) -> KeyDescription {
    let unknown = |alg: String| KeyDescription {
        algorithm: alg,
        bits: 0,
    };
    let Ok(spki) = spki::SubjectPublicKeyInfoRef::from_der(spki_der) else {
        return unknown("unparsable key".into());
    };
    let oid = spki.algorithm.oid;
    if oid == RSA_ENCRYPTION {
        let bits = spki
            .subject_public_key
            .as_bytes()
            .and_then(rsa_modulus_bits)
            .unwrap_or(0);
        KeyDescription {
            algorithm: "RSA".into(),
            bits,
        }
    } else if oid == EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
        match curve {
            Some(c) if c == P256 => KeyDescription {
                algorithm: "ECDSA P-256".into(),
                bits: 256,
            },
            Some(c) if c == P384 => KeyDescription {
                algorithm: "ECDSA P-384".into(),
                bits: 384,
            },
            Some(c) if c == P521 => KeyDescription {
                algorithm: "ECDSA P-521".into(),
                bits: 521,
            },
            Some(c) => unknown(format!("ECDSA curve {c}")),
            None => unknown("ECDSA (unknown curve)".into()),
        }
    } else if oid == ED25519 {
        KeyDescription {
            algorithm: "Ed25519".into(),
            bits: 256,
        }
    } else {
        unknown(oid.to_string())
    }
}

fn rsa_modulus_bits(rsa_public_key: &[u8]) -> Option<u32> {
    // RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }
    #[derive(der::Sequence)]
    struct RsaPublicKey<'a> {
        modulus: der::asn1::UintRef<'a>,
        _exponent: der::asn1::UintRef<'a>,
    }
    let key = RsaPublicKey::from_der(rsa_public_key).ok()?;
    let bytes = key.modulus.as_bytes();
    let first = *bytes.first()?;
    let len = u32::try_from(bytes.len()).ok()?;
    Some((len - 1) * 8 + (8 - first.leading_zeros()))
}

fn ip_text(bytes: &[u8]) -> String {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        std::net::Ipv4Addr::from(v4).to_string()
    } else if let Ok(v6) = <[u8; 16]>::try_from(bytes) {
        std::net::Ipv6Addr::from(v6).to_string()
    } else {
        format!("(invalid {} bytes)", bytes.len())
    }
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cert(spec: crate::KeySpec) -> Vec<u8> {
        let key = crate::PrivateKey::generate(spec)
            .unwrap()
            .key_pair()
            .unwrap();
        let mut params = rcgen::CertificateParams::new(vec![
            "mx1.example.com".to_owned(),
            "192.0.2.7".to_owned(),
        ])
        .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "mx1.example.com");
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn extracts_names_keys_and_fingerprints() {
        let der = cert(crate::KeySpec::EcdsaP256);
        let info = CertInfo::from_der(&der, "t").unwrap();
        assert_eq!(info.common_name.as_deref(), Some("mx1.example.com"));
        assert_eq!(info.sans, vec!["DNS:mx1.example.com", "IP:192.0.2.7"]);
        assert_eq!(info.key.algorithm, "ECDSA P-256");
        assert!(info.self_signed);
        assert_eq!(info.sha256, sha256_hex(&der));
        assert!(info.not_after > info.not_before);
    }

    #[test]
    fn rsa_size_is_reported() {
        let info = CertInfo::from_der(&cert(crate::KeySpec::Rsa2048), "t").unwrap();
        assert_eq!(
            info.key,
            KeyDescription {
                algorithm: "RSA".into(),
                bits: 2048
            }
        );
    }

    #[test]
    fn timestamps_format() {
        assert_eq!(Timestamp { unix: 0 }.to_string(), "1970-01-01 00:00:00 UTC");
        assert_eq!(
            Timestamp { unix: 0 }.days_until(Timestamp {
                unix: 86_400 * 3 + 5
            }),
            3
        );
        assert_eq!(Timestamp { unix: 10 }.days_until(Timestamp { unix: 0 }), -1);
    }

    proptest! {
        #[test]
        fn arbitrary_der_never_panics(data in proptest::collection::vec(any::<u8>(), 0..1500)) {
            let _ = CertInfo::from_der(&data, "fuzz");
            let _ = describe_spki(&data);
        }
    }
}
