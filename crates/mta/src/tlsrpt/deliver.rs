//! Delivery of a report to one `rua` address (RFC 8460 §5): `mailto:` as
//! mail straight to the address's next hops, `https:` as a POST of
//! `application/tlsrpt+gzip`. Report mail does not go through the counted
//! delivery path: it is never itself counted or reported (no loops), and
//! it is sent even when TLS to the report host fails (§5.3): STARTTLS is
//! tried with any certificate accepted, and a host whose handshake fails is
//! tried again in cleartext. The POST needs a verified HTTPS peer (PKIX
//! against the enabled CA lists): there is no cleartext HTTPS.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use portcullis_dane::PeerVerifier;
use portcullis_policy::DomainName;
use portcullis_smtp_tls::{
    ClientConfig, ClientConnection, ClientSession, Envelope, ForwardPath, MailParams, OnShortfall,
    ReversePath, StartTlsPlan, establish, quit, send,
};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::dns::Resolver;
use crate::maillog::MailLog;
use crate::outbound::probe::{self, NextHops};
use crate::settings::DeliverySettings;

/// A report address, as the `_smtp._tls` record gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rua {
    /// `mailto:` — the address (query part dropped).
    Mail(String),
    /// `https:` — the URL.
    Https(String),
}

impl Rua {
    /// Reads one `rua` URI (already checked by the TXT parser to be
    /// `mailto:` or `https:`).
    pub fn parse(uri: &str) -> Result<Rua, String> {
        if let Some(rest) = uri
            .get(..7)
            .filter(|s| s.eq_ignore_ascii_case("mailto:"))
            .and_then(|_| uri.get(7..))
        {
            let addr = rest.split('?').next().unwrap_or("");
            let addr = percent_decode(addr);
            let ok = addr
                .rsplit_once('@')
                .is_some_and(|(l, d)| !l.is_empty() && DomainName::parse(d).is_ok());
            return if ok {
                Ok(Rua::Mail(addr))
            } else {
                Err(format!("{uri:?} is not a mailto: URI with an address"))
            };
        }
        if uri
            .get(..8)
            .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
        {
            return hyper::Uri::try_from(uri)
                .ok()
                .filter(|u| u.host().is_some())
                .map(|_| Rua::Https(uri.to_owned()))
                .ok_or_else(|| format!("{uri:?} is not a usable https: URL"));
        }
        Err(format!("{uri:?} is neither mailto: nor https:"))
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes.get(i), bytes.get(i + 1), bytes.get(i + 2)) {
            (Some(b'%'), Some(h), Some(l)) if hex(*h).is_some() && hex(*l).is_some() => {
                out.push((hex(*h).unwrap_or(0) * 16 + hex(*l).unwrap_or(0)) as u8);
                i += 3;
            }
            (Some(b), _, _) => {
                out.push(*b);
                i += 1;
            }
            _ => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What sending needs from the gateway.
#[derive(Clone)]
pub struct Transport {
    pub delivery: DeliverySettings,
    pub resolver: Option<Resolver>,
    pub log: MailLog,
    /// EHLO name.
    pub hostname: String,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("hostname", &self.hostname)
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// Mails `message` from `sender` to `rcpt`; the next hop's reply on
    /// success.
    pub async fn mail(&self, sender: &str, rcpt: &str, message: &[u8]) -> Result<String, String> {
        let domain = rcpt
            .rsplit_once('@')
            .and_then(|(_, d)| DomainName::parse(d).ok())
            .ok_or_else(|| format!("report address {rcpt:?} has no valid domain"))?;
        let hops = match probe::next_hops(
            &self.delivery,
            self.resolver.as_ref(),
            &self.log,
            &domain,
        )
        .await
        {
            NextHops::Hops(h) => h,
            NextHops::None(s) => return Err(format!("no next hop for {domain}: {}", s.diagnostic)),
        };
        let envelope = Envelope {
            from: ReversePath::parse(&format!("<{sender}>"))
                .map_err(|e| format!("report sender {sender:?}: {e}"))?,
            params: MailParams::default(),
            to: vec![
                ForwardPath::parse(&format!("<{rcpt}>"))
                    .map_err(|e| format!("report address {rcpt:?}: {e}"))?,
            ],
        };
        let mut last = format!("no address for the next hops of {domain}");
        for hop in &hops {
            for addr in &hop.addrs {
                // TLS if it works, any certificate; cleartext if it does not.
                for starttls in [true, false] {
                    match self
                        .try_mail(*addr, &hop.server_name, starttls, &envelope, message)
                        .await
                    {
                        Ok(reply) => return Ok(reply),
                        Err((e, tls_failed)) => {
                            last = format!("{}[{addr}]: {e}", hop.hop.host);
                            if !(starttls && tls_failed) {
                                break;
                            }
                        }
                    }
                }
            }
        }
        Err(last)
    }

    /// One try; the error says whether the TLS handshake was what failed.
    async fn try_mail(
        &self,
        addr: SocketAddr,
        server_name: &ServerName<'static>,
        starttls: bool,
        envelope: &Envelope,
        message: &[u8],
    ) -> Result<String, (String, bool)> {
        let d = &self.delivery;
        let tcp = tokio::time::timeout(d.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| ("connect timed out".to_owned(), false))?
            .map_err(|e| (format!("connect failed: {e}"), false))?;
        let tls = Arc::new(PeerVerifier::any_certificate(d.tls.provider.clone()))
            .client_config(&d.tls.versions, None)
            .map_err(|e| (format!("TLS settings: {e}"), false))?;
        let mut config = ClientConfig::new(&self.hostname);
        config.command_timeout = d.command_timeout;
        config.data_timeout = d.data_timeout;
        config.tls_handshake_timeout = d.tls_handshake_timeout;
        let session = ClientSession::new(config, Instant::now());
        let mut conn = ClientConnection::new(
            tcp,
            session,
            TlsConnector::from(Arc::new(tls)),
            server_name.clone(),
        );
        let plan = StartTlsPlan {
            starttls,
            require_requiretls: false,
        };
        establish(&mut conn, plan, |_| OnShortfall::Continue)
            .await
            .map_err(|e| (e.to_string(), true))?;
        let result = send(&mut conn, envelope.clone(), message)
            .await
            .map_err(|e| (e.to_string(), false))?;
        quit(&mut conn).await;
        let refused = |r: &portcullis_smtp_tls::Reply| (format!("refused: {r}"), false);
        if !result.mail.is_positive() {
            return Err(refused(&result.mail));
        }
        if let Some((_, Some(r))) = result.recipients.first()
            && !r.is_positive()
        {
            return Err(refused(r));
        }
        match &result.data {
            Some(r) if r.is_positive() => Ok(r.to_string()),
            Some(r) => Err(refused(r)),
            None => Err(("DATA was not sent".to_owned(), false)),
        }
    }

    /// POSTs the gzipped report to `url`; the HTTP status on success.
    pub async fn post(&self, url: &str, gzip: &[u8]) -> Result<u16, String> {
        let timeout = self
            .delivery
            .mta_sts
            .fetch_timeout
            .max(Duration::from_secs(10));
        match tokio::time::timeout(timeout, self.post_now(url, gzip)).await {
            Ok(r) => r,
            Err(_) => Err(format!("{url}: no answer within {}s", timeout.as_secs())),
        }
    }

    async fn post_now(&self, url: &str, gzip: &[u8]) -> Result<u16, String> {
        let uri = hyper::Uri::try_from(url).map_err(|e| format!("{url}: {e}"))?;
        let host = uri
            .host()
            .ok_or_else(|| format!("{url}: no host"))?
            .to_owned();
        let port = uri.port_u16().unwrap_or(443);
        let resolver = self
            .resolver
            .as_ref()
            .ok_or_else(|| format!("{url}: no DNS resolver is configured to find {host}"))?;
        let addr = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => SocketAddr::new(ip, port),
            Err(_) => resolver
                .host_addresses(&host, port)
                .await
                .map_err(|e| format!("{url}: {host}: {e}"))?
                .into_iter()
                .next()
                .ok_or_else(|| format!("{url}: {host} has no address"))?,
        };
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("{url}: connect to {addr}: {e}"))?;
        let tls = rustls::ClientConfig::builder_with_provider(self.delivery.tls.provider.clone())
            .with_protocol_versions(&self.delivery.tls.versions)
            .map_err(|e| format!("HTTPS client settings: {e}"))?
            .with_root_certificates(self.delivery.tls.roots.clone())
            .with_no_client_auth();
        let name = ServerName::try_from(host.clone()).map_err(|e| format!("{url}: {e}"))?;
        let stream = TlsConnector::from(Arc::new(tls))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("{url}: TLS: {e}"))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        let connection = tokio::spawn(connection);
        let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        let request = hyper::Request::post(path)
            .header(hyper::header::HOST, &host)
            .header(hyper::header::CONTENT_TYPE, "application/tlsrpt+gzip")
            .header(hyper::header::USER_AGENT, "Portcullis TLS-RPT")
            .body(Full::new(Bytes::copy_from_slice(gzip)))
            .map_err(|e| format!("{url}: {e}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("{url}: {e}"));
        let result = match response {
            Ok(r) => {
                let status = r.status().as_u16();
                // Drain a short answer so the server sees a clean close.
                let _ = r.into_body().collect().await;
                if (200..300).contains(&status) {
                    Ok(status)
                } else {
                    Err(format!("{url}: HTTP status {status}"))
                }
            }
            Err(e) => Err(e),
        };
        connection.abort();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        // DNS text: any input is read or refused, never a panic; a
        // percent-encoded address comes back decoded.
        #[test]
        fn any_rua_text_is_read_or_refused(text in "\\PC{0,80}") {
            let _ = Rua::parse(&text);
            let _ = Rua::parse(&format!("mailto:{text}"));
            let _ = Rua::parse(&format!("https://{text}"));
        }

        #[test]
        fn mailto_addresses_round_trip(local in "[a-z0-9.+_-]{1,20}", domain in "[a-z][a-z0-9]{0,10}\\.(test|example)") {
            let encoded: String = local.bytes().map(|b| format!("%{b:02X}")).collect();
            prop_assert_eq!(
                Rua::parse(&format!("mailto:{encoded}@{domain}?subject=x")).unwrap(),
                Rua::Mail(format!("{local}@{domain}"))
            );
        }
    }

    #[test]
    fn rua_uris_are_read() {
        assert_eq!(
            Rua::parse("mailto:tls%2Breports@example.com?subject=x").unwrap(),
            Rua::Mail("tls+reports@example.com".into())
        );
        assert_eq!(
            Rua::parse("https://reports.example.com:8443/tlsrpt").unwrap(),
            Rua::Https("https://reports.example.com:8443/tlsrpt".into())
        );
        for bad in [
            "mailto:",
            "mailto:nobody",
            "https://",
            "ftp://x",
            "mailto:a@-bad-",
        ] {
            assert!(Rua::parse(bad).is_err(), "{bad}");
        }
    }
}
