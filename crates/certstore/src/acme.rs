//! What ACME (RFC 8555) needs from the store, kept free of any network code:
//! the account credentials of each ACME directory (the account key lives in
//! the store, in `acme-accounts.json`, mode 0600, replaced atomically like
//! every store file), and the CSR of an order — the entry's own key (a
//! renewal that keeps a published `3 1 1` TLSA record valid) or the staged
//! next key of a rollover, for exactly the names being ordered. What the CA
//! returns goes in through [`Store::install_signed`], which matches it to the
//! served or the next key.

use std::collections::BTreeMap;

use rcgen::{CertificateParams, DistinguishedName, DnType, SanType};
use serde::{Deserialize, Serialize};

use crate::atomic::write_atomic;
use crate::error::{Error, Result};
use crate::names::check_fqdn;
use crate::store::{FILE_MODE, Store};

const ACCOUNTS: &str = "acme-accounts.json";

/// Which key of an entry an ACME order certifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OrderKey {
    /// The served key (renewal: published TLSA records stay valid).
    Current,
    /// The staged next key of a rollover.
    Next,
}

#[derive(Default, Serialize, Deserialize)]
struct AccountsFile {
    /// Directory URL → the ACME client's credentials (opaque JSON).
    accounts: BTreeMap<String, serde_json::Value>,
}

impl Store {
    fn read_accounts(&self) -> Result<AccountsFile> {
        let path = self.path().join(ACCOUNTS);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| Error::Corrupt {
                path,
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(AccountsFile::default()),
            Err(e) => Err(Error::io("cannot read", &path, e)),
        }
    }

    /// The stored credentials (with the account key) for an ACME directory.
    pub fn acme_account(&self, directory: &str) -> Result<Option<serde_json::Value>> {
        Ok(self.read_accounts()?.accounts.remove(directory))
    }

    /// Stores the credentials of an ACME directory's account.
    pub fn save_acme_account(&self, directory: &str, credentials: serde_json::Value) -> Result<()> {
        self.check_writable()?;
        let mut file = self.read_accounts()?;
        file.accounts.insert(directory.to_owned(), credentials);
        let json = serde_json::to_vec_pretty(&file)
            .map_err(|e| Error::Crypto(format!("cannot serialise ACME accounts: {e}")))?;
        write_atomic(&self.path().join(ACCOUNTS), &json, FILE_MODE)
    }

    /// A CSR (DER) for `names` (the first is also the common name), signed
    /// by the entry's served key or its next key.
    pub fn order_csr(&self, name: &str, names: &[String], key: OrderKey) -> Result<Vec<u8>> {
        let entry = self.entry(name)?;
        let Some(first) = names.first() else {
            return Err(Error::InvalidRequest(
                "an ACME order needs at least one domain name".into(),
            ));
        };
        let key = match key {
            OrderKey::Current => &entry.key,
            OrderKey::Next => match &entry.next {
                Some(n) => &n.key,
                None => {
                    return Err(Error::InvalidRequest(format!(
                        "no key rollover of {name:?} is under way (start one with `portcullis dane rollover {name}`)"
                    )));
                }
            },
        };
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, first.clone());
        for n in names {
            check_fqdn("domain", n, true)?;
            params
                .subject_alt_names
                .push(SanType::DnsName(n.clone().try_into()?));
        }
        let csr = params.serialize_request(&key.key_pair()?)?;
        Ok(csr.der().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KeySpec, SelfSignedRequest};

    #[test]
    fn accounts_round_trip_and_csr_names() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_or_create(dir.path().join("s")).unwrap();
        assert!(store.acme_account("https://ca/dir").unwrap().is_none());
        store
            .save_acme_account("https://ca/dir", serde_json::json!({"id": "a"}))
            .unwrap();
        assert_eq!(
            store.acme_account("https://ca/dir").unwrap().unwrap()["id"],
            "a"
        );
        let mode = std::fs::metadata(store.path().join(ACCOUNTS)).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.permissions().mode() & 0o777, 0o600);

        let mut req = SelfSignedRequest::new("mx1.example.com");
        req.key = KeySpec::EcdsaP256;
        store.create_self_signed("mx1", &req).unwrap();
        let names = vec!["mx1.example.com".to_owned(), "mail.example.com".to_owned()];
        let der = store.order_csr("mx1", &names, OrderKey::Current).unwrap();
        let csr = rcgen::CertificateSigningRequestParams::from_der(&der.into()).unwrap();
        assert_eq!(csr.params.subject_alt_names.len(), 2);
        assert!(store.order_csr("mx1", &names, OrderKey::Next).is_err());
        assert!(store.order_csr("mx1", &[], OrderKey::Current).is_err());
        assert!(
            store
                .order_csr("mx1", &["not a name".to_owned()], OrderKey::Current)
                .is_err()
        );
    }
}
