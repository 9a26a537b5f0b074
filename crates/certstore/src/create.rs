//! Building certificates and CSRs with rcgen: the self-signed certificate an
//! operator creates first (and sends a CSR for), the CSR itself, and the
//! validation of what the operator typed (country code, FQDNs, lifetime).

use std::net::IpAddr;

use der::Decode;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, DnValue, ExtendedKeyUsagePurpose,
    KeyUsagePurpose, SanType,
};
use rustls_pki_types::CertificateDer;
use serde::Serialize;
use x509_cert::ext::pkix::name::DirectoryString;

use crate::country::country_name;
use crate::error::{Error, Result};
use crate::info::CertInfo;
use crate::key::{KeySpec, PrivateKey};
use crate::names::check_fqdn;

/// Longest lifetime accepted for a self-signed certificate, in days.
pub const MAX_DAYS: u32 = 3650;

/// What an operator asks for when creating a self-signed certificate.
#[derive(Debug, Clone, Serialize)]
pub struct SelfSignedRequest {
    /// Common name: the server's FQDN, e.g. `mx1.example.com`.
    pub common_name: String,
    /// Organisation (O).
    pub organization: Option<String>,
    /// Organisational unit (OU).
    pub unit: Option<String>,
    /// Locality / city (L).
    pub locality: Option<String>,
    /// State or province (ST).
    pub state: Option<String>,
    /// Two-letter ISO 3166 country (C).
    pub country: Option<String>,
    /// Days until expiry (1 to [`MAX_DAYS`]).
    pub days: u32,
    /// Subject alternative names: DNS names (`*.example.com` allowed) or IP
    /// addresses. The common name is always added as a DNS name, because
    /// clients ignore the CN when SANs are present.
    pub sans: Vec<String>,
    /// Key type and size.
    pub key: KeySpec,
    /// Refuse a CN or DNS SAN that is not a fully qualified domain name.
    pub check_fqdn: bool,
}

impl SelfSignedRequest {
    /// A request for `common_name` with defaults: one year, RSA 2048 (what
    /// every peer MTA accepts), FQDN check on.
    pub fn new(common_name: impl Into<String>) -> Self {
        SelfSignedRequest {
            common_name: common_name.into(),
            organization: None,
            unit: None,
            locality: None,
            state: None,
            country: None,
            days: 365,
            sans: Vec::new(),
            key: KeySpec::Rsa2048,
            check_fqdn: true,
        }
    }

    /// Check everything an operator typed; no key is generated before this passes.
    pub fn validate(&self) -> Result<()> {
        if self.common_name.trim().is_empty() {
            return Err(Error::InvalidRequest(
                "the common name must not be empty".into(),
            ));
        }
        if self.check_fqdn {
            check_fqdn("common name", &self.common_name, false)?;
        }
        if let Some(c) = &self.country
            && country_name(c).is_none()
        {
            return Err(Error::InvalidCountry(c.clone()));
        }
        if self.days == 0 || self.days > MAX_DAYS {
            return Err(Error::InvalidRequest(format!(
                "validity of {} days is out of range (1 to {MAX_DAYS})",
                self.days
            )));
        }
        for (field, value) in [
            ("organisation", &self.organization),
            ("unit", &self.unit),
            ("locality", &self.locality),
            ("state", &self.state),
        ] {
            if let Some(v) = value
                && (v.is_empty() || v.chars().count() > 64)
            {
                return Err(Error::InvalidRequest(format!(
                    "{field} must be 1 to 64 characters (X.520 upper bound), got {} characters",
                    v.chars().count()
                )));
            }
        }
        for san in &self.sans {
            self.san(san)?;
        }
        Ok(())
    }

    fn san(&self, value: &str) -> Result<SanType> {
        if let Ok(ip) = value.parse::<IpAddr>() {
            return Ok(SanType::IpAddress(ip));
        }
        if self.check_fqdn {
            check_fqdn("subject alternative name", value, true)?;
        }
        let ia5 = value.to_owned().try_into().map_err(|_| Error::NotFqdn {
            field: "subject alternative name",
            value: value.to_owned(),
            reason: "it contains characters that are not allowed in a DNS name".into(),
        })?;
        if value.is_empty() || value.contains(char::is_whitespace) {
            return Err(Error::NotFqdn {
                field: "subject alternative name",
                value: value.to_owned(),
                reason: "it is empty or contains white space".into(),
            });
        }
        Ok(SanType::DnsName(ia5))
    }

    pub(crate) fn params(&self) -> Result<CertificateParams> {
        self.validate()?;
        let mut p = CertificateParams::default();
        // rcgen's default name holds a placeholder CN that would fix the CN's
        // position first; start empty so the order is C, ST, L, O, OU, CN.
        p.distinguished_name = DistinguishedName::new();
        let dn = &mut p.distinguished_name;
        if let Some(c) = &self.country {
            dn.push(
                DnType::CountryName,
                DnValue::PrintableString(c.clone().try_into()?),
            );
        }
        for (ty, value) in [
            (DnType::StateOrProvinceName, &self.state),
            (DnType::LocalityName, &self.locality),
            (DnType::OrganizationName, &self.organization),
            (DnType::OrganizationalUnitName, &self.unit),
        ] {
            if let Some(v) = value {
                dn.push(ty, v.as_str());
            }
        }
        dn.push(DnType::CommonName, self.common_name.as_str());
        let mut names = vec![self.common_name.clone()];
        names.extend(
            self.sans
                .iter()
                .filter(|s| **s != self.common_name)
                .cloned(),
        );
        for name in &names {
            p.subject_alt_names.push(self.san(name)?);
        }
        server_usages(&mut p, self.key);
        let now = time::OffsetDateTime::now_utc();
        // Back-date a little so peers with a slow clock accept it at once.
        p.not_before = now - time::Duration::minutes(5);
        p.not_after = now + time::Duration::days(i64::from(self.days));
        Ok(p)
    }
}

fn server_usages(p: &mut CertificateParams, key: KeySpec) {
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    if matches!(key, KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096) {
        p.key_usages.push(KeyUsagePurpose::KeyEncipherment);
    }
    // An MTA is a TLS server (inbound) and a TLS client (outbound).
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
}

/// Generate a key and a self-signed certificate for `req`.
pub(crate) fn self_signed(
    req: &SelfSignedRequest,
) -> Result<(PrivateKey, CertificateDer<'static>)> {
    let params = req.params()?;
    let key = PrivateKey::generate(req.key)?;
    let cert = params.self_signed(&key.key_pair()?)?;
    Ok((key, cert.der().clone()))
}

/// A PEM CSR for `key` carrying the subject and SANs of `cert` (the entry's
/// current certificate), so the CA issues the same names again.
pub(crate) fn csr_from_cert(cert: &CertificateDer<'_>, key: &PrivateKey) -> Result<String> {
    let parsed = x509_cert::Certificate::from_der(cert)
        .map_err(|e| Error::bad_input("stored certificate", format!("cannot be parsed: {e}")))?;
    let info = CertInfo::from_der(cert, "stored certificate")?;
    let mut p = CertificateParams::default();
    p.distinguished_name = DistinguishedName::new();
    for atv in parsed.tbs_certificate().subject().iter() {
        let text = DirectoryString::try_from(&atv.value)
            .map(|d| d.value().into_owned())
            .or_else(|_| {
                atv.value
                    .decode_as::<der::asn1::Ia5String>()
                    .map(|s| s.to_string())
            })
            .map_err(|e| {
                Error::bad_input(
                    "stored certificate",
                    format!("subject attribute {} cannot be read: {e}", atv.oid),
                )
            })?;
        let ty = match atv.oid.to_string().as_str() {
            "2.5.4.6" => DnType::CountryName,
            "2.5.4.7" => DnType::LocalityName,
            "2.5.4.8" => DnType::StateOrProvinceName,
            "2.5.4.10" => DnType::OrganizationName,
            "2.5.4.11" => DnType::OrganizationalUnitName,
            "2.5.4.3" => DnType::CommonName,
            _ => DnType::CustomDnType(atv.oid.arcs().map(u64::from).collect()),
        };
        let value = if ty == DnType::CountryName {
            DnValue::PrintableString(text.try_into()?)
        } else {
            DnValue::Utf8String(text)
        };
        p.distinguished_name.push(ty, value);
    }
    for san in &info.sans {
        if let Some(dns) = san.strip_prefix("DNS:") {
            p.subject_alt_names
                .push(SanType::DnsName(dns.to_owned().try_into()?));
        } else if let Some(ip) = san.strip_prefix("IP:").and_then(|ip| ip.parse().ok()) {
            p.subject_alt_names.push(SanType::IpAddress(ip));
        }
    }
    let csr = p.serialize_request(&key.key_pair()?)?;
    Ok(csr.pem()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> SelfSignedRequest {
        let mut r = SelfSignedRequest::new("mx1.example.com");
        r.key = KeySpec::EcdsaP256;
        r.country = Some("DE".into());
        r.organization = Some("Example GmbH".into());
        r.sans = vec!["mail.example.com".into(), "192.0.2.1".into()];
        r
    }

    #[test]
    fn creates_certificate_with_requested_names() {
        let (key, der) = self_signed(&req()).unwrap();
        let info = CertInfo::from_der(&der, "t").unwrap();
        // RFC 4514 prints the most specific RDN first; encoded order is C, O, CN.
        assert_eq!(info.subject, "CN=mx1.example.com,O=Example GmbH,C=DE");
        assert_eq!(
            info.sans,
            vec![
                "DNS:mx1.example.com",
                "DNS:mail.example.com",
                "IP:192.0.2.1"
            ]
        );
        assert_eq!(info.spki_sha256, key.spki_sha256());
        let days = info.not_before.days_until(info.not_after);
        assert!((365..=366).contains(&days), "{days}");
    }

    #[test]
    fn refuses_bad_requests() {
        let mut r = req();
        r.country = Some("UK".into());
        assert!(matches!(r.validate(), Err(Error::InvalidCountry(_))));
        let mut r = req();
        r.common_name = "mx1".into();
        assert!(matches!(r.validate(), Err(Error::NotFqdn { .. })));
        r.check_fqdn = false;
        r.validate().unwrap();
        let mut r = req();
        r.sans.push("bad name".into());
        r.check_fqdn = false;
        assert!(r.validate().is_err());
        let mut r = req();
        r.days = 0;
        assert!(r.validate().is_err());
    }

    #[test]
    fn csr_carries_subject_and_sans() {
        let (key, der) = self_signed(&req()).unwrap();
        let pem = csr_from_cert(&der, &key).unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
        use rustls_pki_types::pem::PemObject;
        let der =
            rustls_pki_types::CertificateSigningRequestDer::from_pem_slice(pem.as_bytes()).unwrap();
        // The subject and the SAN names travel in the request.
        let bytes = der.as_ref();
        for needle in [
            &b"mx1.example.com"[..],
            b"mail.example.com",
            b"Example GmbH",
        ] {
            assert!(bytes.windows(needle.len()).any(|w| w == needle));
        }
    }
}
