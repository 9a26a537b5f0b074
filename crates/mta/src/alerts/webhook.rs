//! The HTTPS webhook: each alert as one JSON POST, the receiver's
//! certificate verified against the CA lists (as MTA-STS fetches are), the
//! host resolved with the gateway's resolver or given a fixed address.
//! Any `2xx` is success; anything else is retried.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::Notice;
use super::settings::WebhookSettings;
use crate::dns::Resolver;

/// The JSON document posted for `notice`.
pub fn json(hostname: &str, notice: &Notice) -> serde_json::Value {
    serde_json::json!({
        "id": notice.id,
        "gateway": hostname,
        "time": notice.time_rfc3339(),
        "class": notice.alert.class.as_str(),
        "severity": notice.alert.severity.as_str(),
        "key": notice.alert.key,
        "text": notice.alert.text,
        "repeats": notice.repeats,
    })
}

/// Posts `notice`; `Ok` carries the HTTP status.
pub async fn post(
    hook: &WebhookSettings,
    hostname: &str,
    resolver: Option<&Resolver>,
    notice: &Notice,
) -> Result<u16, String> {
    let addr = match hook.address {
        Some(a) => a,
        None => {
            let Some(r) = resolver else {
                return Err(format!(
                    "no DNS resolver is configured to find {} (set [alerts] webhook-address, or [dns] resolvers)",
                    hook.host
                ));
            };
            r.host_addresses(&hook.host, hook.port)
                .await?
                .into_iter()
                .next()
                .ok_or_else(|| format!("{} has no address", hook.host))?
        }
    };
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("cannot connect to {} ({addr}): {e}", hook.host))?;
    let name = ServerName::try_from(hook.host.clone()).map_err(|e| e.to_string())?;
    let tls = TlsConnector::from(hook.tls.clone())
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS with {} failed: {e}", hook.host))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| format!("HTTP with {}: {e}", hook.host))?;
    let connection = tokio::spawn(connection);
    let body = serde_json::to_vec(&json(hostname, notice)).map_err(|e| e.to_string())?;
    let host_header = if hook.port == 443 {
        hook.host.clone()
    } else {
        format!("{}:{}", hook.host, hook.port)
    };
    let request = hyper::Request::post(hook.path.as_str())
        .header(hyper::header::HOST, host_header)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::USER_AGENT, "Portcullis alerts")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let result = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("HTTP with {}: {e}", hook.host))?;
        let status = response.status().as_u16();
        // Read (and drop) a bounded answer so the exchange completes.
        let _ = http_body_util::Limited::new(response.into_body(), 64 * 1024)
            .collect()
            .await;
        if (200..300).contains(&status) {
            Ok(status)
        } else {
            Err(format!("{} answered HTTP {status}", hook.url))
        }
    }
    .await;
    connection.abort();
    result
}
