//! A local HTTPS server for MTA-STS policies (RFC 8461 §3.3): answers
//! `GET /.well-known/mta-sts.txt` with a policy as `text/plain`, over TLS
//! with a certificate from the test PKI, on loopback. Every request is
//! counted so a test can tell whether the gateway fetched (or refetched).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::Error;
use crate::pki::Leaf;

/// The policy text of an `enforce`/`testing`/`none` policy for `mx` patterns.
pub fn policy_text(mode: &str, mx: &[&str], max_age: u64) -> String {
    let mut text = format!("version: STSv1\r\nmode: {mode}\r\n");
    for m in mx {
        text.push_str(&format!("mx: {m}\r\n"));
    }
    text.push_str(&format!("max_age: {max_age}\r\n"));
    text
}

#[derive(Debug)]
struct State {
    policy: Mutex<String>,
    requests: AtomicUsize,
}

/// A running policy server; stops when dropped.
#[derive(Debug)]
pub struct MtaStsServer {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Drop for MtaStsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    state.requests.fetch_add(1, Ordering::SeqCst);
    let mut response = if req.uri().path() == "/.well-known/mta-sts.txt" {
        let body = state
            .policy
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut r = Response::new(Full::new(Bytes::from(body)));
        r.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("text/plain"),
        );
        r
    } else {
        Response::new(Full::new(Bytes::from_static(b"not found\n")))
    };
    if req.uri().path() != "/.well-known/mta-sts.txt" {
        *response.status_mut() = StatusCode::NOT_FOUND;
    }
    Ok(response)
}

impl MtaStsServer {
    /// Serves `policy` on `127.0.0.1:0` with `leaf` (issued for
    /// `mta-sts.<domain>`).
    pub async fn start(leaf: &Leaf, policy: &str) -> Result<Self, Error> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), leaf, policy).await
    }

    /// Serves on `addr` (loopback only).
    pub async fn start_on(addr: SocketAddr, leaf: &Leaf, policy: &str) -> Result<Self, Error> {
        if !addr.ip().is_loopback() {
            return Err(Error::Other(format!(
                "the MTA-STS server listens on loopback only, not {addr}"
            )));
        }
        let mut config = rustls::ServerConfig::builder_with_provider(crate::provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(leaf.chain().to_vec(), leaf.key())?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind(addr)
            .await
            .map_err(Error::io(format!("binding the MTA-STS server to {addr}")))?;
        let addr = listener
            .local_addr()
            .map_err(Error::io("reading the MTA-STS server's address"))?;
        let state = Arc::new(State {
            policy: Mutex::new(policy.to_string()),
            requests: AtomicUsize::new(0),
        });
        let s = Arc::clone(&state);
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((socket, _)) = accepted else { continue };
                        let acceptor = acceptor.clone();
                        let s = Arc::clone(&s);
                        connections.spawn(async move {
                            let Ok(tls) = acceptor.accept(socket).await else { return };
                            let service = hyper::service::service_fn(move |req| answer(Arc::clone(&s), req));
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(tls), service)
                                .await;
                        });
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        Ok(Self { addr, state, task })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces the policy served from now on.
    pub fn set_policy(&self, policy: &str) {
        *self
            .state
            .policy
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = policy.to_string();
    }

    /// HTTP requests answered so far.
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }
}
