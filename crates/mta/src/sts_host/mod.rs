//! MTA-STS policy hosting for the domains we receive mail for (RFC 8461
//! §3.2-3.3): the policies built from `[mta-sts.hosting]`, the DNS records
//! that announce them (`_mta-sts.<domain>` with an `id` derived from the
//! policy text, `_smtp._tls.<domain>` for TLS reports), and the HTTPS
//! listener that serves `/.well-known/mta-sts.txt` per `Host:`
//! (`server.rs`). Nothing here is on the path of a message.

mod server;

use std::net::SocketAddr;
use std::sync::Arc;

use portcullis_policy::DomainName;
use portcullis_policy::mta_sts::StsPolicy;
use rustls::SupportedProtocolVersion;
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};

pub use server::{StsCertResolver, StsHostHandle, StsHostServer};

/// The path senders fetch (RFC 8461 §3.3).
pub const POLICY_PATH: &str = "/.well-known/mta-sts.txt";

/// Hex digits of the policy text's SHA-256 used as the record's `id`:
/// 80 bits, well inside the 32 characters RFC 8461 §3.1 allows.
const ID_LEN: usize = 20;

/// One hosted domain's policy and report addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostedPolicy {
    /// The mail domain.
    pub domain: DomainName,
    /// The policy served for it.
    pub policy: StsPolicy,
    /// TLS-RPT report addresses (may be empty).
    pub tls_report_rua: Vec<String>,
}

impl HostedPolicy {
    /// The policy host's name: `mta-sts.<domain>`.
    pub fn policy_host(&self) -> String {
        format!("mta-sts.{}", self.domain.as_str())
    }

    /// The policy file exactly as served (RFC 8461 §3.2, CRLF line ends).
    pub fn policy_text(&self) -> String {
        self.policy.to_string()
    }

    /// The `id` of the `_mta-sts` record: a digest of the policy text, so it
    /// changes whenever the served policy changes, and only then.
    pub fn policy_id(&self) -> String {
        Sha256::digest(self.policy_text().as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
            .chars()
            .take(ID_LEN)
            .collect()
    }

    /// The `_mta-sts.<domain>` TXT record: name and value.
    pub fn sts_record(&self) -> (String, String) {
        (
            format!("_mta-sts.{}", self.domain.as_str()),
            format!("v=STSv1; id={};", self.policy_id()),
        )
    }

    /// The `_smtp._tls.<domain>` TXT record (RFC 8460 §3), when report
    /// addresses are configured.
    pub fn tlsrpt_record(&self) -> Option<(String, String)> {
        if self.tls_report_rua.is_empty() {
            return None;
        }
        Some((
            format!("_smtp._tls.{}", self.domain.as_str()),
            crate::config::tlsrpt_record_text(&self.tls_report_rua),
        ))
    }
}

/// What the policy host is built from (see
/// [`LoadedConfig::sts_host_settings`](crate::config::LoadedConfig::sts_host_settings)).
#[derive(Clone)]
pub struct StsHostSettings {
    /// Where to listen (port 0: a free port).
    pub address: SocketAddr,
    /// The policies served.
    pub policies: Vec<HostedPolicy>,
    /// The store entry presented when no domain's own matches, and its key.
    pub default_certificate: Option<(String, Arc<CertifiedKey>)>,
    /// Per policy host (`mta-sts.<domain>`): store entry name and key.
    pub certificates: Vec<(String, String, Arc<CertifiedKey>)>,
    /// Cipher suites.
    pub provider: Arc<CryptoProvider>,
    /// Protocol versions.
    pub versions: Vec<&'static SupportedProtocolVersion>,
}

impl std::fmt::Debug for StsHostSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StsHostSettings")
            .field("address", &self.address)
            .field("policies", &self.policies)
            .field(
                "default_certificate",
                &self.default_certificate.as_ref().map(|(n, _)| n),
            )
            .field(
                "certificates",
                &self
                    .certificates
                    .iter()
                    .map(|(h, n, _)| (h, n))
                    .collect::<Vec<_>>(),
            )
            .field("versions", &self.versions)
            .finish()
    }
}

#[cfg(test)]
mod tests;
