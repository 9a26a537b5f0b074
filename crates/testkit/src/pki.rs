//! A throw-away PKI for tests: root CA → intermediate CA → leaf, plus the
//! broken variants delivery code must refuse (expired, not yet valid,
//! misnamed, self-signed). Everything is generated with rcgen at test time;
//! output is DER for rustls and PEM for files a config points at.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};

use crate::Error;

/// A root CA and an intermediate CA that issues leaves.
#[derive(Debug)]
pub struct TestPki {
    root: CertifiedIssuer<'static, KeyPair>,
    intermediate: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate chain (leaf first, root excluded) and its private key.
#[derive(Debug)]
pub struct Leaf {
    chain: Vec<CertificateDer<'static>>,
    chain_pem: String,
    key: PrivatePkcs8KeyDer<'static>,
    key_pem: String,
}

/// When a leaf is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Validity {
    Current,
    Expired,
    NotYetValid,
}

fn ca_params(cn: &str) -> Result<CertificateParams, Error> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name.push(DnType::CommonName, cn);
    p.distinguished_name
        .push(DnType::OrganizationName, "Portcullis test PKI");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = OffsetDateTime::now_utc();
    p.not_before = now - Duration::days(1);
    p.not_after = now + Duration::days(30);
    Ok(p)
}

fn leaf_params(names: &[&str], validity: Validity) -> Result<CertificateParams, Error> {
    let mut p = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
    if let Some(first) = names.first() {
        p.distinguished_name.push(DnType::CommonName, *first);
    }
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let now = OffsetDateTime::now_utc();
    (p.not_before, p.not_after) = match validity {
        Validity::Current => (now - Duration::hours(1), now + Duration::days(10)),
        Validity::Expired => (now - Duration::days(20), now - Duration::days(1)),
        Validity::NotYetValid => (now + Duration::days(1), now + Duration::days(20)),
    };
    Ok(p)
}

/// A random tag so two test PKIs never share a CA name (a verifier would
/// otherwise pick the wrong issuer and report a bad signature instead of an
/// unknown issuer).
fn unique_tag() -> String {
    use std::hash::{BuildHasher, RandomState};
    format!(
        "{:016x}",
        RandomState::new().hash_one(std::time::SystemTime::now())
    )
}

impl TestPki {
    /// A fresh root (`Portcullis Test Root <tag>`) and intermediate.
    pub fn new() -> Result<Self, Error> {
        let tag = unique_tag();
        let root = CertifiedIssuer::self_signed(
            ca_params(&format!("Portcullis Test Root {tag}"))?,
            KeyPair::generate()?,
        )?;
        let intermediate = CertifiedIssuer::signed_by(
            ca_params(&format!("Portcullis Test Intermediate {tag}"))?,
            KeyPair::generate()?,
            &root,
        )?;
        Ok(Self { root, intermediate })
    }

    /// The root certificate (the trust anchor), DER.
    pub fn root_der(&self) -> CertificateDer<'static> {
        self.root.der().clone()
    }

    /// The root certificate, PEM.
    pub fn root_pem(&self) -> String {
        self.root.pem()
    }

    /// The intermediate certificate, DER.
    pub fn intermediate_der(&self) -> CertificateDer<'static> {
        self.intermediate.der().clone()
    }

    /// Writes the root as PEM to `path` (e.g. for a custom CA list).
    pub fn write_root_pem(&self, path: &Path) -> Result<(), Error> {
        write(path, self.root_pem().as_bytes())
    }

    /// A root store holding only this PKI's root.
    pub fn root_store(&self) -> Result<rustls::RootCertStore, Error> {
        let mut store = rustls::RootCertStore::empty();
        store.add(self.root_der())?;
        Ok(store)
    }

    /// A rustls client configuration that trusts only this PKI.
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, Error> {
        Ok(Arc::new(
            rustls::ClientConfig::builder_with_provider(crate::provider())
                .with_safe_default_protocol_versions()?
                .with_root_certificates(self.root_store()?)
                .with_no_client_auth(),
        ))
    }

    fn issue(&self, names: &[&str], validity: Validity) -> Result<Leaf, Error> {
        let key = KeyPair::generate()?;
        let cert = leaf_params(names, validity)?.signed_by(&key, &self.intermediate)?;
        Ok(Leaf {
            chain: vec![cert.der().clone(), self.intermediate.der().clone()],
            chain_pem: cert.pem() + &self.intermediate.pem(),
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
            key_pem: key.serialize_pem(),
        })
    }

    /// A good leaf for `names` (DNS names or IP addresses), chain
    /// `[leaf, intermediate]`.
    pub fn leaf(&self, names: &[&str]) -> Result<Leaf, Error> {
        self.issue(names, Validity::Current)
    }

    /// A leaf whose validity ended yesterday.
    pub fn expired_leaf(&self, names: &[&str]) -> Result<Leaf, Error> {
        self.issue(names, Validity::Expired)
    }

    /// A leaf valid only from tomorrow.
    pub fn not_yet_valid_leaf(&self, names: &[&str]) -> Result<Leaf, Error> {
        self.issue(names, Validity::NotYetValid)
    }

    /// A good leaf for a name the client will not ask for (`wrong.invalid`
    /// plus `other_names`).
    pub fn misnamed_leaf(&self, other_names: &[&str]) -> Result<Leaf, Error> {
        let mut names = vec!["wrong.invalid"];
        names.extend_from_slice(other_names);
        self.issue(&names, Validity::Current)
    }
}

/// A self-signed leaf for `names`, outside any CA: PKIX must refuse it,
/// DANE-EE (3 1 1) may still match it.
pub fn self_signed_leaf(names: &[&str]) -> Result<Leaf, Error> {
    let key = KeyPair::generate()?;
    let cert = leaf_params(names, Validity::Current)?.self_signed(&key)?;
    Ok(Leaf {
        chain: vec![cert.der().clone()],
        chain_pem: cert.pem(),
        key: PrivatePkcs8KeyDer::from(key.serialize_der()),
        key_pem: key.serialize_pem(),
    })
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    std::fs::write(path, bytes).map_err(|e| Error::Io(format!("writing {}", path.display()), e))
}

impl Leaf {
    /// Reads a chain (PEM, leaf first) and a PKCS#8 key (PEM) from files.
    pub fn from_pem_files(chain: &Path, key: &Path) -> Result<Leaf, Error> {
        use rustls_pki_types::pem::PemObject;
        let chain_pem = std::fs::read_to_string(chain)
            .map_err(|e| Error::Io(format!("reading {}", chain.display()), e))?;
        let key_pem = std::fs::read_to_string(key)
            .map_err(|e| Error::Io(format!("reading {}", key.display()), e))?;
        let certs = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::Other(format!("{}: {e}", chain.display())))?;
        let key = PrivatePkcs8KeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| Error::Other(format!("{}: {e}", key.display())))?;
        Ok(Leaf {
            chain: certs,
            chain_pem,
            key,
            key_pem,
        })
    }

    /// The chain, leaf first, as a server presents it.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The private key (PKCS#8).
    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key.clone_key())
    }

    /// The chain as concatenated PEM blocks.
    pub fn chain_pem(&self) -> String {
        self.chain_pem.clone()
    }

    /// The key as a PKCS#8 PEM block.
    pub fn key_pem(&self) -> String {
        self.key_pem.clone()
    }

    /// Writes `<stem>.crt` (chain PEM) and `<stem>.key` (key PEM) into
    /// `dir`; returns both paths.
    pub fn write_pem(&self, dir: &Path, stem: &str) -> Result<(PathBuf, PathBuf), Error> {
        let crt = dir.join(format!("{stem}.crt"));
        let key = dir.join(format!("{stem}.key"));
        write(&crt, self.chain_pem().as_bytes())?;
        write(&key, self.key_pem().as_bytes())?;
        Ok((crt, key))
    }

    /// A rustls server configuration presenting this chain.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, Error> {
        Ok(Arc::new(
            rustls::ServerConfig::builder_with_provider(crate::provider())
                .with_safe_default_protocol_versions()?
                .with_no_client_auth()
                .with_single_cert(self.chain.clone(), self.key())?,
        ))
    }

    /// The signing key for a custom certificate resolver.
    pub fn certified_key(&self) -> Result<Arc<rustls::sign::CertifiedKey>, Error> {
        Ok(Arc::new(rustls::sign::CertifiedKey::from_der(
            self.chain.clone(),
            self.key(),
            &crate::provider(),
        )?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier;
    use rustls_pki_types::{ServerName, UnixTime};

    fn verify(pki: &TestPki, leaf: &Leaf, name: &str) -> Result<(), rustls::Error> {
        verify_chain(pki, leaf.chain(), name)
    }

    fn verify_chain(
        pki: &TestPki,
        chain: &[CertificateDer<'static>],
        name: &str,
    ) -> Result<(), rustls::Error> {
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(pki.root_store().unwrap()),
            crate::provider(),
        )
        .build()
        .unwrap();
        verifier
            .verify_server_cert(
                &chain[0],
                &chain[1..],
                &ServerName::try_from(name.to_string()).unwrap(),
                &[],
                UnixTime::now(),
            )
            .map(|_| ())
    }

    #[test]
    fn good_leaf_verifies_and_variants_fail_for_their_reason() {
        let pki = TestPki::new().unwrap();
        let good = pki.leaf(&["mx.good.test"]).unwrap();
        assert_eq!(good.chain().len(), 2);
        verify(&pki, &good, "mx.good.test").unwrap();

        let e = verify(
            &pki,
            &pki.expired_leaf(&["mx.good.test"]).unwrap(),
            "mx.good.test",
        );
        assert!(
            matches!(
                e,
                Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::Expired
                        | rustls::CertificateError::ExpiredContext { .. }
                ))
            ),
            "{e:?}"
        );
        let e = verify(
            &pki,
            &pki.not_yet_valid_leaf(&["mx.good.test"]).unwrap(),
            "mx.good.test",
        );
        assert!(
            matches!(
                e,
                Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::NotValidYet
                        | rustls::CertificateError::NotValidYetContext { .. }
                ))
            ),
            "{e:?}"
        );
        let e = verify(&pki, &pki.misnamed_leaf(&[]).unwrap(), "mx.good.test");
        assert!(
            matches!(
                e,
                Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::NotValidForName
                        | rustls::CertificateError::NotValidForNameContext { .. }
                ))
            ),
            "{e:?}"
        );
        let ss = self_signed_leaf(&["mx.good.test"]).unwrap();
        let e = verify_chain(&pki, &[ss.chain()[0].clone()], "mx.good.test");
        assert!(
            matches!(
                e,
                Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::UnknownIssuer
                ))
            ),
            "{e:?}"
        );
        // Another PKI's good leaf is untrusted here.
        let other = TestPki::new().unwrap();
        let e = verify(
            &pki,
            &other.leaf(&["mx.good.test"]).unwrap(),
            "mx.good.test",
        );
        assert!(e.is_err());
    }

    #[test]
    fn pem_output_round_trips_through_rustls_pemfile_parsing() {
        use rustls_pki_types::pem::PemObject;
        let pki = TestPki::new().unwrap();
        let leaf = pki.leaf(&["a.test", "127.0.0.1"]).unwrap();
        let certs: Vec<_> = CertificateDer::pem_slice_iter(leaf.chain_pem().as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(certs, leaf.chain());
        let key = PrivateKeyDer::from_pem_slice(leaf.key_pem().as_bytes()).unwrap();
        assert_eq!(key.secret_der(), leaf.key().secret_der());
        let root = CertificateDer::from_pem_slice(pki.root_pem().as_bytes()).unwrap();
        assert_eq!(root, pki.root_der());
        let dir = tempfile::tempdir().unwrap();
        let (crt, key) = leaf.write_pem(dir.path(), "mx").unwrap();
        assert_eq!(std::fs::read_to_string(&crt).unwrap(), leaf.chain_pem());
        let back = Leaf::from_pem_files(&crt, &key).unwrap();
        assert_eq!(back.chain(), leaf.chain());
        leaf.server_config().unwrap();
        leaf.certified_key().unwrap();
    }
}
