//! The parts of an X.509 certificate DANE looks at: the DER bytes, the
//! SubjectPublicKeyInfo, subject/issuer names and the DNS names used for the
//! RFC 7672 §3.2.3 name check.
//!
//! Parsing uses `x509-cert`; nothing here verifies signatures (that is
//! rustls-webpki's job in [`crate::matching`]).

use std::cell::OnceCell;

use der::{Decode, Encode};
use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256, Sha512};
use x509_cert::Certificate;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

use crate::error::CertError;
use crate::tlsa::{MatchingType, Selector, TlsaRecord};

/// A certificate decoded once, with the fields DANE matching needs.
#[derive(Debug, Clone)]
pub(crate) struct ParsedCert {
    pub(crate) der: Vec<u8>,
    pub(crate) spki: Vec<u8>,
    /// SAN dNSNames, lower-cased.
    pub(crate) dns_names: Vec<String>,
    /// Subject common name(s), lower-cased; used only when there is no SAN.
    pub(crate) common_names: Vec<String>,
    pub(crate) has_san: bool,
    pub(crate) san_unreadable: bool,
    /// Digests already computed, indexed by [`digest_slot`]: a TLSA set
    /// from DNS may hold hundreds of records, and hashing each certificate
    /// once per record would make matching cost records × chain × hash.
    digests: [OnceCell<Vec<u8>>; 4],
}

#[cfg(test)]
thread_local! {
    /// Certificates parsed on this thread (tests bound the matcher's work).
    pub(crate) static PARSES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

fn digest_slot(selector: Selector, matching: MatchingType) -> Option<usize> {
    let s = match selector {
        Selector::FullCert => 0,
        Selector::Spki => 1,
        Selector::Unassigned(_) => return None,
    };
    let m = match matching {
        MatchingType::Sha256 => 0,
        MatchingType::Sha512 => 1,
        MatchingType::Exact | MatchingType::Unassigned(_) => return None,
    };
    Some(s * 2 + m)
}

impl ParsedCert {
    pub(crate) fn parse(der: &[u8], index: usize) -> Result<Self, CertError> {
        #[cfg(test)]
        PARSES.with(|n| n.set(n.get() + 1));
        let bad = |detail: String| CertError::BadCertificate { index, detail };
        let cert = Certificate::from_der(der).map_err(|e| bad(e.to_string()))?;
        let tbs = cert.tbs_certificate();
        let spki = tbs
            .subject_public_key_info()
            .to_der()
            .map_err(|e| bad(e.to_string()))?;
        let mut dns_names = Vec::new();
        let mut has_san = false;
        let mut san_unreadable = false;
        // A malformed SAN extension is treated as "no usable names" rather
        // than as a reason to fall back to the CN.
        match tbs.get_extension::<SubjectAltName>() {
            Ok(Some((_, san))) => {
                has_san = true;
                for name in san.0 {
                    if let GeneralName::DnsName(n) = name {
                        dns_names.push(n.as_str().to_ascii_lowercase());
                    }
                }
            }
            Ok(None) => {}
            Err(_) => {
                has_san = true;
                san_unreadable = true;
            }
        }
        let mut common_names = Vec::new();
        for atv in tbs.subject().iter() {
            if atv.oid == x509_cert::der::oid::db::rfc4519::COMMON_NAME
                && let Ok(s) = x509_cert::ext::pkix::name::DirectoryString::try_from(&atv.value)
            {
                common_names.push(s.value().to_ascii_lowercase());
            }
        }
        Ok(Self {
            der: der.to_vec(),
            spki,
            dns_names,
            common_names,
            has_san,
            san_unreadable,
            digests: Default::default(),
        })
    }

    /// The names the RFC 7672 §3.2.3 check compares: SAN dNSNames, or the
    /// subject CN only when the certificate has no dNSName at all. A SAN
    /// extension that cannot be decoded yields no names (no CN fallback).
    pub(crate) fn presented_names(&self) -> Vec<String> {
        if !self.dns_names.is_empty() || (self.has_san && self.san_unreadable) {
            self.dns_names.clone()
        } else {
            self.common_names.clone()
        }
    }

    /// Whether `record`'s association data is this certificate's (by its
    /// selector and matching type). Digests are computed once per certificate.
    pub(crate) fn matches(&self, record: &TlsaRecord) -> bool {
        let content: &[u8] = match record.selector() {
            Selector::FullCert => &self.der,
            Selector::Spki => &self.spki,
            Selector::Unassigned(_) => return false,
        };
        match record.matching() {
            MatchingType::Exact => content == record.data(),
            MatchingType::Unassigned(_) => false,
            mt => {
                match digest_slot(record.selector(), mt).and_then(|slot| self.digests.get(slot)) {
                    Some(cell) => {
                        cell.get_or_init(|| association_of(content, mt).unwrap_or_default())
                            .as_slice()
                            == record.data()
                    }
                    None => false,
                }
            }
        }
    }

    /// The bytes a TLSA record with this selector and matching type would
    /// carry for this certificate.
    pub(crate) fn association(
        &self,
        selector: Selector,
        matching: MatchingType,
    ) -> Option<Vec<u8>> {
        let content: &[u8] = match selector {
            Selector::FullCert => &self.der,
            Selector::Spki => &self.spki,
            Selector::Unassigned(_) => return None,
        };
        association_of(content, matching)
    }
}

/// Applies a matching type to selected content.
pub(crate) fn association_of(content: &[u8], matching: MatchingType) -> Option<Vec<u8>> {
    match matching {
        MatchingType::Exact => Some(content.to_vec()),
        MatchingType::Sha256 => Some(Sha256::digest(content).to_vec()),
        MatchingType::Sha512 => Some(Sha512::digest(content).to_vec()),
        MatchingType::Unassigned(_) => None,
    }
}

/// Reads every certificate from PEM text (leaf first), or a single DER
/// certificate when the input is not PEM.
pub fn certs_from_pem_or_der(input: &[u8]) -> Result<Vec<CertificateDer<'static>>, CertError> {
    use rustls_pki_types::pem::PemObject;
    if input.starts_with(&[0x30]) {
        return Ok(vec![CertificateDer::from(input.to_vec())]);
    }
    let certs = CertificateDer::pem_slice_iter(input)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CertError::BadPem(e.to_string()))?;
    if certs.is_empty() {
        return Err(CertError::Empty(
            " (expected PEM blocks \"-----BEGIN CERTIFICATE-----\")".into(),
        ));
    }
    Ok(certs)
}
