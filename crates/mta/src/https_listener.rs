//! The HTTPS listener the admin API and the MTA-STS policy host share: TCP,
//! then TLS (the caller's rustls configuration) within a handshake deadline,
//! then HTTP/1.1 (hyper) serving the caller's axum routes, each connection
//! in its own task; the listener stops at shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// A TLS handshake must finish within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A request's header must arrive within this.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// A running HTTPS listener.
#[derive(Debug)]
pub(crate) struct HttpsListener {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl HttpsListener {
    /// Binds `address` and serves, for each connection, the routes `app`
    /// makes from the client's address. `what` names the listener in errors
    /// ("admin listener").
    pub(crate) async fn start(
        what: &str,
        address: SocketAddr,
        tls: rustls::ServerConfig,
        app: impl Fn(SocketAddr) -> Router + Send + 'static,
    ) -> Result<HttpsListener, String> {
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = TcpListener::bind(address)
            .await
            .map_err(|e| format!("{what} cannot listen on {address}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| format!("{what}: {e}"))?;
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
                        let app = app(peer);
                        tokio::spawn(async move {
                            let Ok(Ok(tls)) =
                                tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                            else {
                                return;
                            };
                            let service = TowerToHyperService::new(app);
                            let _ = hyper::server::conn::http1::Builder::new()
                                .timer(hyper_util::rt::TokioTimer::new())
                                .header_read_timeout(HEADER_TIMEOUT)
                                .serve_connection(TokioIo::new(tls), service)
                                .await;
                        });
                    }
                }
            }
        });
        Ok(HttpsListener { addr, stop, task })
    }

    /// The bound address.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting.
    pub(crate) async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}
