//! rustls server configurations, root stores and client certificates built
//! from the store, with the aws-lc-rs provider named explicitly. Protocol
//! versions and cipher suites come from [`TlsSettings`]; only TLS 1.2 and 1.3
//! exist here, so an older version cannot be configured by mistake.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::store::Store;

/// A TLS protocol version the gateway can offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum TlsVersion {
    /// TLS 1.2 (RFC 5246).
    #[serde(rename = "TLSv1.2")]
    Tls12,
    /// TLS 1.3 (RFC 8446).
    #[serde(rename = "TLSv1.3")]
    Tls13,
}

/// Versions and cipher suites for one service (inbound SMTP, outbound SMTP, HTTPS admin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsSettings {
    /// Versions offered; at least one.
    pub versions: Vec<TlsVersion>,
    /// Cipher suites by rustls/IANA name (e.g. `TLS13_AES_256_GCM_SHA384`,
    /// `TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`); empty means the provider's defaults.
    pub cipher_suites: Vec<String>,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            versions: vec![TlsVersion::Tls12, TlsVersion::Tls13],
            cipher_suites: Vec::new(),
        }
    }
}

impl TlsSettings {
    /// The aws-lc-rs provider restricted to the configured cipher suites.
    pub fn provider(&self) -> Result<Arc<CryptoProvider>> {
        let mut provider = rustls::crypto::aws_lc_rs::default_provider();
        if !self.cipher_suites.is_empty() {
            let known: Vec<String> = provider
                .cipher_suites
                .iter()
                .map(|s| format!("{:?}", s.suite()))
                .collect();
            for name in &self.cipher_suites {
                if !known.iter().any(|k| k.eq_ignore_ascii_case(name)) {
                    return Err(Error::Tls(format!(
                        "unknown cipher suite {name:?}; known suites: {}",
                        known.join(", ")
                    )));
                }
            }
            provider.cipher_suites.retain(|s| {
                self.cipher_suites
                    .iter()
                    .any(|n| n.eq_ignore_ascii_case(&format!("{:?}", s.suite())))
            });
        }
        for v in &self.versions {
            let has = provider.cipher_suites.iter().any(|s| match v {
                TlsVersion::Tls12 => s.tls13().is_none(),
                TlsVersion::Tls13 => s.tls13().is_some(),
            });
            if !has {
                return Err(Error::Tls(format!(
                    "no configured cipher suite can be used with {v:?}"
                )));
            }
        }
        Ok(Arc::new(provider))
    }

    /// The enabled protocol versions for a rustls config builder; an error
    /// when none is enabled.
    pub fn protocol_versions(&self) -> Result<Vec<&'static SupportedProtocolVersion>> {
        if self.versions.is_empty() {
            return Err(Error::Tls(
                "no TLS version is enabled; enable TLSv1.2 and/or TLSv1.3".into(),
            ));
        }
        Ok(self
            .versions
            .iter()
            .map(|v| match v {
                TlsVersion::Tls12 => &rustls::version::TLS12,
                TlsVersion::Tls13 => &rustls::version::TLS13,
            })
            .collect())
    }
}

/// What every server configuration the store builds shares: the server's
/// cipher-suite order, session tickets with rotating keys and a session
/// cache (see [`Store::server_config`]).
pub(crate) fn server_order_and_resumption(config: &mut ServerConfig) -> Result<()> {
    config.ignore_client_order = true;
    config.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new()
        .map_err(|e| Error::Tls(format!("cannot set up TLS session tickets: {e}")))?;
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(4096);
    Ok(())
}

impl Store {
    /// A server configuration presenting the named entry's chain. The
    /// server's cipher-suite order wins over the client's (the configured
    /// order is the operator's preference), and sessions can be resumed:
    /// TLS 1.3 and 1.2 tickets encrypted with keys that rotate every 6
    /// hours, plus a cache of 4096 sessions for TLS 1.2 clients without
    /// ticket support. A resumed handshake skips the certificate signature,
    /// the costliest part of a handshake for the server.
    pub fn server_config(&self, name: &str, settings: &TlsSettings) -> Result<Arc<ServerConfig>> {
        let entry = self.entry(name)?;
        let mut config = ServerConfig::builder_with_provider(settings.provider()?)
            .with_protocol_versions(&settings.protocol_versions()?)
            .map_err(|e| Error::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(entry.chain.clone(), entry.key.to_rustls())
            .map_err(|e| Error::Tls(format!("certificate {name:?}: {e}")))?;
        server_order_and_resumption(&mut config)?;
        Ok(Arc::new(config))
    }

    /// The enabled CA lists as a rustls root store. Empty when both lists are
    /// disabled: then no peer certificate verifies.
    pub fn root_store(&self) -> Result<RootCertStore> {
        let mut roots = RootCertStore::empty();
        // Certificates webpki cannot use as anchors are skipped, not fatal: one
        // odd CA in a bundle must not take down outbound TLS.
        roots.add_parsable_certificates(self.trusted_cas()?);
        Ok(roots)
    }

    /// The named entry as a TLS client certificate (chain and signing key),
    /// its key loaded by `settings`' crypto provider. Client configurations
    /// themselves are built by the verifier that checks the server (the
    /// `dane` crate's `PeerVerifier::client_config`).
    pub fn client_certificate(
        &self,
        name: &str,
        settings: &TlsSettings,
    ) -> Result<Arc<CertifiedKey>> {
        let entry = self.entry(name)?;
        let key = settings
            .provider()?
            .key_provider
            .load_private_key(entry.key.to_rustls())
            .map_err(|e| {
                Error::Tls(format!("certificate {name:?}: its key cannot be used: {e}"))
            })?;
        Ok(Arc::new(CertifiedKey::new(entry.chain, key)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cipher_suite_filtering() {
        let s = TlsSettings {
            versions: vec![TlsVersion::Tls13],
            cipher_suites: vec!["TLS13_AES_256_GCM_SHA384".into()],
        };
        assert_eq!(s.provider().unwrap().cipher_suites.len(), 1);
        let s = TlsSettings {
            versions: vec![TlsVersion::Tls12],
            cipher_suites: vec!["TLS13_AES_256_GCM_SHA384".into()],
        };
        assert!(
            s.provider().is_err(),
            "a TLS 1.3 suite cannot serve TLS 1.2"
        );
        let s = TlsSettings {
            versions: vec![TlsVersion::Tls13],
            cipher_suites: vec!["RC4_MD5".into()],
        };
        assert!(
            s.provider()
                .unwrap_err()
                .to_string()
                .contains("unknown cipher suite")
        );
        let s = TlsSettings {
            versions: vec![],
            cipher_suites: vec![],
        };
        assert!(s.protocol_versions().is_err());
    }
}
