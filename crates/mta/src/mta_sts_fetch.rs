//! Fetching an MTA-STS policy file over HTTPS (RFC 8461 §3.3).
//!
//! The policy lives at `https://mta-sts.<domain>/.well-known/mta-sts.txt`.
//! The host's address comes from the gateway's resolver
//! ([`crate::dns::Resolver`], the configured `[dns]` servers), or from a
//! fixed address given for it; never from the system resolver. The fetch is
//! deliberately narrow: the server's certificate must verify
//! against the trust lists for `mta-sts.<domain>` (the rustls configuration
//! passed in decides which lists), redirects are not followed, only `200`
//! with media type `text/plain` is accepted, the body is capped at 64 KiB, and
//! the whole exchange has one deadline. Parsing the file and caching it belong
//! to `portcullis_policy::mta_sts`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::dns::Resolver;

/// RFC 8461 §3.3 suggests a size limit; 64 KiB is the common one.
pub const MAX_POLICY_BYTES: usize = 64 * 1024;

/// Why a policy could not be fetched. Every one of them counts as "no fresh
/// policy" for the cache, which then keeps using an unexpired one.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("cannot resolve {host}: {reason}")]
    Resolve { host: String, reason: String },
    #[error("cannot connect to {host} ({addr}): {reason}")]
    Connect {
        host: String,
        addr: SocketAddr,
        reason: String,
    },
    #[error("TLS with {host} failed: {reason}")]
    Tls { host: String, reason: String },
    #[error("{host} answered HTTP {status}{}", location.as_ref().map(|l| format!(", redirecting to {l} (redirects are not followed)")).unwrap_or_default())]
    Status {
        host: String,
        status: u16,
        location: Option<String>,
    },
    #[error("{host} served the policy as {content_type:?}, not text/plain")]
    ContentType { host: String, content_type: String },
    #[error("{host} sent more than {MAX_POLICY_BYTES} bytes of policy")]
    TooLarge { host: String },
    #[error("policy from {host} is not UTF-8")]
    NotUtf8 { host: String },
    #[error("HTTP exchange with {host} failed: {reason}")]
    Http { host: String, reason: String },
    #[error("fetching the policy from {host} took longer than {0:?}", timeout)]
    Timeout { host: String, timeout: Duration },
}

/// Fetches policy files. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PolicyFetcher {
    tls: Arc<rustls::ClientConfig>,
    timeout: Duration,
    port: u16,
    addresses: HashMap<String, SocketAddr>,
    resolver: Option<Resolver>,
}

impl PolicyFetcher {
    /// `tls` must verify server certificates against the trust lists (PKIX);
    /// build it with `certstore`. RFC 8461 suggests a timeout of about a
    /// minute at most.
    pub fn new(tls: Arc<rustls::ClientConfig>, timeout: Duration) -> Self {
        PolicyFetcher {
            tls,
            timeout,
            port: 443,
            addresses: HashMap::new(),
            resolver: None,
        }
    }

    /// Resolves policy hosts with the gateway's resolver. Without one (and
    /// without [`with_address`](Self::with_address)) no host can be reached.
    pub fn with_resolver(mut self, resolver: Resolver) -> Self {
        self.resolver = Some(resolver);
        self
    }

    /// Connects to this port of resolved policy hosts instead of 443 (a
    /// policy host behind a port mapping; tests on loopback).
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Connects to `addr` for `host` instead of resolving it, and to that
    /// address's port: for split-horizon set-ups and for tests on loopback.
    /// The certificate is still checked against `host`.
    pub fn with_address(mut self, host: &str, addr: SocketAddr) -> Self {
        self.addresses.insert(host.to_ascii_lowercase(), addr);
        self
    }

    /// Fetches the policy text of `domain` (an A-label domain name).
    pub async fn fetch(&self, domain: &str) -> Result<String, FetchError> {
        let host = format!("mta-sts.{}", domain.trim_end_matches('.'));
        match tokio::time::timeout(self.timeout, self.fetch_from(&host)).await {
            Ok(result) => result,
            Err(_) => Err(FetchError::Timeout {
                host,
                timeout: self.timeout,
            }),
        }
    }

    async fn fetch_from(&self, host: &str) -> Result<String, FetchError> {
        let addr = self.resolve(host).await?;
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| FetchError::Connect {
                host: host.to_string(),
                addr,
                reason: e.to_string(),
            })?;
        let tls_error = |reason: String| FetchError::Tls {
            host: host.to_string(),
            reason,
        };
        let name = ServerName::try_from(host.to_string()).map_err(|e| tls_error(e.to_string()))?;
        let tls = TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| tls_error(e.to_string()))?;

        let http_error = |e: hyper::Error| FetchError::Http {
            host: host.to_string(),
            reason: e.to_string(),
        };
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(http_error)?;
        let connection = tokio::spawn(connection);
        let request = hyper::Request::get("/.well-known/mta-sts.txt")
            .header(hyper::header::HOST, host)
            .header(hyper::header::USER_AGENT, "Portcullis MTA-STS")
            .body(Empty::<Bytes>::new())
            .map_err(|e| FetchError::Http {
                host: host.to_string(),
                reason: e.to_string(),
            })?;
        let response = sender.send_request(request).await.map_err(http_error)?;
        let result = read_policy(host, response).await;
        connection.abort();
        result
    }

    async fn resolve(&self, host: &str) -> Result<SocketAddr, FetchError> {
        if let Some(addr) = self.addresses.get(&host.to_ascii_lowercase()) {
            return Ok(*addr);
        }
        let resolve_error = |reason: String| FetchError::Resolve {
            host: host.to_string(),
            reason,
        };
        let Some(resolver) = &self.resolver else {
            return Err(resolve_error(
                "no DNS resolver is configured ([dns] resolvers), and no fixed address is given for this host ([mta-sts] addresses)".into(),
            ));
        };
        resolver
            .host_addresses(host, self.port)
            .await
            .map_err(resolve_error)?
            .into_iter()
            .next()
            .ok_or_else(|| resolve_error("no address records".into()))
    }
}

async fn read_policy(
    host: &str,
    response: hyper::Response<hyper::body::Incoming>,
) -> Result<String, FetchError> {
    let status = response.status().as_u16();
    if status != 200 {
        let location = response
            .headers()
            .get(hyper::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(str::to_string);
        return Err(FetchError::Status {
            host: host.to_string(),
            status,
            location,
        });
    }
    let content_type = response
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if !media_type.eq_ignore_ascii_case("text/plain") {
        return Err(FetchError::ContentType {
            host: host.to_string(),
            content_type,
        });
    }
    let mut body = response.into_body();
    let mut text = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| FetchError::Http {
            host: host.to_string(),
            reason: e.to_string(),
        })?;
        if let Some(chunk) = frame.data_ref() {
            if text.len() + chunk.len() > MAX_POLICY_BYTES {
                return Err(FetchError::TooLarge {
                    host: host.to_string(),
                });
            }
            text.extend_from_slice(chunk);
        }
    }
    String::from_utf8(text).map_err(|_| FetchError::NotUtf8 {
        host: host.to_string(),
    })
}
