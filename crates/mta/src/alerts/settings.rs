//! The alert service's settings: plain, already-validated values built by
//! `config` from `[alerts]` (or directly by tests and embedders).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::dedup::DedupPolicy;
use super::{AlertClass, Severity};
use crate::settings::{OutboundTls, RouteHost};

/// Everything the alert service needs.
#[derive(Clone, Debug)]
pub struct AlertSettings {
    /// The gateway's host name (subject, Message-ID, EHLO, JSON).
    pub hostname: String,
    /// `From:` and `MAIL FROM` of alert mail.
    pub from: String,
    /// Who gets which alerts by mail.
    pub recipients: Vec<Recipient>,
    /// How alert mail leaves.
    pub delivery: Delivery,
    /// The HTTPS webhook, if any.
    pub webhook: Option<WebhookSettings>,
    /// Duplicate suppression waits.
    pub dedup: DedupPolicy,
    /// How many recent alerts are kept.
    pub recent: usize,
    /// `<data-dir>/alerts`: the recent list and the outbox.
    pub dir: PathBuf,
    /// Delay before the first retry of a failed delivery; it doubles up to
    /// `retry_max`.
    pub retry_first: Duration,
    pub retry_max: Duration,
    /// Trust roots, versions and client certificate (the outbound ones).
    pub tls: OutboundTls,
    /// The gateway's resolver settings (MX and webhook host lookups).
    pub dns: Option<portcullis_dane::dns::ResolverSettings>,
    /// Port of MX hosts (25; loopback tests change it).
    pub mx_port: u16,
    /// Deadline of one delivery attempt (connect to QUIT, or the POST).
    pub attempt_timeout: Duration,
}

impl AlertSettings {
    /// Defaults around the required parts: direct MX, no webhook, 300/3600 s
    /// waits, 50 recent alerts, retries from 30 s doubling to 30 minutes.
    pub fn new(hostname: &str, dir: PathBuf, tls: OutboundTls) -> Self {
        AlertSettings {
            hostname: hostname.to_owned(),
            from: format!("alert@{hostname}"),
            recipients: Vec::new(),
            delivery: Delivery::DirectMx,
            webhook: None,
            dedup: DedupPolicy::default(),
            recent: 50,
            dir,
            retry_first: Duration::from_secs(30),
            retry_max: Duration::from_secs(1800),
            tls,
            dns: None,
            mx_port: 25,
            attempt_timeout: Duration::from_secs(120),
        }
    }
}

/// One subscribed recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipient {
    pub address: String,
    pub subscription: Subscription,
}

/// Which alerts a recipient gets: empty lists mean every class or severity.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subscription {
    pub classes: Vec<AlertClass>,
    pub severities: Vec<Severity>,
}

impl Subscription {
    pub fn wants(&self, class: AlertClass, severity: Severity) -> bool {
        (self.classes.is_empty() || self.classes.contains(&class))
            && (self.severities.is_empty() || self.severities.contains(&severity))
    }
}

/// How alert mail leaves the gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// To each recipient domain's MX, looked up with the gateway's resolver.
    DirectMx,
    /// Through these hosts, tried in order.
    Smarthost(Vec<RouteHost>),
}

/// The HTTPS webhook.
#[derive(Clone)]
pub struct WebhookSettings {
    /// As configured, for the log.
    pub url: String,
    /// Host name (checked against the certificate) and port.
    pub host: String,
    pub port: u16,
    /// Path and query.
    pub path: String,
    /// A fixed address instead of resolving `host`.
    pub address: Option<SocketAddr>,
    /// Verifies the receiver's certificate against the CA lists.
    pub tls: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSettings")
            .field("url", &self.url)
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}
