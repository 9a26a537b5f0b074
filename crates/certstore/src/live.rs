//! A server certificate that follows the store: [`LiveCertificate`] is a
//! rustls certificate resolver for one entry that notices when the entry's
//! file was replaced (a renewal, an installed certificate, a completed key
//! rollover) and presents the new chain and key from the next handshake on,
//! without a restart. It looks at the file's modification time at most once
//! a second; an entry that cannot be loaded (being replaced by hand, say)
//! keeps the previous certificate in service and is tried again later.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::error::{Error, Result};
use crate::store::Store;
use crate::tls::TlsSettings;

/// How often the entry file's modification time is looked at.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// One store entry as a certificate resolver that reloads itself.
pub struct LiveCertificate {
    store: Store,
    name: String,
    provider: Arc<CryptoProvider>,
    current: RwLock<Loaded>,
    /// Milliseconds since the epoch of the last look at the file.
    last_check_ms: AtomicU64,
}

struct Loaded {
    key: Arc<CertifiedKey>,
    modified: Option<FileStamp>,
}

/// Inode and modification time: every store write is a rename of a new
/// file, so the inode changes even where the clock is coarse.
type FileStamp = (u64, SystemTime);

impl std::fmt::Debug for LiveCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveCertificate")
            .field("store", &self.store.path())
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl LiveCertificate {
    /// Loads the entry now (an error names what is wrong with it).
    pub fn load(store: &Store, name: &str, provider: Arc<CryptoProvider>) -> Result<Self> {
        let modified = store.entry_modified(name);
        let key = certified_key(store, name, &provider)?;
        Ok(LiveCertificate {
            store: store.clone(),
            name: name.to_owned(),
            provider,
            current: RwLock::new(Loaded { key, modified }),
            last_check_ms: AtomicU64::new(now_ms()),
        })
    }

    /// The entry's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The certificate and key in service, reloaded first if the entry's
    /// file changed since it was last loaded.
    pub fn current(&self) -> Arc<CertifiedKey> {
        let now = now_ms();
        let last = self.last_check_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= CHECK_EVERY.as_millis() as u64
            && self
                .last_check_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let _ = self.reload_if_changed();
        }
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .key
            .clone()
    }

    /// Reloads when the entry's file changed; `Ok(true)` when it did.
    pub fn reload_if_changed(&self) -> Result<bool> {
        let modified = self.store.entry_modified(&self.name);
        let unchanged = {
            let cur = self.current.read().unwrap_or_else(|p| p.into_inner());
            cur.modified == modified && modified.is_some()
        };
        if unchanged {
            return Ok(false);
        }
        let key = certified_key(&self.store, &self.name, &self.provider)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Loaded { key, modified };
        Ok(true)
    }
}

impl ResolvesServerCert for LiveCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

fn certified_key(
    store: &Store,
    name: &str,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>> {
    let entry = store.entry(name)?;
    let key = provider
        .key_provider
        .load_private_key(entry.key.to_rustls())
        .map_err(|e| Error::Tls(format!("certificate {name:?}: its key cannot be used: {e}")))?;
    Ok(Arc::new(CertifiedKey::new(entry.chain, key)))
}

impl Store {
    pub(crate) fn entry_modified(&self, name: &str) -> Option<FileStamp> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(self.entry_path(name)).ok()?;
        Some((m.ino(), m.modified().ok()?))
    }

    /// A server configuration presenting the named entry, following the
    /// store: a renewed or rolled-over certificate is presented from the next
    /// handshake on (see [`LiveCertificate`]). Cipher order and session
    /// resumption as [`Store::server_config`]. Also returns the resolver, for
    /// callers that wrap it (an ACME TLS-ALPN-01 responder, say).
    pub fn live_server_config(
        &self,
        name: &str,
        settings: &TlsSettings,
    ) -> Result<(Arc<ServerConfig>, Arc<LiveCertificate>)> {
        let provider = settings.provider()?;
        let live = Arc::new(LiveCertificate::load(self, name, provider.clone())?);
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&settings.protocol_versions()?)
            .map_err(|e| Error::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(live.clone());
        crate::tls::server_order_and_resumption(&mut config)?;
        Ok((Arc::new(config), live))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KeySpec, SelfSignedRequest};

    #[test]
    fn follows_a_replaced_entry() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_or_create(dir.path().join("s")).unwrap();
        let mut req = SelfSignedRequest::new("mx1.example.com");
        req.key = KeySpec::EcdsaP256;
        store.create_self_signed("mx1", &req).unwrap();
        let (_cfg, live) = store
            .live_server_config("mx1", &TlsSettings::default())
            .unwrap();
        let first = live.current().cert[0].clone();
        assert!(!live.reload_if_changed().unwrap());

        store.begin_rollover("mx1", KeySpec::EcdsaP256).unwrap();
        let csr = store.next_key_csr("mx1").unwrap();
        // Self-sign the CSR's key: enough to stage and switch.
        let mut ca = rcgen::CertificateParams::new(Vec::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca =
            rcgen::CertifiedIssuer::self_signed(ca, rcgen::KeyPair::generate().unwrap()).unwrap();
        let signed = rcgen::CertificateSigningRequestParams::from_pem(&csr)
            .unwrap()
            .signed_by(&ca)
            .unwrap();
        store
            .install_signed("mx1", signed.pem().as_bytes(), "next.crt")
            .unwrap();
        store.complete_rollover("mx1").unwrap();
        assert!(live.reload_if_changed().unwrap());
        let entry = store.entry("mx1").unwrap();
        let now = live.current().cert[0].clone();
        assert_eq!(now, entry.chain[0]);
        assert_ne!(now, first);
    }
}
