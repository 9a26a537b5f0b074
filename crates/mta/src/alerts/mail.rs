//! Alert mail: the message (plain text, written for a person, with the
//! class, severity and key also in an `X-Portcullis-Alert` header for
//! filters) and its sending over the alert path: the smarthost, or the
//! recipient domain's MX looked up with the gateway's resolver (the same
//! next-hop lookup as delivery, so SMTP routes and DNSSEC answers count the
//! same way). STARTTLS is used whenever offered; the certificate is not
//! checked (opportunistic, as for any destination without a TLS rule):
//! an alert that cannot be sent is worse than one sent over unverified TLS.

use std::sync::Arc;
use std::time::Instant;

use portcullis_dane::PeerVerifier;
use portcullis_policy::{DestinationKey, DomainName};
use portcullis_smtp_tls::{
    ClientConfig, ClientConnection, ClientSession, Envelope, ForwardPath, MailParams, ReversePath,
    TlsRequirement, deliver,
};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::{AlertSettings, Delivery, Notice, plural};
use crate::dns::Resolver;
use crate::maillog::MailLog;
use crate::outbound::{HopLookup, NextHops, resolve_with};
use crate::settings::SmtpRoute;

/// The RFC 5322 message for `notice`.
pub fn message(settings: &AlertSettings, notice: &Notice, to: &[String]) -> Vec<u8> {
    let a = &notice.alert;
    let first_line = a.text.lines().next().unwrap_or("");
    let subject = ascii(&format!(
        "[Portcullis {}] {} {}: {}",
        settings.hostname,
        a.severity.as_str().to_uppercase(),
        a.class,
        shorten(first_line, 120)
    ));
    let date = time::OffsetDateTime::from(notice.time())
        .format(&time::format_description::well_known::Rfc2822)
        .unwrap_or_default();
    let mut body = wrap(&a.text, 76);
    if notice.repeats > 0 {
        body.push_str(&format!(
            "\r\nThis alert was held back {} time{} since the previous notice of it.\r\n",
            notice.repeats,
            plural(notice.repeats)
        ));
    }
    body.push_str(&format!(
        "\r\nClass: {}\r\nSeverity: {}\r\nKey: {}\r\nTime: {}\r\nGateway: {}\r\n",
        a.class,
        a.severity,
        ascii(&a.key),
        notice.time_rfc3339(),
        settings.hostname
    ));
    format!(
        "From: Portcullis alerts <{from}>\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\nMessage-ID: <alert-{id}@{host}>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\nAuto-Submitted: auto-generated\r\nX-Portcullis-Alert: class={class}; severity={severity}; repeats={repeats}\r\n\r\n{body}",
        from = settings.from,
        to = to.iter().map(|t| format!("<{t}>")).collect::<Vec<_>>().join(", "),
        id = notice.id,
        host = settings.hostname,
        class = a.class,
        severity = a.severity,
        repeats = notice.repeats,
    )
    .into_bytes()
}

fn ascii(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() {
                c
            } else {
                '?'
            }
        })
        .collect()
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let cut: String = s.chars().take(max).collect();
    format!("{cut}...")
}

/// Word-wraps each line of `text` at `width` columns, CRLF line ends.
fn wrap(text: &str, width: usize) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let mut col = 0;
        for word in line.split(' ') {
            let len = word.chars().count();
            if col > 0 && col + 1 + len > width {
                out.push_str("\r\n");
                col = 0;
            } else if col > 0 {
                out.push(' ');
                col += 1;
            }
            out.push_str(word);
            col += len;
        }
        out.push_str("\r\n");
    }
    out
}

/// Sends `notice` to `to` (all of one domain, or any with a smarthost).
/// `Ok` names the host that took it.
pub async fn send(
    settings: &AlertSettings,
    resolver: Option<&Resolver>,
    log: &MailLog,
    notice: &Notice,
    to: &[String],
) -> Result<String, String> {
    let domain = to
        .first()
        .and_then(|r| r.rsplit_once('@'))
        .map(|(_, d)| d)
        .ok_or("no recipient")?;
    let domain = DomainName::parse(domain).map_err(|e| format!("recipient domain: {e}"))?;
    let routes = match &settings.delivery {
        Delivery::DirectMx => Vec::new(),
        Delivery::Smarthost(hosts) => vec![SmtpRoute {
            key: DestinationKey::Default,
            hosts: hosts.clone(),
        }],
    };
    let lookup = HopLookup {
        routes: &routes,
        resolver,
        log,
        mx_port: settings.mx_port,
    };
    let label = format!("alert {}", notice.id);
    let hops = match resolve_with(&lookup, &label, &domain).await {
        NextHops::Hops(h) => h,
        NextHops::None(s) => return Err(format!("no next hop: {}", s.diagnostic)),
    };
    let envelope = Envelope {
        from: ReversePath::parse(&format!("<{}>", settings.from))
            .map_err(|e| format!("from {}: {e}", settings.from))?,
        params: MailParams::default(),
        to: to
            .iter()
            .map(|t| ForwardPath::parse(&format!("<{t}>")).map_err(|e| format!("{t}: {e}")))
            .collect::<Result<_, _>>()?,
    };
    let body = message(settings, notice, to);
    let tls = Arc::new(PeerVerifier::any_certificate(settings.tls.provider.clone()))
        .client_config(
            &settings.tls.versions,
            settings.tls.client_certificate.clone(),
        )
        .map_err(|e| format!("TLS settings: {e}"))?;
    let connector = TlsConnector::from(Arc::new(tls));
    let mut last = format!("no address for the next hop of {}", domain.as_str());
    for hop in &hops {
        for addr in &hop.addrs {
            let label = match &hop.hop.host {
                portcullis_policy::HopHost::Name(n) => {
                    format!("{n}[{}]:{}", addr.ip(), addr.port())
                }
                _ => addr.to_string(),
            };
            let attempt = async {
                let stream = TcpStream::connect(addr)
                    .await
                    .map_err(|e| format!("connect: {e}"))?;
                let mut config = ClientConfig::new(settings.hostname.clone());
                config.command_timeout = settings.attempt_timeout;
                config.data_timeout = settings.attempt_timeout;
                let session = ClientSession::new(config, Instant::now());
                let conn = ClientConnection::new(
                    stream,
                    session,
                    connector.clone(),
                    hop.server_name.clone(),
                );
                deliver(conn, TlsRequirement::Preferred, envelope.clone(), &body)
                    .await
                    .map_err(|e| e.to_string())
            };
            match tokio::time::timeout(settings.attempt_timeout, attempt).await {
                Ok(Ok(d)) if d.result.is_accepted() => {
                    return Ok(format!("{label} ({})", d.tls));
                }
                Ok(Ok(d)) => last = format!("{label} refused it: {:?}", d.result),
                Ok(Err(e)) => last = format!("{label}: {e}"),
                Err(_) => {
                    last = format!("{label}: no answer within {:?}", settings.attempt_timeout)
                }
            }
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::{Alert, AlertClass, Severity};

    #[test]
    fn the_message_names_class_severity_and_repeats() {
        let roots = rustls::RootCertStore::empty();
        let tls = crate::settings::OutboundTls::new(roots, &Default::default()).unwrap();
        let s = AlertSettings::new("gw.example", "/nonexistent".into(), tls);
        let notice = Notice {
            id: "00ff".into(),
            at: 1_800_000_000,
            alert: Alert::new(
                AlertClass::Certificate,
                Severity::Critical,
                "certificate:inbound",
                "The certificate \"inbound\" expires in 3 days. Renew it with portcullis cert import.",
            ),
            repeats: 4,
        };
        let text = String::from_utf8(message(&s, &notice, &["ops@example.com".into()])).unwrap();
        assert!(text.contains("Subject: [Portcullis gw.example] CRITICAL certificate: The certificate \"inbound\" expires in 3 days."));
        assert!(text.contains("From: Portcullis alerts <alert@gw.example>\r\n"));
        assert!(
            text.contains(
                "X-Portcullis-Alert: class=certificate; severity=critical; repeats=4\r\n"
            )
        );
        assert!(text.contains("held back 4 times"));
        assert!(text.lines().all(|l| l.len() <= 998));
    }
}
