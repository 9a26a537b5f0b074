//! `[tls-report]`: TLS reports this gateway sends (RFC 8460) about its
//! deliveries to the domains that ask for them with `_smtp._tls` records:
//! who the reports say they are from, how report mail is DKIM-signed (a PEM
//! key file, or the key of a certificate store entry), how often counts
//! are stored, and the longest random delay after midnight UTC. Off unless
//! `enabled = true`.
//!
//! ```toml
//! [tls-report]
//! enabled = true
//! organization-name = "Example Ltd"
//! contact-info = "mailto:postmaster@example.com"
//! submitter = "mx.example.com"        # default: hostname
//! from = "tls-reports@example.com"    # default: tls-reports@<submitter>
//! dkim-domain = "example.com"
//! dkim-selector = "tlsrpt"
//! dkim-key = "/etc/portcullis/dkim-tlsrpt.pem"   # or dkim-certificate = "store entry"
//! flush-interval-seconds = 300
//! max-delay-seconds = 14400
//! ```

use std::path::PathBuf;
use std::time::Duration;

use portcullis_policy::DomainName;
use serde::{Deserialize, Serialize};

use super::source::KeyPath;
use super::validate::Problem;
use crate::clock::SharedClock;
use crate::tlsrpt::mail::DkimSigning;
use crate::tlsrpt::{Reporting, TlsReportSettings};

/// `[tls-report]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TlsReportConfig {
    /// Count TLS sessions and send reports. Default false.
    #[serde(default)]
    pub enabled: bool,
    /// `organization-name` of every report.
    pub organization_name: String,
    /// `contact-info`: an address or URI about the reports.
    pub contact_info: String,
    /// The submitter domain (`TLS-Report-Submitter`). Default: `hostname`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitter: Option<String>,
    /// `From:` and envelope sender of report mail. Default
    /// `tls-reports@<submitter>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// DKIM signing domain (`d=`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dkim_domain: Option<String>,
    /// DKIM selector (`s=`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dkim_selector: Option<String>,
    /// PEM file with the DKIM private key (RSA or Ed25519).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dkim_key: Option<PathBuf>,
    /// Certificate store entry whose (RSA or Ed25519) key signs instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dkim_certificate: Option<String>,
    /// How often counts are stored and due reports sent. Default 300.
    #[serde(default = "default_flush")]
    pub flush_interval_seconds: u64,
    /// The longest random delay after the end of a UTC day. Default 14400.
    #[serde(default = "default_delay")]
    pub max_delay_seconds: u64,
}

fn default_flush() -> u64 {
    300
}

fn default_delay() -> u64 {
    14_400
}

impl TlsReportConfig {
    fn submitter<'a>(&'a self, hostname: &'a str) -> &'a str {
        self.submitter.as_deref().unwrap_or(hostname)
    }

    fn from(&self, hostname: &str) -> String {
        self.from
            .clone()
            .unwrap_or_else(|| format!("tls-reports@{}", self.submitter(hostname)))
    }
}

/// Checks `[tls-report]` (the key itself is read when the settings are
/// built).
pub(crate) fn check(config: &super::Config, p: &mut Vec<Problem>) {
    let Some(c) = &config.tls_report else {
        return;
    };
    let at = KeyPath::root().key("tls-report");
    for (key, value) in [
        ("organization-name", &c.organization_name),
        ("contact-info", &c.contact_info),
    ] {
        if value.trim().is_empty() {
            p.push((at.key(key), "must not be empty".into()));
        }
    }
    if let Some(s) = &c.submitter
        && let Err(e) = DomainName::parse(s)
    {
        p.push((
            at.key("submitter"),
            format!("{s:?} is not a domain name: {e}"),
        ));
    }
    let from = c.from(&config.hostname);
    if let Err(e) = portcullis_smtp_tls::Mailbox::parse(&from) {
        p.push((
            at.key("from"),
            format!("{from:?} is not a mail address: {e}"),
        ));
    }
    if !(1..=86_400).contains(&c.flush_interval_seconds) {
        p.push((
            at.key("flush-interval-seconds"),
            "must be between 1 and 86400".into(),
        ));
    }
    if c.max_delay_seconds > 86_400 {
        p.push((
            at.key("max-delay-seconds"),
            "must be at most 86400 (a day)".into(),
        ));
    }
    let keys = usize::from(c.dkim_key.is_some()) + usize::from(c.dkim_certificate.is_some());
    if keys > 1 {
        p.push((
            at.key("dkim-key"),
            "give dkim-key or dkim-certificate, not both".into(),
        ));
    }
    let signing = keys > 0 || c.dkim_domain.is_some() || c.dkim_selector.is_some();
    if signing {
        match &c.dkim_domain {
            None => p.push((
                at.key("dkim-domain"),
                "missing: the DKIM signing domain".into(),
            )),
            Some(d) => {
                if let Err(e) = DomainName::parse(d) {
                    p.push((
                        at.key("dkim-domain"),
                        format!("{d:?} is not a domain name: {e}"),
                    ));
                }
            }
        }
        match &c.dkim_selector {
            None => p.push((at.key("dkim-selector"), "missing: the DKIM selector".into())),
            Some(s) => {
                let ok = !s.is_empty()
                    && s.split('.').all(|l| {
                        !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    });
                if !ok {
                    p.push((
                        at.key("dkim-selector"),
                        format!("{s:?} is not a DKIM selector (letters, digits, '-', dots)"),
                    ));
                }
            }
        }
        if keys == 0 {
            p.push((
                at.key("dkim-key"),
                "missing: a PEM key file (dkim-key) or a certificate store entry (dkim-certificate)".into(),
            ));
        }
    }
}

impl super::LoadedConfig {
    /// The report task's settings, or `None` when `[tls-report]` is absent
    /// or not enabled; the DKIM key is read here, so a bad key stops the
    /// start with its name.
    pub fn tls_report_settings(
        &self,
        clock: SharedClock,
    ) -> Result<Option<TlsReportSettings>, super::ConfigReport> {
        let cfg = &self.config;
        let Some(c) = cfg.tls_report.as_ref().filter(|c| c.enabled) else {
            return Ok(None);
        };
        self.check_semantics()?;
        let at = KeyPath::root().key("tls-report");
        let dkim = match (
            &c.dkim_domain,
            &c.dkim_selector,
            &c.dkim_key,
            &c.dkim_certificate,
        ) {
            (Some(domain), Some(selector), Some(file), _) => Some(
                DkimSigning::from_file(domain, selector, file)
                    .map_err(|e| self.report(vec![(at.key("dkim-key"), e)]))?,
            ),
            (Some(domain), Some(selector), None, Some(entry)) => {
                let problem = |e: String| self.report(vec![(at.key("dkim-certificate"), e)]);
                let store = portcullis_certstore::Store::open_or_create(cfg.store_dir())
                    .map_err(|e| problem(format!("certificate store: {e}")))?;
                let pem = store
                    .export_pem(entry, true)
                    .map_err(|e| problem(format!("{entry:?}: {e}")))?;
                Some(
                    DkimSigning::from_pem(domain, selector, pem.as_bytes())
                        .map_err(|e| problem(format!("the key of {entry:?}: {e}")))?,
                )
            }
            _ => None,
        };
        let submitter = c.submitter(&cfg.hostname).to_owned();
        Ok(Some(TlsReportSettings {
            reporting: Reporting {
                organization_name: c.organization_name.clone(),
                contact_info: c.contact_info.clone(),
                submitter,
            },
            from: c.from(&cfg.hostname),
            dkim,
            flush_interval: Duration::from_secs(c.flush_interval_seconds),
            max_delay: Duration::from_secs(c.max_delay_seconds),
            store_dir: cfg.data_dir.join("tls-report"),
            clock,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::LoadedConfig;

    const LISTENER: &str = "[[listener]]\nname = \"in\"\naddress = \"127.0.0.1:2525\"\nrat.accept = [\"example.com\"]\n";

    fn load(dir: &std::path::Path, section: &str) -> LoadedConfig {
        let text = format!(
            "data-dir = {:?}\nhostname = \"mx.example.com\"\n{LISTENER}\n[tls-report]\n{section}",
            dir.display().to_string()
        );
        LoadedConfig::parse("c.toml", &text).unwrap()
    }

    #[test]
    fn every_bad_value_is_named_with_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let loaded = load(
            dir.path(),
            "enabled = true\norganization-name = \"\"\ncontact-info = \"x\"\nsubmitter = \"not a name\"\n\
             from = \"nobody\"\nflush-interval-seconds = 0\nmax-delay-seconds = 90000\n\
             dkim-selector = \"bad selector\"\n",
        );
        let report = loaded.validate().unwrap_err().to_string();
        for (key, words) in [
            ("tls-report.organization-name", "must not be empty"),
            ("tls-report.submitter", "not a domain name"),
            ("tls-report.from", "not a mail address"),
            ("tls-report.flush-interval-seconds", "between 1 and 86400"),
            ("tls-report.max-delay-seconds", "at most 86400"),
            ("tls-report.dkim-selector", "not a DKIM selector"),
            ("tls-report.dkim-domain", "missing"),
            ("tls-report.dkim-key", "missing"),
        ] {
            assert!(
                report.lines().any(|l| l.contains(key) && l.contains(words)),
                "no {key}: {words} in\n{report}"
            );
        }
    }

    #[test]
    fn settings_read_the_key_and_default_the_names() {
        let dir = tempfile::tempdir().unwrap();
        let clock = crate::clock::system();
        let missing = load(
            dir.path(),
            "enabled = true\norganization-name = \"Org\"\ncontact-info = \"mailto:p@example.com\"\n\
             dkim-domain = \"example.com\"\ndkim-selector = \"s1\"\ndkim-key = \"/nonexistent/dkim.pem\"\n",
        );
        let e = missing
            .tls_report_settings(clock.clone())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("tls-report.dkim-key") && e.contains("/nonexistent/dkim.pem"),
            "{e}"
        );

        let off = load(
            dir.path(),
            "organization-name = \"Org\"\ncontact-info = \"c\"\n",
        );
        assert!(off.tls_report_settings(clock.clone()).unwrap().is_none());

        let unsigned = load(
            dir.path(),
            "enabled = true\norganization-name = \"Org\"\ncontact-info = \"mailto:p@example.com\"\n",
        );
        let s = unsigned.tls_report_settings(clock).unwrap().unwrap();
        assert_eq!(s.reporting.submitter, "mx.example.com");
        assert_eq!(s.from, "tls-reports@mx.example.com");
        assert!(s.dkim.is_none());
        assert_eq!(s.store_dir, dir.path().join("tls-report"));
    }
}
