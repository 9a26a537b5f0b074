//! The policy host's HTTPS listener: TCP, then TLS (rustls, the certificate
//! chosen by [`StsCertResolver`] from the name the client asks for), then
//! HTTP/1.1 (hyper, axum) answering `GET /.well-known/mta-sts.txt` with the
//! policy of the domain named by `Host: mta-sts.<domain>`; any other host
//! or path is 404. Each connection runs in its own task with a handshake
//! deadline; the listener stops at shutdown. A reload replaces the policies
//! and certificates through [`StsHostHandle`] without dropping the listener.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::{POLICY_PATH, StsHostSettings};
use crate::admin::AdminCertResolver;
use crate::https_listener::HttpsListener;

/// Picks the certificate for each handshake: the one configured for the
/// policy host the client names (SNI), else the section's default, else
/// the first domain's. Each is an [`AdminCertResolver`], the admin
/// listener's, so a certificate can be replaced without dropping the
/// listener and an ACME TLS-ALPN-01 challenge can be answered the same way.
#[derive(Debug)]
pub struct StsCertResolver {
    choice: RwLock<CertChoice>,
}

#[derive(Debug)]
struct CertChoice {
    by_host: HashMap<String, Arc<AdminCertResolver>>,
    fallback: Option<Arc<AdminCertResolver>>,
}

impl StsCertResolver {
    /// From the settings' certificates.
    pub fn new(settings: &StsHostSettings) -> Self {
        StsCertResolver {
            choice: RwLock::new(CertChoice::new(settings)),
        }
    }

    /// New handshakes use the certificates of `settings` (a reload).
    pub fn replace(&self, settings: &StsHostSettings) {
        *self.choice.write().unwrap_or_else(|p| p.into_inner()) = CertChoice::new(settings);
    }
}

impl CertChoice {
    fn new(settings: &StsHostSettings) -> Self {
        let by_host: HashMap<String, Arc<AdminCertResolver>> = settings
            .certificates
            .iter()
            .map(|(host, _, key)| {
                (
                    host.to_ascii_lowercase(),
                    Arc::new(AdminCertResolver::new(key.clone())),
                )
            })
            .collect();
        let fallback = settings
            .default_certificate
            .as_ref()
            .map(|(_, key)| Arc::new(AdminCertResolver::new(key.clone())))
            .or_else(|| {
                settings
                    .certificates
                    .first()
                    .map(|(_, _, key)| Arc::new(AdminCertResolver::new(key.clone())))
            });
        CertChoice { by_host, fallback }
    }
}

impl ResolvesServerCert for StsCertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let chosen = {
            let choice = self.choice.read().unwrap_or_else(|p| p.into_inner());
            hello
                .server_name()
                .and_then(|n| choice.by_host.get(&n.to_ascii_lowercase()))
                .or(choice.fallback.as_ref())?
                .clone()
        };
        chosen.resolve(hello)
    }
}

/// Replaces what a running policy host serves (see
/// [`Control`](crate::admin::Control)'s reload).
#[derive(Debug, Clone)]
pub struct StsHostHandle {
    address: SocketAddr,
    policies: Policies,
    resolver: Arc<StsCertResolver>,
}

impl StsHostHandle {
    /// The configured address (port 0 as configured, not the bound one).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// New requests get the policies, new handshakes the certificates, of
    /// `settings`; the listener stays.
    pub fn replace(&self, settings: &StsHostSettings) {
        *self.policies.write().unwrap_or_else(|p| p.into_inner()) = policy_map(settings);
        self.resolver.replace(settings);
    }
}

fn policy_map(settings: &StsHostSettings) -> HashMap<String, String> {
    settings
        .policies
        .iter()
        .map(|p| (p.policy_host(), p.policy_text()))
        .collect()
}

/// The running policy host.
#[derive(Debug)]
pub struct StsHostServer {
    listener: HttpsListener,
    handle: StsHostHandle,
}

/// Policy text by policy host name (`mta-sts.<domain>`).
type Policies = Arc<RwLock<HashMap<String, String>>>;

impl StsHostServer {
    /// Binds `settings.address` and serves the policies.
    pub async fn start(settings: &StsHostSettings) -> Result<StsHostServer, String> {
        let resolver = Arc::new(StsCertResolver::new(settings));
        let policies: Policies = Arc::new(RwLock::new(policy_map(settings)));
        let handle = StsHostHandle {
            address: settings.address,
            policies: policies.clone(),
            resolver: resolver.clone(),
        };
        let mut tls = rustls::ServerConfig::builder_with_provider(settings.provider.clone())
            .with_protocol_versions(&settings.versions)
            .map_err(|e| format!("MTA-STS policy host TLS settings: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(resolver);
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let app = Router::new().fallback(serve).with_state(policies);
        let listener =
            HttpsListener::start("MTA-STS policy host", settings.address, tls, move |_| {
                app.clone()
            })
            .await?;
        Ok(StsHostServer { listener, handle })
    }

    /// What a reload uses to replace the policies and certificates.
    pub fn handle(&self) -> StsHostHandle {
        self.handle.clone()
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

/// Every request: the policy for `GET`/`HEAD` of the policy path on a
/// hosted `mta-sts.<domain>`, else 404 (405 for another method on it).
async fn serve(
    State(policies): State<Policies>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let not_found = || (StatusCode::NOT_FOUND, "not found\n").into_response();
    if uri.path() != POLICY_PATH {
        return not_found();
    }
    let policy = host_name(&headers).and_then(|h| {
        policies
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&h)
            .cloned()
    });
    let Some(policy) = policy else {
        return not_found();
    };
    if method != Method::GET && method != Method::HEAD {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET, HEAD")],
            "only GET\n",
        )
            .into_response();
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain")],
        policy,
    )
        .into_response()
}

/// The `Host:` header without port or trailing dot, lower case.
fn host_name(headers: &HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    Some(name.trim_end_matches('.').to_ascii_lowercase())
}
