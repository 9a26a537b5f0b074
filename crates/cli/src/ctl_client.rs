//! The HTTPS client of `portcullis ctl`: one request to the admin API per
//! command (hyper over tokio-rustls). Locally it needs no set-up: the URL
//! and the certificate's SHA-256 come from `<data-dir>/admin/endpoint.json`
//! and the token from `<data-dir>/admin/ctl-token`, and the connection is
//! pinned to exactly that certificate (the demonstration certificate
//! verifies against no CA). For a remote gateway, `--url`, `--token-file`
//! and `--cacert` (the CA that issued the admin certificate).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use portcullis_mta::admin::endpoint::{Endpoint, fingerprint};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// A request must be answered within this (an import reloads the gateway).
const TIMEOUT: Duration = Duration::from_secs(120);

/// How to reach the gateway.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub token: String,
    pub trust: Trust,
}

/// How the admin certificate is checked.
#[derive(Debug, Clone)]
pub enum Trust {
    /// Exactly this certificate (hex SHA-256).
    Pinned(String),
    /// Chains to a CA in this PEM file.
    Ca(PathBuf),
}

/// An answer: status and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as JSON.
    pub fn json(&self) -> Result<serde_json::Value, String> {
        serde_json::from_slice(&self.body).map_err(|e| {
            format!(
                "the gateway answered {} with something that is not JSON ({e})",
                self.status
            )
        })
    }
}

/// Finds the local gateway in `data_dir`.
pub fn local(
    data_dir: &Path,
    url: Option<String>,
    token: Option<String>,
) -> Result<Target, String> {
    let endpoint = Endpoint::load(data_dir);
    let token = match token {
        Some(t) => t,
        None => {
            let file = data_dir
                .join("admin")
                .join(portcullis_mta::admin::tokens::CTL_TOKEN_FILE);
            read_token(&file)?
        }
    };
    let endpoint = endpoint?;
    Ok(Target {
        url: url.unwrap_or(endpoint.url),
        token,
        trust: Trust::Pinned(endpoint.certificate_sha256),
    })
}

/// Reads a token file (first line).
pub fn read_token(file: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read the token file {}: {e}", file.display()))?;
    let t = text.lines().next().unwrap_or("").trim().to_owned();
    if t.is_empty() {
        return Err(format!("the token file {} is empty", file.display()));
    }
    Ok(t)
}

#[derive(Debug)]
struct Pinned {
    sha256: String,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if fingerprint(end_entity) == self.sha256 {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the admin listener presents another certificate than the one in endpoint.json (another gateway on that port?)".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn tls_config(trust: &Trust) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let mut config = match trust {
        Trust::Pinned(sha256) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned {
                sha256: sha256.clone(),
                provider,
            }))
            .with_no_client_auth(),
        Trust::Ca(file) => {
            let pem =
                std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_pki_types::pem::PemObject::pem_slice_iter(&pem) {
                let cert: CertificateDer<'static> =
                    cert.map_err(|e| format!("{}: {e}", file.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: {e}", file.display()))?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Sends one request; `body` is JSON when given.
pub fn request(
    target: &Target,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> Result<Answer, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async {
        tokio::time::timeout(TIMEOUT, send(target, method, path, body))
            .await
            .map_err(|_| {
                format!(
                    "no answer from {} within {}s",
                    target.url,
                    TIMEOUT.as_secs()
                )
            })?
    })
}

async fn send(
    target: &Target,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> Result<Answer, String> {
    let rest = target
        .url
        .strip_prefix("https://")
        .ok_or_else(|| format!("{:?} is not an https:// URL", target.url))?;
    let authority = rest.trim_end_matches('/');
    let host = match authority.rsplit_once(':') {
        Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']'),
        None => authority,
    };
    let addr = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:443")
    };
    let tcp = tokio::net::TcpStream::connect(&addr).await.map_err(|e| {
        format!(
            "cannot connect to {}: {e} (is the gateway running?)",
            target.url
        )
    })?;
    let name = ServerName::try_from(host.to_owned())
        .map_err(|e| format!("{host:?} in {}: {e}", target.url))?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(tls_config(&target.trust)?))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS with {}: {e}", target.url))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| format!("HTTP with {}: {e}", target.url))?;
    tokio::spawn(conn);
    let payload = match body {
        Some(v) => Bytes::from(serde_json::to_vec(v).map_err(|e| e.to_string())?),
        None => Bytes::new(),
    };
    let request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", authority)
        .header("authorization", format!("Bearer {}", target.token))
        .header("content-type", "application/json")
        .body(Full::new(payload))
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request to {}: {e}", target.url))?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("reading the answer of {}: {e}", target.url))?
        .to_bytes()
        .to_vec();
    Ok(Answer { status, body })
}
