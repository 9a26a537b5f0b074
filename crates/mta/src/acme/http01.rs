//! The HTTP-01 challenge (RFC 8555 §8.3): a small HTTP listener (port 80 by
//! default) that answers `GET /.well-known/acme-challenge/<token>` with the
//! key authorization of an order in progress, and `404` to everything else.
//! Tokens are added while an order waits for validation and removed after.
//! The listener serves nothing but challenges; each connection has a
//! deadline and request bodies are not read.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const PREFIX: &str = "/.well-known/acme-challenge/";
/// How long one connection to the challenge listener may stay open.
const CONNECTION_DEADLINE: Duration = Duration::from_secs(15);

/// The tokens being served. Cheap to clone; clones share the tokens.
#[derive(Debug, Clone, Default)]
pub struct Http01Responder {
    tokens: Arc<Mutex<HashMap<String, String>>>,
}

impl Http01Responder {
    /// Serves `key_authorization` for `token` until [`remove`](Self::remove).
    pub fn insert(&self, token: &str, key_authorization: &str) {
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token.to_owned(), key_authorization.to_owned());
    }

    /// Stops serving `token`.
    pub fn remove(&self, token: &str) {
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(token);
    }

    fn answer(&self, req: &Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
        let found = (req.method() == Method::GET || req.method() == Method::HEAD)
            .then(|| req.uri().path().strip_prefix(PREFIX))
            .flatten()
            .and_then(|token| {
                self.tokens
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(token)
                    .cloned()
            });
        let (status, body) = match found {
            Some(key_authorization) => (StatusCode::OK, key_authorization),
            None => (StatusCode::NOT_FOUND, "no such challenge\n".to_owned()),
        };
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        response.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("text/plain"),
        );
        response
    }
}

/// The running challenge listener; stops when dropped.
#[derive(Debug)]
pub struct Http01Listener {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Http01Listener {
    /// Binds `addr` and serves `responder`'s tokens.
    pub async fn bind(addr: SocketAddr, responder: Http01Responder) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _peer)) = listener.accept().await else {
                    // Out of file descriptors and the like: try again shortly.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let responder = responder.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let response = responder.answer(&req);
                        async move { Ok::<_, Infallible>(response) }
                    });
                    let connection = hyper::server::conn::http1::Builder::new()
                        .keep_alive(false)
                        .serve_connection(TokioIo::new(tcp), service);
                    let _ = tokio::time::timeout(CONNECTION_DEADLINE, connection).await;
                });
            }
        });
        Ok(Http01Listener { addr, task })
    }

    /// The bound address (port 0 picks a free port).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Http01Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        tokio::time::timeout(Duration::from_secs(10), tcp.read_to_string(&mut out))
            .await
            .unwrap()
            .unwrap();
        out
    }

    #[tokio::test]
    async fn serves_tokens_only_while_present() {
        let responder = Http01Responder::default();
        let listener = Http01Listener::bind("127.0.0.1:0".parse().unwrap(), responder.clone())
            .await
            .unwrap();
        let addr = listener.local_addr();
        responder.insert("tok", "tok.thumb");
        let r = get(addr, "/.well-known/acme-challenge/tok").await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        assert!(r.ends_with("tok.thumb"), "{r}");
        assert!(
            get(addr, "/.well-known/acme-challenge/other")
                .await
                .starts_with("HTTP/1.1 404")
        );
        assert!(get(addr, "/").await.starts_with("HTTP/1.1 404"));
        responder.remove("tok");
        assert!(
            get(addr, "/.well-known/acme-challenge/tok")
                .await
                .starts_with("HTTP/1.1 404")
        );
    }
}
