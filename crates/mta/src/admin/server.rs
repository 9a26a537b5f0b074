//! The admin listener: TCP, then TLS (rustls with the `[tls.admin]`
//! versions and cipher suites, the certificate from
//! [`AdminCertResolver`]), then HTTP/1.1 (hyper) serving the axum routes of
//! `api.rs`. Each connection runs in its own task with a handshake
//! deadline; the listener stops at shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::AdminSettings;
use super::api::{ApiState, Peer, router};
use super::cert::{ACME_TLS_ALPN, AdminCertResolver};
use super::control::Control;

/// A TLS handshake must finish within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The running admin listener.
#[derive(Debug)]
pub struct AdminServer {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
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
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = TcpListener::bind(settings.address)
            .await
            .map_err(|e| format!("admin listener cannot listen on {}: {e}", settings.address))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("admin listener: {e}"))?;
        let state = Arc::new(ApiState {
            control,
            limit: Default::default(),
        });
        let app = router(state);
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stopped.changed() => break,
                    accepted = listener.accept() => {
                        let Ok((stream, peer)) = accepted else {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        };
                        let acceptor = acceptor.clone();
                        let app = app.clone().layer(axum::Extension(Peer(peer)));
                        tokio::spawn(async move {
                            let Ok(Ok(tls)) =
                                tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                            else {
                                return;
                            };
                            let service = TowerToHyperService::new(app);
                            let _ = hyper::server::conn::http1::Builder::new()
                                .timer(hyper_util::rt::TokioTimer::new())
                                .header_read_timeout(Duration::from_secs(30))
                                .serve_connection(TokioIo::new(tls), service)
                                .await;
                        });
                    }
                }
            }
        });
        Ok(AdminServer { addr, stop, task })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}
