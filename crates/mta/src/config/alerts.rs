//! `[alerts]`: who is told what, and how (SPEC §6 "Alerts"). Off when
//! absent.
//!
//! ```toml
//! [alerts]
//! from = "alert@mx.example.com"        # default alert@<hostname>
//! smarthost = "smtp.example.net:25"    # default: each recipient domain's MX
//! webhook = "https://hooks.example.net/portcullis"   # optional JSON POST
//! initial-wait-seconds = 300           # first repeat of an alert after this
//! max-wait-seconds = 3600              # the wait doubles up to this
//! recent = 50                          # alerts kept for `portcullis ctl alerts`
//! [[alerts.recipient]]
//! address = "ops@example.com"
//! classes = ["certificate", "tls", "dane"]   # default: every class
//! severities = ["critical", "warning"]      # default: every severity
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::source::KeyPath;
use super::validate::{Problem, parse_route_host};
use crate::alerts::dedup::DedupPolicy;
use crate::alerts::settings::WebhookSettings;
use crate::alerts::sources::CertificateInUse;
use crate::alerts::{AlertClass, AlertSettings, Delivery, Recipient, Severity, Subscription};
use crate::settings::EngineSettings;

/// `[alerts]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct AlertsConfig {
    /// Sender of alert mail. Default `alert@<hostname>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Send alert mail through this host (`host`, `host:port`, `IP:port`)
    /// instead of each recipient domain's MX.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smarthost: Option<String>,
    /// `https://` URL that gets each alert as a JSON POST.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
    /// Fixed `IP:port` for the webhook host (split horizon, tests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_address: Option<String>,
    /// First repeat of an alert (same key) after this. Default 300.
    #[serde(default = "default_initial")]
    pub initial_wait_seconds: u64,
    /// The wait doubles after each repeat up to this. Default 3600.
    #[serde(default = "default_max")]
    pub max_wait_seconds: u64,
    /// Alerts kept across restarts for `portcullis ctl alerts`. Default 50.
    #[serde(default = "default_recent")]
    pub recent: u32,
    /// First retry of an alert that could not be delivered; doubles up to
    /// `retry-max-seconds`. Default 30.
    #[serde(default = "default_retry_first")]
    pub retry_first_seconds: u64,
    /// Default 1800.
    #[serde(default = "default_retry_max")]
    pub retry_max_seconds: u64,
    /// Who gets alert mail.
    #[serde(default, rename = "recipient", skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<AlertRecipientConfig>,
}

/// One `[[alerts.recipient]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct AlertRecipientConfig {
    pub address: String,
    /// system, certificate, tls, dane, mta-sts, dns, queue, disk, config.
    /// Default every class.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<String>,
    /// critical, warning, info. Default every severity.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub severities: Vec<String>,
}

fn default_initial() -> u64 {
    300
}
fn default_max() -> u64 {
    3600
}
fn default_recent() -> u32 {
    50
}
fn default_retry_first() -> u64 {
    30
}
fn default_retry_max() -> u64 {
    1800
}

/// A parsed webhook URL: host, port, path.
fn parse_webhook(url: &str) -> Result<(String, u16, String), String> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if uri.scheme_str() != Some("https") {
        return Err(format!(
            "{url:?}: the webhook must be an https:// URL (alerts are not sent in cleartext)"
        ));
    }
    let host = uri
        .host()
        .ok_or_else(|| format!("{url:?} has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    Ok((host, uri.port_u16().unwrap_or(443), path))
}

fn check_address(text: &str) -> Result<(), String> {
    portcullis_smtp_tls::Mailbox::parse(text)
        .map(|_| ())
        .map_err(|e| format!("{text:?} is not a mail address: {e}"))
}

/// Checks `[alerts]`.
pub(crate) fn check(config: &super::Config, p: &mut Vec<Problem>) {
    let Some(a) = &config.alerts else { return };
    let at = KeyPath::root().key("alerts");
    if let Some(from) = &a.from
        && let Err(e) = check_address(from)
    {
        p.push((at.key("from"), e));
    }
    if let Some(h) = &a.smarthost
        && let Err(e) = parse_route_host(h)
    {
        p.push((at.key("smarthost"), e));
    }
    if let Some(w) = &a.webhook
        && let Err(e) = parse_webhook(w)
    {
        p.push((at.key("webhook"), e));
    }
    if let Some(addr) = &a.webhook_address {
        if a.webhook.is_none() {
            p.push((
                at.key("webhook-address"),
                "there is no webhook to give an address for; set webhook too".into(),
            ));
        }
        if addr.parse::<SocketAddr>().is_err() {
            p.push((
                at.key("webhook-address"),
                format!("{addr:?} is not an IP address and port"),
            ));
        }
    }
    if a.initial_wait_seconds == 0 {
        p.push((
            at.key("initial-wait-seconds"),
            "must be at least 1 (0 would send every duplicate)".into(),
        ));
    }
    if a.max_wait_seconds < a.initial_wait_seconds {
        p.push((
            at.key("max-wait-seconds"),
            format!(
                "{} is less than initial-wait-seconds ({})",
                a.max_wait_seconds, a.initial_wait_seconds
            ),
        ));
    }
    if a.recent == 0 {
        p.push((at.key("recent"), "must be at least 1".into()));
    }
    if a.retry_first_seconds == 0 || a.retry_max_seconds < a.retry_first_seconds {
        p.push((
            at.key("retry-first-seconds"),
            "must be at least 1 and not more than retry-max-seconds".into(),
        ));
    }
    if a.recipients.is_empty() && a.webhook.is_none() {
        p.push((
            at.clone(),
            "alerts go nowhere: add an [[alerts.recipient]] with an address, or a webhook".into(),
        ));
    }
    for (i, r) in a.recipients.iter().enumerate() {
        let here = at.key("recipient").index(i);
        if let Err(e) = check_address(&r.address) {
            p.push((here.key("address"), e));
        }
        for (j, c) in r.classes.iter().enumerate() {
            if AlertClass::parse(c).is_none() {
                p.push((
                    here.key("classes").index(j),
                    format!(
                        "{c:?} is not an alert class; write one of {}",
                        AlertClass::ALL.map(AlertClass::as_str).join(", ")
                    ),
                ));
            }
        }
        for (j, s) in r.severities.iter().enumerate() {
            if Severity::parse(s).is_none() {
                p.push((
                    here.key("severities").index(j),
                    format!("{s:?} is not a severity; write critical, warning or info"),
                ));
            }
        }
    }
}

impl super::LoadedConfig {
    /// The certificate store entries the configuration uses (listeners,
    /// outbound client certificate, admin, MTA-STS policy host), each with
    /// the key that names it: what the expiry alerts watch.
    pub fn certificates_in_use(&self) -> Vec<CertificateInUse> {
        let c = &self.config;
        let mut used: Vec<CertificateInUse> = super::validate::named_certificates(c)
            .into_iter()
            .map(|(at, name)| CertificateInUse {
                name: name.to_owned(),
                usage: at.to_string(),
            })
            .collect();
        // The demonstration certificate, where nothing else is named.
        let demo = portcullis_certstore::DEMO_ENTRY;
        let root = KeyPath::root();
        for (i, l) in c.listener.iter().enumerate() {
            if l.certificate.is_none() && super::validate::offers_tls(l) {
                used.push(CertificateInUse {
                    name: demo.to_owned(),
                    usage: format!(
                        "{} (none named)",
                        root.key("listener").index(i).key("certificate")
                    ),
                });
            }
        }
        if c.admin.as_ref().is_some_and(|a| a.certificate.is_none()) {
            used.push(CertificateInUse {
                name: demo.to_owned(),
                usage: format!("{} (none named)", root.key("admin").key("certificate")),
            });
        }
        used
    }

    /// The alert service's settings, or `None` when `[alerts]` is absent.
    /// `engine` gives the outbound trust, the resolver and the MX port.
    pub fn alert_settings(
        &self,
        engine: &EngineSettings,
    ) -> Result<Option<AlertSettings>, super::ConfigReport> {
        let c = &self.config;
        let Some(a) = &c.alerts else { return Ok(None) };
        let mut problems = Vec::new();
        check(c, &mut problems);
        if !problems.is_empty() {
            return Err(self.report(problems));
        }
        let at = KeyPath::root().key("alerts");
        let mut s = AlertSettings::new(
            &c.hostname,
            crate::alerts::alerts_dir(&c.data_dir),
            engine.delivery.tls.clone(),
        );
        if let Some(from) = &a.from {
            s.from = from.clone();
        }
        s.recipients = a
            .recipients
            .iter()
            .map(|r| Recipient {
                address: r.address.clone(),
                subscription: Subscription {
                    classes: r
                        .classes
                        .iter()
                        .filter_map(|c| AlertClass::parse(c))
                        .collect(),
                    severities: r
                        .severities
                        .iter()
                        .filter_map(|s| Severity::parse(s))
                        .collect(),
                },
            })
            .collect();
        if let Some(h) = &a.smarthost {
            let host =
                parse_route_host(h).map_err(|e| self.report(vec![(at.key("smarthost"), e)]))?;
            s.delivery = Delivery::Smarthost(vec![host]);
        }
        if let Some(url) = &a.webhook {
            let (host, port, path) = parse_webhook(url)
                .map_err(|e| self.report(vec![(at.key("webhook"), e.clone())]))?;
            let tls = &engine.delivery.tls;
            let client = rustls::ClientConfig::builder_with_provider(tls.provider.clone())
                .with_protocol_versions(&tls.versions)
                .map_err(|e| {
                    self.report(vec![(
                        KeyPath::root().key("tls").key("outbound"),
                        e.to_string(),
                    )])
                })?
                .with_root_certificates(tls.roots.clone())
                .with_no_client_auth();
            s.webhook = Some(WebhookSettings {
                url: url.clone(),
                host,
                port,
                path,
                address: a.webhook_address.as_deref().and_then(|t| t.parse().ok()),
                tls: std::sync::Arc::new(client),
            });
        }
        s.dedup = DedupPolicy {
            initial_wait: Duration::from_secs(a.initial_wait_seconds),
            max_wait: Duration::from_secs(a.max_wait_seconds),
        };
        s.recent = a.recent as usize;
        s.retry_first = Duration::from_secs(a.retry_first_seconds);
        s.retry_max = Duration::from_secs(a.retry_max_seconds);
        s.dns = engine.delivery.dns.clone();
        s.mx_port = engine.delivery.mx_port;
        Ok(Some(s))
    }
}

#[cfg(test)]
mod tests {
    use crate::config::LoadedConfig;

    fn problems(text: &str) -> String {
        let loaded = LoadedConfig::parse("t.toml", text).unwrap();
        match loaded.validate() {
            Ok(_) => String::new(),
            Err(r) => r.to_string(),
        }
    }

    const BASE: &str = "[[listener]]\nname = \"in\"\naddress = \"127.0.0.1:2525\"\nrat.accept = [\"example.com\"]\n";

    #[test]
    fn a_good_section_passes() {
        let text = format!(
            "{BASE}[alerts]\nsmarthost = \"127.0.0.1:2526\"\nwebhook = \"https://hooks.example.net/x\"\n[[alerts.recipient]]\naddress = \"ops@example.com\"\nclasses = [\"tls\", \"mta-sts\"]\nseverities = [\"critical\"]\n"
        );
        assert_eq!(problems(&text), "");
    }

    #[test]
    fn each_bad_value_is_named_with_its_key() {
        let text = format!(
            "{BASE}[alerts]\nfrom = \"not an address\"\nwebhook = \"http://hooks.example.net/x\"\ninitial-wait-seconds = 600\nmax-wait-seconds = 60\n[[alerts.recipient]]\naddress = \"ops@example.com\"\nclasses = [\"tlss\"]\nseverities = [\"urgent\"]\n"
        );
        let report = problems(&text);
        for needle in [
            "alerts.from:",
            "alerts.webhook: \"http://hooks.example.net/x\": the webhook must be an https:// URL",
            "alerts.max-wait-seconds: 60 is less than initial-wait-seconds (600)",
            "alerts.recipient[0].classes[0]: \"tlss\" is not an alert class",
            "alerts.recipient[0].severities[0]: \"urgent\" is not a severity",
        ] {
            assert!(
                report.contains(needle),
                "{needle:?} missing from:\n{report}"
            );
        }
    }

    #[test]
    fn alerts_that_go_nowhere_are_refused() {
        let report = problems(&format!("{BASE}[alerts]\n"));
        assert!(report.contains("alerts go nowhere"), "{report}");
    }

    #[test]
    fn certificates_in_use_are_the_named_ones_and_the_demonstration_one_where_none_is_named() {
        let text = format!(
            "{BASE}[[listener.hat.sender-group]]\nname = \"ALL\"\nmatch = [\"ALL\"]\npolicy = \"ACCEPTED\"\n[listener.hat.policy.ACCEPTED]\naction = \"accept\"\ntls = \"preferred\"\n[admin]\naddress = \"127.0.0.1:8443\"\ncertificate = \"admin\"\n[tls.outbound]\nclient-certificate = \"client\"\n"
        );
        let loaded = LoadedConfig::parse("t.toml", &text).unwrap();
        let used: Vec<(String, String)> = loaded
            .certificates_in_use()
            .into_iter()
            .map(|u| (u.name, u.usage))
            .collect();
        assert!(
            used.contains(&("client".into(), "tls.outbound.client-certificate".into())),
            "{used:?}"
        );
        assert!(
            used.contains(&("admin".into(), "admin.certificate".into())),
            "{used:?}"
        );
        // The listener's mail flow policy offers STARTTLS.
        assert!(crate::config::validate::offers_tls(
            &loaded.config.listener[0]
        ));
        assert!(
            used.iter()
                .any(|(n, u)| n == portcullis_certstore::DEMO_ENTRY
                    && u == "listener[0].certificate (none named)"),
            "{used:?}"
        );
    }
}
