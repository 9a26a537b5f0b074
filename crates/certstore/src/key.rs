//! Private keys: generation (RSA 2048/3072/4096, ECDSA P-256/P-384) and import.
//! Whatever form a key arrives in (PKCS#8, PKCS#1 `RSA PRIVATE KEY`, SEC1
//! `EC PRIVATE KEY`) it is normalised to PKCS#8, the one form rustls, rcgen and
//! PKCS#12 all take, so the rest of the crate handles a single representation.

use std::fmt;
use std::str::FromStr;

use rcgen::{KeyPair, PublicKeyData};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::fingerprint::sha256_hex;

/// Which key to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[non_exhaustive]
pub enum KeySpec {
    /// RSA, 2048-bit modulus.
    Rsa2048,
    /// RSA, 3072-bit modulus.
    Rsa3072,
    /// RSA, 4096-bit modulus.
    Rsa4096,
    /// ECDSA on NIST P-256.
    EcdsaP256,
    /// ECDSA on NIST P-384.
    EcdsaP384,
}

impl KeySpec {
    /// Every accepted spelling, for help texts.
    pub const NAMES: &'static str = "rsa2048, rsa3072, rsa4096, ec-p256, ec-p384";
}

impl FromStr for KeySpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "rsa2048" | "rsa-2048" | "rsa" => Ok(KeySpec::Rsa2048),
            "rsa3072" | "rsa-3072" => Ok(KeySpec::Rsa3072),
            "rsa4096" | "rsa-4096" => Ok(KeySpec::Rsa4096),
            "ec-p256" | "p256" | "p-256" | "ecdsa-p256" | "ec" => Ok(KeySpec::EcdsaP256),
            "ec-p384" | "p384" | "p-384" | "ecdsa-p384" => Ok(KeySpec::EcdsaP384),
            _ => Err(Error::InvalidRequest(format!(
                "unknown key type {s:?}; use one of {}",
                KeySpec::NAMES
            ))),
        }
    }
}

impl fmt::Display for KeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeySpec::Rsa2048 => "rsa2048",
            KeySpec::Rsa3072 => "rsa3072",
            KeySpec::Rsa4096 => "rsa4096",
            KeySpec::EcdsaP256 => "ec-p256",
            KeySpec::EcdsaP384 => "ec-p384",
        })
    }
}

/// A private key held as PKCS#8 DER, with its public key (SPKI DER).
///
/// `Debug` never prints the key material.
#[derive(Clone)]
pub struct PrivateKey {
    pkcs8: Vec<u8>,
    spki: Vec<u8>,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("spki_sha256", &self.spki_sha256())
            .finish_non_exhaustive()
    }
}

impl PrivateKey {
    /// Generate a fresh key.
    pub fn generate(spec: KeySpec) -> Result<Self> {
        let pair = match spec {
            KeySpec::Rsa2048 => {
                KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)?
            }
            KeySpec::Rsa3072 => {
                KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_3072)?
            }
            KeySpec::Rsa4096 => {
                KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_4096)?
            }
            KeySpec::EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?,
            KeySpec::EcdsaP384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)?,
        };
        Ok(PrivateKey {
            pkcs8: pair.serialize_der(),
            spki: pair.subject_public_key_info(),
        })
    }

    /// Take a key in any of the DER forms rustls knows, normalising it to PKCS#8.
    /// `what` names the input in error messages.
    pub fn from_der(key: &PrivateKeyDer<'_>, what: &str) -> Result<Self> {
        let pkcs8 = match key {
            PrivateKeyDer::Pkcs8(k) => k.secret_pkcs8_der().to_vec(),
            PrivateKeyDer::Pkcs1(k) => pkcs1_to_pkcs8(k.secret_pkcs1_der(), what)?,
            PrivateKeyDer::Sec1(k) => sec1_to_pkcs8(k.secret_sec1_der(), what)?,
            _ => return Err(Error::bad_input(what, "unsupported private key format")),
        };
        Self::from_pkcs8(pkcs8, what)
    }

    /// Take a PKCS#8 DER key.
    pub fn from_pkcs8(pkcs8: Vec<u8>, what: &str) -> Result<Self> {
        let pair = KeyPair::try_from(pkcs8.as_slice()).map_err(|e| {
            Error::bad_input(
                what,
                format!(
                    "not a usable private key (RSA, ECDSA P-256/P-384 or Ed25519 expected): {e}"
                ),
            )
        })?;
        Ok(PrivateKey {
            spki: pair.subject_public_key_info(),
            pkcs8,
        })
    }

    /// The key as an rcgen key pair, for signing certificates and CSRs.
    pub(crate) fn key_pair(&self) -> Result<KeyPair> {
        Ok(KeyPair::try_from(self.pkcs8.as_slice())?)
    }

    /// PKCS#8 DER of the secret key.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The key in the form rustls takes.
    pub fn to_rustls(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.pkcs8.clone()))
    }

    /// PEM (`PRIVATE KEY`) of the secret key.
    pub fn to_pem(&self) -> String {
        crate::pem::encode("PRIVATE KEY", &self.pkcs8)
    }

    /// DER SubjectPublicKeyInfo of the public half.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    /// SHA-256 of the SubjectPublicKeyInfo, colon-separated hex.
    pub fn spki_sha256(&self) -> String {
        sha256_hex(&self.spki)
    }
}

fn pkcs1_to_pkcs8(der: &[u8], what: &str) -> Result<Vec<u8>> {
    use aws_lc_rs::encoding::AsDer;
    let pair = aws_lc_rs::rsa::KeyPair::from_der(der)
        .map_err(|e| Error::bad_input(what, format!("not a valid RSA private key: {e}")))?;
    let pkcs8 = pair
        .as_der()
        .map_err(|_| Error::bad_input(what, "cannot re-encode the RSA key as PKCS#8"))?;
    Ok(pkcs8.as_ref().to_vec())
}

fn sec1_to_pkcs8(der: &[u8], what: &str) -> Result<Vec<u8>> {
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair,
    };
    for alg in [
        &ECDSA_P256_SHA256_ASN1_SIGNING,
        &ECDSA_P384_SHA384_ASN1_SIGNING,
    ] {
        if let Ok(pair) = EcdsaKeyPair::from_private_key_der(alg, der) {
            let doc = pair
                .to_pkcs8v1()
                .map_err(|_| Error::bad_input(what, "cannot re-encode the EC key as PKCS#8"))?;
            return Ok(doc.as_ref().to_vec());
        }
    }
    Err(Error::bad_input(
        what,
        "not a valid EC private key on P-256 or P-384",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_names_round_trip() {
        for spec in [
            KeySpec::Rsa2048,
            KeySpec::Rsa3072,
            KeySpec::Rsa4096,
            KeySpec::EcdsaP256,
            KeySpec::EcdsaP384,
        ] {
            assert_eq!(spec.to_string().parse::<KeySpec>().unwrap(), spec);
        }
        assert!("dsa1024".parse::<KeySpec>().is_err());
    }

    #[test]
    fn generated_key_reloads_with_same_public_key() {
        let key = PrivateKey::generate(KeySpec::EcdsaP256).unwrap();
        let again = PrivateKey::from_pkcs8(key.pkcs8_der().to_vec(), "test").unwrap();
        assert_eq!(key.spki_der(), again.spki_der());
        assert!(!format!("{key:?}").contains("pkcs8"));
    }

    #[test]
    fn garbage_key_is_refused() {
        let err =
            PrivateKey::from_pkcs8(vec![0x30, 0x03, 0x02, 0x01, 0x00], "key.pem").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("key.pem: not a usable private key"),
            "{err}"
        );
    }
}
