//! The admin listener: the shared HTTPS listener with TLS from the
//! `[tls.admin]` versions and cipher suites and the certificate from
//! [`AdminCertResolver`], serving the axum routes of `api.rs`.

use std::net::SocketAddr;
use std::sync::Arc;

use super::AdminSettings;
use super::api::{ApiState, Peer, router};
use super::cert::{ACME_TLS_ALPN, AdminCertResolver};
use super::control::Control;
use crate::https_listener::HttpsListener;

/// The running admin listener.
#[derive(Debug)]
pub struct AdminServer {
    listener: HttpsListener,
}

impl AdminServer {
    /// Binds `settings.address` and serves `control`.
    pub async fn start(
        settings: &AdminSettings,
        control: Arc<Control>,
        resolver: Arc<AdminCertResolver>,
    ) -> Result<AdminServer, String> {
        let mut tls = rustls::ServerConfig::builder_with_provider(settings.provider.clone())
            .with_protocol_versions(&settings.versions)
            .map_err(|e| format!("admin listener TLS settings: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(resolver);
        tls.alpn_protocols = vec![b"http/1.1".to_vec(), ACME_TLS_ALPN.to_vec()];
        let state = Arc::new(ApiState {
            control,
            limit: Default::default(),
        });
        let app = router(state);
        let listener = HttpsListener::start("admin listener", settings.address, tls, move |peer| {
            app.clone().layer(axum::Extension(Peer(peer)))
        })
        .await?;
        Ok(AdminServer { listener })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr()
    }

    /// Stops accepting.
    pub async fn shutdown(self) {
        self.listener.shutdown().await;
    }
}
