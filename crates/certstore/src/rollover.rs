//! The store's half of a DANE-safe key rollover: a next key staged beside
//! the served one, its certificate installed beside the served chain, the
//! time its TLSA record was first seen, and the switch. Renewals keep the
//! entry's key (a published `3 1 1` record stays valid); a key change goes
//! through here so a published TLSA RRset is never left without a record
//! for the key being served. Deciding *when* to switch (the next key's TLSA
//! record seen, DNSSEC-validated, for at least twice its TTL) is the
//! gateway's job; this module only records what it saw and does the switch
//! atomically (one entry file, replaced).

use rustls_pki_types::CertificateDer;

use crate::entry::{Entry, NextKey};
use crate::error::{Error, Result};
use crate::info::{CertInfo, Timestamp};
use crate::key::{KeySpec, PrivateKey};
use crate::store::{InstallReport, Store};

impl Store {
    /// Starts a rollover: makes the next key and stages it. Refuses when one
    /// is already under way (finish or abort it first).
    pub fn begin_rollover(&self, name: &str, key: KeySpec) -> Result<NextKey> {
        let mut entry = self.entry(name)?;
        self.check_writable()?;
        if let Some(n) = &entry.next {
            return Err(Error::InvalidRequest(format!(
                "a key rollover of {name:?} is already under way (started {}, next key {}); \
                 let it finish, or abort it with `portcullis dane rollover {name} --abort`",
                n.created,
                n.key.spki_sha256()
            )));
        }
        let next = NextKey {
            created: Timestamp::now(),
            key: PrivateKey::generate(key)?,
            chain: Vec::new(),
            tlsa_seen_since: None,
        };
        entry.next = Some(next.clone());
        entry.updated = Timestamp::now();
        self.save(&entry)?;
        Ok(next)
    }

    /// A PEM CSR for the next key, with the served certificate's subject
    /// and names (for a CA other than ACME).
    pub fn next_key_csr(&self, name: &str) -> Result<String> {
        let entry = self.entry(name)?;
        let next = require_next(&entry)?;
        let leaf = entry.chain.first().ok_or_else(|| Error::Corrupt {
            path: self.entry_path(name),
            reason: "empty chain".into(),
        })?;
        crate::create::csr_from_cert(leaf, &next.key)
    }

    /// Installs the certificate of the next key (with its intermediates) beside
    /// the served chain. `install_signed` calls this when a certificate
    /// matches the next key.
    pub(crate) fn install_next_chain(
        &self,
        mut entry: Entry,
        certs: Vec<CertificateDer<'static>>,
        what: &str,
    ) -> Result<InstallReport> {
        let Some(next) = entry.next.as_mut() else {
            return Err(Error::InvalidRequest(format!(
                "no key rollover of {:?} is under way",
                entry.name
            )));
        };
        let mut leaf = None;
        let mut others = Vec::new();
        for c in certs {
            if leaf.is_none() && CertInfo::from_der(&c, what)?.spki_der == next.key.spki_der() {
                leaf = Some(c);
            } else {
                others.push(c);
            }
        }
        let Some(leaf) = leaf else {
            return Err(Error::bad_input(
                what,
                "no certificate matches the next key of the rollover",
            ));
        };
        let ordered = self.order_and_check(leaf, others)?;
        next.chain = ordered.certs;
        entry.updated = Timestamp::now();
        self.save(&entry)?;
        Ok(InstallReport {
            entry: self.view_with_trust(&entry, Timestamp::now(), 30, &self.trusted_cas()?)?,
            problems: ordered.problems,
            switched_to_new_key: false,
            staged_for_rollover: true,
        })
    }

    /// Records whether the next key's TLSA record was seen now: the first
    /// sighting starts the clock, a lookup that no longer shows it stops it.
    /// Returns since when it has been seen without a break.
    pub fn note_next_tlsa(
        &self,
        name: &str,
        seen: bool,
        now: Timestamp,
    ) -> Result<Option<Timestamp>> {
        let mut entry = self.entry(name)?;
        let next = entry.next.as_mut().ok_or_else(|| no_rollover(name))?;
        let since = match (seen, next.tlsa_seen_since) {
            (false, None) => return Ok(None),
            (true, Some(t)) => return Ok(Some(t)),
            (true, None) => Some(now),
            (false, Some(_)) => None,
        };
        next.tlsa_seen_since = since;
        self.save(&entry)?;
        Ok(since)
    }

    /// Switches the entry to the next key and its chain (the previous key is
    /// dropped). Refuses while the next key has no certificate.
    pub fn complete_rollover(&self, name: &str) -> Result<Entry> {
        let mut entry = self.entry(name)?;
        self.check_writable()?;
        let next = entry.next.take().ok_or_else(|| no_rollover(name))?;
        if next.chain.is_empty() {
            return Err(Error::InvalidRequest(format!(
                "the next key of {name:?} has no certificate yet: obtain one \
                 (`portcullis cert acme {name} --next-key ...`, or install the CA's answer to \
                 `portcullis dane rollover {name} --csr` with `portcullis cert install-signed`)"
            )));
        }
        entry.key = next.key;
        entry.chain = next.chain;
        entry.pending = None;
        entry.demo = false;
        entry.updated = Timestamp::now();
        self.save(&entry)?;
        Ok(entry)
    }

    /// Abandons a rollover: the next key and its certificate are deleted.
    pub fn abort_rollover(&self, name: &str) -> Result<()> {
        let mut entry = self.entry(name)?;
        self.check_writable()?;
        entry.next.take().ok_or_else(|| no_rollover(name))?;
        entry.updated = Timestamp::now();
        self.save(&entry)
    }
}

fn require_next(entry: &Entry) -> Result<&NextKey> {
    entry.next.as_ref().ok_or_else(|| no_rollover(&entry.name))
}

fn no_rollover(name: &str) -> Error {
    Error::InvalidRequest(format!(
        "no key rollover of {name:?} is under way (start one with `portcullis dane rollover {name}`)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::create::SelfSignedRequest;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_or_create(dir.path().join("s")).unwrap();
        let mut req = SelfSignedRequest::new("mx1.example.com");
        req.key = KeySpec::EcdsaP256;
        store.create_self_signed("mx1", &req).unwrap();
        (dir, store)
    }

    fn ca_signed_for(store: &Store, csr_pem: &str) -> String {
        let mut ca = rcgen::CertificateParams::new(Vec::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca =
            rcgen::CertifiedIssuer::self_signed(ca, rcgen::KeyPair::generate().unwrap()).unwrap();
        store
            .ca_import_custom(ca.pem().as_bytes(), "ca.pem")
            .unwrap();
        let signed = rcgen::CertificateSigningRequestParams::from_pem(csr_pem)
            .unwrap()
            .signed_by(&ca)
            .unwrap();
        signed.pem()
    }

    #[test]
    fn next_key_is_staged_and_served_only_after_the_switch() {
        let (_d, store) = store();
        let served = store.entry("mx1").unwrap().key.spki_sha256();
        let next = store.begin_rollover("mx1", KeySpec::EcdsaP256).unwrap();
        assert_ne!(next.key.spki_sha256(), served);
        assert!(
            store
                .begin_rollover("mx1", KeySpec::EcdsaP256)
                .unwrap_err()
                .to_string()
                .contains("already under way")
        );
        assert!(
            store.complete_rollover("mx1").is_err(),
            "no certificate yet"
        );

        let csr = store.next_key_csr("mx1").unwrap();
        let report = store
            .install_signed("mx1", ca_signed_for(&store, &csr).as_bytes(), "next.crt")
            .unwrap();
        assert!(report.staged_for_rollover);
        let entry = store.entry("mx1").unwrap();
        assert_eq!(entry.key.spki_sha256(), served, "still serving the old key");
        assert_eq!(entry.next.as_ref().unwrap().chain.len(), 1);

        let t0 = Timestamp { unix: 1_000 };
        assert_eq!(store.note_next_tlsa("mx1", false, t0).unwrap(), None);
        assert_eq!(store.note_next_tlsa("mx1", true, t0).unwrap(), Some(t0));
        let later = Timestamp { unix: 2_000 };
        assert_eq!(store.note_next_tlsa("mx1", true, later).unwrap(), Some(t0));
        assert_eq!(store.note_next_tlsa("mx1", false, later).unwrap(), None);

        let switched = store.complete_rollover("mx1").unwrap();
        assert_eq!(switched.key.spki_sha256(), next.key.spki_sha256());
        assert!(switched.next.is_none());
        assert!(store.abort_rollover("mx1").is_err());
    }

    #[test]
    fn abort_drops_the_next_key() {
        let (_d, store) = store();
        store.begin_rollover("mx1", KeySpec::EcdsaP256).unwrap();
        store.abort_rollover("mx1").unwrap();
        assert!(store.entry("mx1").unwrap().next.is_none());
    }
}
