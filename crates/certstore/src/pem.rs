//! Reading certificates and keys from files an operator hands us: PEM (any
//! number of blocks, with text around them as `openssl` writes it) or a
//! single DER structure. This is the first parser that sees untrusted bytes,
//! so it never panics and names what it found wrong (fuzz targets `cert_pem`
//! and `cert_der`).

use der::Decode;
use rustls_pki_types::pem::{PemObject, SectionKind};
use rustls_pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer,
};

use crate::error::{Error, Result};

/// What a PEM/DER file contained.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Certificates, in file order; each one parses as X.509.
    pub certs: Vec<CertificateDer<'static>>,
    /// Private keys, in file order.
    pub keys: Vec<PrivateKeyDer<'static>>,
}

/// Parse PEM or DER input holding certificates and/or private keys.
/// `what` names the input in error messages (e.g. `certificate file mx1.pem`).
pub fn parse(input: &[u8], what: &str) -> Result<Parsed> {
    let mut out = Parsed::default();
    if input.first() == Some(&0x30) {
        // DER: one certificate, or one PKCS#8 key.
        if x509_cert::Certificate::from_der(input).is_ok() {
            out.certs.push(CertificateDer::from(input.to_vec()));
        } else if pkcs8_head(input) {
            out.keys.push(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                input.to_vec(),
            )));
        } else {
            let reason = match x509_cert::Certificate::from_der(input) {
                Err(e) => format!(
                    "binary (DER) input is neither an X.509 certificate nor a PKCS#8 key ({e})"
                ),
                Ok(_) => "binary (DER) input is not understood".to_owned(),
            };
            return Err(Error::bad_input(what, reason));
        }
        return Ok(out);
    }
    let text = input;
    if contains(text, b"-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        return Err(Error::bad_input(
            what,
            "the private key is encrypted; decrypt it first (openssl pkey -in key.pem -out plain.pem) or import a PKCS#12 file with its passphrase",
        ));
    }
    for (n, item) in <(SectionKind, Vec<u8>) as PemObject>::pem_slice_iter(text).enumerate() {
        let (kind, der) = item.map_err(|e| {
            Error::bad_input(what, format!("PEM block {}: {}", n + 1, pem_error(&e)))
        })?;
        match kind {
            SectionKind::Certificate => {
                x509_cert::Certificate::from_der(&der).map_err(|e| {
                    Error::bad_input(
                        what,
                        format!("PEM block {} is not a valid X.509 certificate: {e}", n + 1),
                    )
                })?;
                out.certs.push(CertificateDer::from(der));
            }
            SectionKind::PrivateKey => out
                .keys
                .push(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der))),
            SectionKind::RsaPrivateKey => out
                .keys
                .push(PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(der))),
            SectionKind::EcPrivateKey => out
                .keys
                .push(PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(der))),
            // CSRs, CRLs, public keys: not ours to import; ignoring them lets an
            // operator hand us a bundle a CA mailed without editing it.
            _ => {}
        }
    }
    if out.certs.is_empty() && out.keys.is_empty() {
        return Err(Error::bad_input(
            what,
            "no certificate or private key found (expected PEM blocks such as -----BEGIN CERTIFICATE----- or binary DER)",
        ));
    }
    Ok(out)
}

/// Parse input that must contain at least one certificate.
pub fn parse_certs(input: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let parsed = parse(input, what)?;
    if parsed.certs.is_empty() {
        return Err(Error::bad_input(what, "contains no certificate"));
    }
    Ok(parsed.certs)
}

/// Encode DER as a PEM block with 64-column lines (RFC 7468).
pub fn encode(label: &str, der: &[u8]) -> String {
    // Only fails on a label with invalid characters or absurd lengths; our
    // labels are constants, so an empty string is never seen in practice.
    der::pem::encode_string(label, der::pem::LineEnding::LF, der).unwrap_or_default()
}

/// Certificates as concatenated PEM blocks.
pub fn encode_certs<'a>(certs: impl IntoIterator<Item = &'a CertificateDer<'a>>) -> String {
    certs
        .into_iter()
        .map(|c| encode("CERTIFICATE", c))
        .collect()
}

fn pem_error(e: &rustls_pki_types::pem::Error) -> String {
    use rustls_pki_types::pem::Error as E;
    match e {
        E::MissingSectionEnd { end_marker } => format!(
            "truncated: the closing line {} is missing",
            String::from_utf8_lossy(end_marker)
        ),
        E::IllegalSectionStart { line } => {
            format!("malformed BEGIN line {:?}", String::from_utf8_lossy(line))
        }
        E::Base64Decode(m) => format!("damaged base64 content ({m})"),
        other => other.to_string(),
    }
}

/// PKCS#8 PrivateKeyInfo: SEQUENCE { INTEGER version (0|1), AlgorithmIdentifier, OCTET STRING, ... }
fn pkcs8_head(der: &[u8]) -> bool {
    let Ok(any) = der::asn1::Any::from_der(der) else {
        return false;
    };
    if der::Tagged::tag(&any) != der::Tag::Sequence {
        return false;
    }
    let mut reader = match der::SliceReader::new(any.value()) {
        Ok(r) => r,
        Err(_) => return false,
    };
    use der::Reader;
    let version: Result<u8, _> = reader.decode();
    let alg: Result<spki::AlgorithmIdentifierOwned, _> = reader.decode();
    let key: Result<der::asn1::OctetString, _> = reader.decode();
    matches!(version, Ok(0 | 1)) && alg.is_ok() && key.is_ok()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample_cert() -> Vec<u8> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let params = rcgen::CertificateParams::new(vec!["mx1.example.com".to_owned()]).unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn pem_round_trip_and_der() {
        let der = sample_cert();
        let pem = encode("CERTIFICATE", &der);
        let parsed = parse(
            format!("junk before\n{pem}text between\n{pem}").as_bytes(),
            "t",
        )
        .unwrap();
        assert_eq!(parsed.certs.len(), 2);
        assert_eq!(parsed.certs[0].as_ref(), der.as_slice());
        let parsed = parse(&der, "t").unwrap();
        assert_eq!(parsed.certs.len(), 1);
    }

    #[test]
    fn truncated_and_garbage_are_clear_errors() {
        let pem = encode("CERTIFICATE", &sample_cert());
        let truncated = &pem[..pem.len() / 2];
        let err = parse(truncated.as_bytes(), "cert.pem")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cert.pem") && err.contains("truncated"),
            "{err}"
        );

        let err = parse(b"hello world", "cert.pem").unwrap_err().to_string();
        assert!(err.contains("no certificate or private key found"), "{err}");

        let der = sample_cert();
        let err = parse(&der[..der.len() - 10], "cert.der")
            .unwrap_err()
            .to_string();
        assert!(err.contains("neither an X.509 certificate"), "{err}");

        let bad = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let err = parse(bad.as_bytes(), "c").unwrap_err().to_string();
        assert!(err.contains("PEM block 1"), "{err}");

        let enc =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n";
        let err = parse(enc.as_bytes(), "k").unwrap_err().to_string();
        assert!(err.contains("encrypted"), "{err}");
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = parse(&data, "fuzz");
        }

        #[test]
        fn mutated_pem_never_panics(pos in 0usize..2000, byte in any::<u8>()) {
            let mut pem = encode("CERTIFICATE", &sample_cert()).into_bytes();
            let i = pos % pem.len();
            pem[i] = byte;
            let _ = parse(&pem, "fuzz");
        }

        #[test]
        fn base64_roundtrips_through_pem_parser(data in proptest::collection::vec(any::<u8>(), 1..300)) {
            let pem = encode("PRIVATE KEY", &data);
            let parsed = parse(pem.as_bytes(), "t").unwrap();
            prop_assert_eq!(parsed.keys.len(), 1);
            prop_assert_eq!(parsed.keys[0].secret_der(), data.as_slice());
        }
    }
}
