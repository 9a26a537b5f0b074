//! ACME (RFC 8555): certificates for store entries from an ACME CA (Let's
//! Encrypt, or a private one), with the `instant-acme` protocol client
//! running over the gateway's own HTTPS (`http.rs`: the one resolver, the
//! store's CA lists). The account key lives in the store; an order is for
//! the names of one store entry and certifies either the entry's served key
//! (a renewal: a published DANE `3 1 1` record stays valid) or the staged
//! next key of a rollover ([`OrderKey`]); what the CA issues is installed
//! into the entry atomically by the store. Challenges: HTTP-01 on a small
//! listener of its own ([`Http01Listener`]) and TLS-ALPN-01 as a resolver
//! for an HTTPS listener ([`TlsAlpnResponder`]). When to renew is
//! [`renewal_due`]; the running gateway's background task is in
//! `cert_manager`.

mod http;
mod http01;
mod order;
mod tls_alpn01;

use std::sync::Arc;
use std::time::Duration;

pub use http01::{Http01Listener, Http01Responder};
pub use order::{AcmeClient, AcmeError, ChallengeKind, Challenges, OrderRequest};
pub use portcullis_certstore::OrderKey;
pub use tls_alpn01::{ACME_TLS_ALPN, TlsAlpnResponder};

use portcullis_certstore::Timestamp;
use rustls_pki_types::CertificateDer;

/// Where and how to reach the ACME CA.
#[derive(Clone, Debug)]
pub struct AcmeSettings {
    /// The directory URL (`https://acme-v02.api.letsencrypt.org/directory`).
    pub directory: String,
    /// Contact addresses for the account (`mailto:postmaster@example.com`).
    pub contact: Vec<String>,
    /// CAs trusted for the ACME server's own HTTPS certificate besides the
    /// store's enabled lists (a private or test ACME server).
    pub server_roots: Vec<CertificateDer<'static>>,
    /// Deadline of one HTTP exchange with the CA.
    pub request_timeout: Duration,
    /// How long to wait for validation and for the certificate.
    pub order_timeout: Duration,
}

impl AcmeSettings {
    /// Let's Encrypt's production directory.
    pub const LETS_ENCRYPT: &'static str = "https://acme-v02.api.letsencrypt.org/directory";

    /// Settings for `directory` with 30 s per request and 2 minutes per order.
    pub fn new(directory: impl Into<String>) -> Self {
        AcmeSettings {
            directory: directory.into(),
            contact: Vec::new(),
            server_roots: Vec::new(),
            request_timeout: Duration::from_secs(30),
            order_timeout: Duration::from_secs(120),
        }
    }
}

/// Why a certificate is due for renewal, or `None` when it is not: two
/// thirds of its lifetime have passed, or 30 days or fewer remain.
pub fn renewal_due(not_before: Timestamp, not_after: Timestamp, now: Timestamp) -> Option<String> {
    let lifetime = not_after.unix.saturating_sub(not_before.unix).max(0);
    let two_thirds = not_before.unix.saturating_add(lifetime / 3 * 2);
    let left = not_after.unix.saturating_sub(now.unix);
    if left <= 30 * 86_400 {
        Some(format!(
            "{} days of validity left (renewal starts at 30)",
            left.max(0) / 86_400
        ))
    } else if now.unix >= two_thirds {
        Some("two thirds of its lifetime have passed".to_owned())
    } else {
        None
    }
}

/// The shared responders of an [`AcmeClient`]'s orders, for listeners.
pub fn http01_responder() -> Http01Responder {
    Http01Responder::default()
}

/// A TLS-ALPN-01 responder in front of `fallback` (see [`TlsAlpnResponder`]).
pub fn tls_alpn01_responder(
    fallback: Arc<dyn rustls::server::ResolvesServerCert>,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Arc<TlsAlpnResponder> {
    Arc::new(TlsAlpnResponder::new(fallback, provider))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    #[test]
    fn renewal_at_two_thirds_or_thirty_days() {
        let t = |d: i64| Timestamp { unix: d * DAY };
        // 90-day certificate: due at day 60 (two thirds; 30 days left too).
        assert!(renewal_due(t(0), t(90), t(59)).is_none());
        assert!(renewal_due(t(0), t(90), t(60)).is_some());
        // One year: two thirds at day 243, 30 days left at day 335.
        assert!(renewal_due(t(0), t(365), t(242)).is_none());
        assert!(
            renewal_due(t(0), t(365), t(244))
                .unwrap()
                .contains("two thirds")
        );
        // Ten years: 30 days left comes after two thirds anyway.
        assert!(renewal_due(t(0), t(3650), t(2400)).is_none());
        assert!(renewal_due(t(0), t(3650), t(2434)).is_some());
        // A 20-day certificate is always inside the 30-day window.
        assert!(renewal_due(t(0), t(20), t(0)).unwrap().contains("days"));
        // Expired.
        assert!(renewal_due(t(0), t(90), t(100)).unwrap().contains("0 days"));
    }
}
