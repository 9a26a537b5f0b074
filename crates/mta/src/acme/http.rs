//! The HTTPS client the ACME protocol runs over: instant-acme asks, this
//! answers. Host names are resolved by the gateway's one resolver (never the
//! system's; an address literal in the directory URL needs none), the CA's
//! certificate is checked against the store's enabled CA lists plus any CA
//! the operator names for a private ACME server, each exchange has one
//! deadline, and a response body is capped (an ACME server sends JSON and
//! PEM of a few kilobytes).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::dns::Resolver;

/// Largest response body accepted from an ACME server.
const MAX_BODY: usize = 1024 * 1024;

/// HTTPS for the ACME client. Cheap to clone.
#[derive(Clone)]
pub(crate) struct AcmeHttp {
    tls: Arc<rustls::ClientConfig>,
    resolver: Option<Resolver>,
    timeout: Duration,
}

impl std::fmt::Debug for AcmeHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcmeHttp")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

type Failure = Box<dyn std::error::Error + Send + Sync>;

fn fail(what: String) -> instant_acme::Error {
    instant_acme::Error::Other(what.into())
}

impl AcmeHttp {
    pub(crate) fn new(
        tls: Arc<rustls::ClientConfig>,
        resolver: Option<Resolver>,
        timeout: Duration,
    ) -> Self {
        AcmeHttp {
            tls,
            resolver,
            timeout,
        }
    }

    async fn exchange(
        &self,
        req: hyper::Request<BodyWrapper<Bytes>>,
    ) -> Result<BytesResponse, instant_acme::Error> {
        let uri = req.uri().clone();
        if uri.scheme_str() != Some("https") {
            return Err(fail(format!(
                "{uri}: ACME servers are reached over https only"
            )));
        }
        let host = uri
            .host()
            .ok_or_else(|| fail(format!("{uri}: no host")))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(443);
        let addr = self.address(&host, port).await?;
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| fail(format!("cannot connect to {host} ({addr}): {e}")))?;
        let name = ServerName::try_from(host.clone())
            .map_err(|e| fail(format!("{host}: not a TLS server name: {e}")))?;
        let tls = TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| fail(format!("TLS with ACME server {host} failed: {e}")))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| fail(format!("HTTP with {host} failed: {e}")))?;
        let connection = tokio::spawn(connection);
        let (mut parts, body) = req.into_parts();
        // hyper's connection-level client sends the request target as given;
        // the origin form plus a Host header is what HTTP/1.1 servers expect.
        let path = uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".into());
        parts.uri = path.parse().map_err(|e| fail(format!("{uri}: {e}")))?;
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .unwrap_or(host.clone());
        parts.headers.insert(
            hyper::header::HOST,
            authority.parse().map_err(|e| fail(format!("{uri}: {e}")))?,
        );
        let response = sender
            .send_request(hyper::Request::from_parts(parts, body))
            .await
            .map_err(|e| fail(format!("HTTP exchange with {host} failed: {e}")))?;
        let (parts, mut body) = response.into_parts();
        let mut collected = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| fail(format!("reading from {host} failed: {e}")))?;
            if let Some(chunk) = frame.data_ref() {
                if collected.len() + chunk.len() > MAX_BODY {
                    return Err(fail(format!(
                        "{host} sent a response larger than {MAX_BODY} bytes"
                    )));
                }
                collected.extend_from_slice(chunk);
            }
        }
        connection.abort();
        Ok(BytesResponse::from(hyper::Response::from_parts(
            parts,
            Full::new(Bytes::from(collected)),
        )))
    }

    async fn address(&self, host: &str, port: u16) -> Result<SocketAddr, instant_acme::Error> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, port));
        }
        let Some(resolver) = &self.resolver else {
            return Err(fail(format!(
                "cannot resolve the ACME server {host}: no DNS resolver is configured ([dns] resolvers, or nameserver lines in /etc/resolv.conf)"
            )));
        };
        resolver
            .host_addresses(host, port)
            .await
            .map_err(|why| fail(format!("cannot resolve the ACME server {host}: {why}")))?
            .into_iter()
            .next()
            .ok_or_else(|| fail(format!("the ACME server {host} has no address")))
    }
}

impl HttpClient for AcmeHttp {
    fn request(
        &self,
        req: hyper::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let this = self.clone();
        Box::pin(async move {
            let uri = req.uri().to_string();
            match tokio::time::timeout(this.timeout, this.exchange(req)).await {
                Ok(result) => result,
                Err(_) => Err(instant_acme::Error::Other(Failure::from(format!(
                    "the ACME server did not answer {uri} within {}s",
                    this.timeout.as_secs()
                )))),
            }
        })
    }
}
