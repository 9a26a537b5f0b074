//! Operations beside the mail path (SPEC §6 "Admin interface"): the HTTPS
//! admin listener with its JSON API, the status page and `/metrics`, the
//! API tokens, and [`Control`] — the one control interface through which
//! the API, the status page's buttons, `portcullis ctl` (a client of the
//! API) and the SIGHUP handler reload, suspend and resume the gateway. It
//! only calls the engine's operator commands ([`crate::operate`]) and the
//! queue's [`QueueService::handle`](crate::control::QueueService::handle);
//! nothing here is on the path of a message.
//!
//! - `control.rs`: reload, configuration import/export/reset, what the
//!   status shows;
//! - `server.rs`: TLS (rustls, certificate chosen by [`AdminCertResolver`])
//!   and HTTP/1.1 (hyper, axum);
//! - `api.rs`: the routes (documented in `docs/admin-api.md`); `auth.rs`:
//!   tokens and the failed-authentication limit; `page.rs`: the status
//!   page; `exposition.rs`: `/metrics`; `tokens.rs`: the token store;
//! - `endpoint.rs`: `<data-dir>/admin/endpoint.json`, where `ctl` finds the
//!   listener and the certificate to pin.

mod api;
mod api_cluster;
mod api_config;
mod api_tls_report;
mod auth;
pub mod cert;
mod cluster_tasks;
pub mod control;
pub mod endpoint;
mod exposition;
mod page;
mod page_health;
mod running;
mod server;
mod tls_reports;
pub mod tokens;
mod view;

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::SupportedProtocolVersion;
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;

pub use cert::AdminCertResolver;
pub use control::{Control, ReloadFailure};
pub use running::Running;
pub use server::AdminServer;
pub use tokens::{Role, TokenStore};
pub use view::{CertificateView, StatusView, TlsHour};

/// What the admin listener is built from (`[admin]` and `[tls.admin]`,
/// see [`LoadedConfig::admin_settings`](crate::config::LoadedConfig::admin_settings)).
#[derive(Clone)]
pub struct AdminSettings {
    /// Where to listen (port 0: a free port).
    pub address: SocketAddr,
    /// The store entry presented.
    pub certificate_name: String,
    /// Its chain and key.
    pub certificate: Arc<CertifiedKey>,
    /// Cipher suites.
    pub provider: Arc<CryptoProvider>,
    /// Protocol versions.
    pub versions: Vec<&'static SupportedProtocolVersion>,
    /// Tokens from the configuration file, hashed.
    pub tokens: Vec<tokens::ConfigToken>,
}

impl std::fmt::Debug for AdminSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminSettings")
            .field("address", &self.address)
            .field("certificate_name", &self.certificate_name)
            .field("versions", &self.versions)
            .field("tokens", &self.tokens.len())
            .finish()
    }
}
