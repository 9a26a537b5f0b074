//! The admin listener's certificate, chosen by its own rustls
//! [`ResolvesServerCert`]: the configured store entry (replaced at a
//! reload without dropping the listener), and — for ACME's TLS-ALPN-01
//! (RFC 8737) — a challenge certificate for a name while an order is being
//! validated, presented only to clients that ask for `acme-tls/1`. An ACME
//! client registers it with [`AdminCertResolver::set_challenge`] and removes
//! it with [`AdminCertResolver::clear_challenge`].

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The ALPN protocol of TLS-ALPN-01.
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// Picks the admin listener's certificate for each handshake.
#[derive(Debug)]
pub struct AdminCertResolver {
    current: RwLock<Arc<CertifiedKey>>,
    challenges: RwLock<HashMap<String, Arc<CertifiedKey>>>,
}

impl AdminCertResolver {
    /// Presents `key` until [`AdminCertResolver::replace`].
    pub fn new(key: Arc<CertifiedKey>) -> Self {
        AdminCertResolver {
            current: RwLock::new(key),
            challenges: RwLock::default(),
        }
    }

    /// New handshakes present `key` (a reload, a renewed certificate).
    pub fn replace(&self, key: Arc<CertifiedKey>) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = key;
    }

    /// The certificate presented now (leaf first).
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Presents `key` to `acme-tls/1` clients asking for `name`.
    pub fn set_challenge(&self, name: &str, key: Arc<CertifiedKey>) {
        self.challenges
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_ascii_lowercase(), key);
    }

    /// Ends the challenge for `name`.
    pub fn clear_challenge(&self, name: &str) {
        self.challenges
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&name.to_ascii_lowercase());
    }
}

impl ResolvesServerCert for AdminCertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let acme = hello
            .alpn()
            .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN));
        if acme {
            // Only the challenge answers an ACME validation; never the
            // real certificate (RFC 8737 §3).
            let name = hello.server_name()?.to_ascii_lowercase();
            return self
                .challenges
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get(&name)
                .cloned();
        }
        Some(self.current())
    }
}
