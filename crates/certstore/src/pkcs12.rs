//! PKCS#12 (`.p12`/`.pfx`) import and export with a passphrase, through
//! `p12-keystore`. Export uses what OpenSSL 3 writes by default (PBES2
//! AES-256-CBC, HMAC-SHA-256 MAC) or, on request, the legacy 3DES/SHA-1
//! profile old Windows and Java versions need. Import reads both, and what
//! `openssl pkcs12 -export` writes with or without `-legacy`. This parser sees
//! untrusted bytes (fuzz target `cert_pkcs12`).

use p12_keystore::{EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm, PrivateKeyChain};
use rustls_pki_types::CertificateDer;

use crate::error::{Error, Result};
use crate::key::PrivateKey;

/// What a PKCS#12 file held: one key, the certificate for it, other certificates.
#[derive(Debug)]
pub struct Pkcs12Contents {
    /// The private key.
    pub key: PrivateKey,
    /// The certificate whose public key is `key`'s.
    pub leaf: CertificateDer<'static>,
    /// All other certificates, in file order (intermediates, maybe a root).
    pub others: Vec<CertificateDer<'static>>,
}

/// Read a PKCS#12 file. `what` names it in error messages.
pub fn read(data: &[u8], passphrase: &str, what: &str) -> Result<Pkcs12Contents> {
    let archive = p12_keystore::Pkcs12Archive::from_pkcs12(data, passphrase)
        .map_err(|e| map_error(e, what))?;
    let mut keys = archive.keys.into_iter();
    let key_bag = keys
        .next()
        .ok_or_else(|| Error::bad_input(what, "the PKCS#12 file contains no private key"))?;
    if keys.next().is_some() {
        return Err(Error::bad_input(
            what,
            "the PKCS#12 file contains more than one private key; export one certificate per file",
        ));
    }
    let key = PrivateKey::from_pkcs8(key_bag.key.as_der().to_vec(), what)?;
    let mut leaf = None;
    let mut others = Vec::new();
    for bag in archive.certs {
        let der = CertificateDer::from(bag.cert.as_der().to_vec());
        let info = crate::info::CertInfo::from_der(&der, what)?;
        if leaf.is_none() && info.spki_der == key.spki_der() {
            leaf = Some(der);
        } else {
            others.push(der);
        }
    }
    let leaf = leaf.ok_or_else(|| {
        Error::bad_input(
            what,
            "the PKCS#12 file has no certificate for its private key",
        )
    })?;
    Ok(Pkcs12Contents { key, leaf, others })
}

/// Write `key` and `chain` (leaf first) as PKCS#12 protected by `passphrase`.
/// `legacy` selects 3DES + SHA-1 instead of AES-256 + SHA-256.
pub fn write(
    key: &PrivateKey,
    chain: &[CertificateDer<'_>],
    passphrase: &str,
    friendly_name: &str,
    legacy: bool,
) -> Result<Vec<u8>> {
    if passphrase.is_empty() {
        return Err(Error::InvalidRequest(
            "refusing to export a private key with an empty passphrase".into(),
        ));
    }
    let to_p12 =
        |e: p12_keystore::error::Error| Error::Crypto(format!("cannot build PKCS#12: {e}"));
    let p12_key = p12_keystore::PrivateKey::from_der(key.pkcs8_der()).map_err(to_p12)?;
    let certs = chain
        .iter()
        .map(|c| p12_keystore::Certificate::from_der(c))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(to_p12)?;
    // The local key id ties the key bag to its certificate bag; OpenSSL uses
    // the certificate's SHA-1, any stable bytes will do.
    let key_id = key
        .spki_der()
        .iter()
        .rev()
        .take(20)
        .copied()
        .collect::<Vec<u8>>();
    let mut store = KeyStore::new();
    store.add_entry(
        friendly_name,
        KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(key_id, p12_key, certs)),
    );
    let mut writer = store.writer(passphrase);
    if legacy {
        writer = writer
            .encryption_algorithm(EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc)
            .mac_algorithm(MacAlgorithm::HmacSha1);
    }
    writer.write().map_err(to_p12)
}

fn map_error(e: p12_keystore::error::Error, what: &str) -> Error {
    use p12_keystore::error::Error as E;
    match e {
        E::MacError(_) | E::UnpadError => Error::WrongPassphrase {
            what: what.to_owned(),
        },
        E::DerError(d) => Error::bad_input(
            what,
            format!("not a PKCS#12 file, or it is truncated or damaged ({d})"),
        ),
        other => Error::bad_input(what, format!("cannot read PKCS#12: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> (PrivateKey, CertificateDer<'static>) {
        let mut req = crate::SelfSignedRequest::new("mx1.example.com");
        req.key = crate::KeySpec::EcdsaP256;
        crate::create::self_signed(&req).unwrap()
    }

    #[test]
    fn round_trip_modern_and_legacy() {
        let (key, cert) = sample();
        for legacy in [false, true] {
            let p12 = write(&key, std::slice::from_ref(&cert), "s3cret", "mx1", legacy).unwrap();
            let got = read(&p12, "s3cret", "t.p12").unwrap();
            assert_eq!(got.key.spki_der(), key.spki_der());
            assert_eq!(got.leaf, cert);
            assert!(got.others.is_empty());
        }
    }

    #[test]
    fn wrong_passphrase_and_damage_are_clear() {
        let (key, cert) = sample();
        let p12 = write(&key, &[cert], "s3cret", "mx1", false).unwrap();
        let err = read(&p12, "wrong", "t.p12").unwrap_err();
        assert!(matches!(err, Error::WrongPassphrase { .. }), "{err}");
        let err = read(&p12[..p12.len() / 2], "s3cret", "t.p12").unwrap_err();
        assert!(err.to_string().starts_with("t.p12: "), "{err}");
        assert!(read(b"garbage", "x", "t.p12").is_err());
        assert!(
            write(&key, &[], "", "x", false).is_err(),
            "empty passphrase must be refused"
        );
    }

    /// `default` cases unless `PROPTEST_CASES` asks for another number (a long
    /// run before a release).
    fn cases(default: u32) -> u32 {
        std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(default)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(cases(64)))]
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = read(&data, "pw", "fuzz");
        }
    }
}
