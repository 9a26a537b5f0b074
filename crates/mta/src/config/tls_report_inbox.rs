//! `[tls-report-inbox]`: where the gateway takes in the TLS reports (RFC
//! 8460) other organisations send about our domains — mail to the listed
//! addresses arriving on any listener (kept in the report store under the
//! data directory, not relayed), and `POST /tlsrpt` on the admin listener.
//! Off unless configured.
//!
//! ```toml
//! [tls-report-inbox]
//! address = ["tlsrpt@example.com"]   # the mailto: of our _smtp._tls record
//! https = true                       # accept POST /tlsrpt on the admin listener
//! max-report-bytes = 5242880         # as received (gzip or JSON)
//! max-json-bytes = 52428800          # after decompression
//! ```

use portcullis_policy::ReportLimits;
use serde::{Deserialize, Serialize};

use super::source::KeyPath;
use super::validate::Problem;
use crate::tlsrpt_inbox::InboxSettings;

/// `[tls-report-inbox]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TlsReportInboxConfig {
    /// Mail to these addresses is taken as TLS reports, not relayed.
    #[serde(default)]
    pub address: Vec<String>,
    /// Accept reports posted to `/tlsrpt` on the admin listener (RFC 8460
    /// §5.4 `https:` reporting URIs). Default true.
    #[serde(default = "yes")]
    pub https: bool,
    /// Most bytes of one report as received. Default 5 MiB.
    #[serde(default = "default_max_report")]
    pub max_report_bytes: u64,
    /// Most bytes of one report's JSON after decompression. Default 50 MiB.
    #[serde(default = "default_max_json")]
    pub max_json_bytes: u64,
}

fn yes() -> bool {
    true
}

fn default_max_report() -> u64 {
    ReportLimits::default().max_received_bytes
}

fn default_max_json() -> u64 {
    ReportLimits::default().max_json_bytes
}

/// Checks `[tls-report-inbox]`.
pub(crate) fn check(config: &super::Config, p: &mut Vec<Problem>) {
    let Some(inbox) = &config.tls_report_inbox else {
        return;
    };
    let at = KeyPath::root().key("tls-report-inbox");
    if inbox.address.is_empty() && !inbox.https {
        p.push((
            at.key("address"),
            "no address and https = false: the inbox would receive nothing; list the address of your _smtp._tls record's mailto: URI".to_owned(),
        ));
    }
    for (i, a) in inbox.address.iter().enumerate() {
        let ok = a.rsplit_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && portcullis_policy::DomainName::parse(domain).is_ok()
        });
        if !ok {
            p.push((
                at.key("address").index(i),
                format!("{a:?} is not a mail address (write tlsrpt@example.com)"),
            ));
        }
    }
    if inbox.max_report_bytes == 0 || inbox.max_json_bytes == 0 {
        p.push((
            at.clone(),
            "max-report-bytes and max-json-bytes must be above 0".to_owned(),
        ));
    }
}

impl TlsReportInboxConfig {
    /// The settings the running inbox uses.
    pub fn settings(&self) -> InboxSettings {
        InboxSettings {
            addresses: self
                .address
                .iter()
                .map(|a| a.to_ascii_lowercase())
                .collect(),
            https: self.https,
            limits: ReportLimits {
                max_received_bytes: self.max_report_bytes,
                max_json_bytes: self.max_json_bytes,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::LoadedConfig;

    fn load(section: &str) -> Result<LoadedConfig, String> {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "data-dir = {:?}\n[[listener]]\nname = \"in\"\naddress = \"127.0.0.1:2525\"\nrat.accept = [\"example.com\"]\n{section}",
            dir.path().display().to_string()
        );
        let loaded = LoadedConfig::parse("c.toml", &text).map_err(|r| r.to_string())?;
        loaded.validate().map_err(|r| r.to_string())?;
        Ok(loaded)
    }

    #[test]
    fn defaults_and_lower_cased_addresses() {
        let loaded = load("[tls-report-inbox]\naddress = [\"TLSRPT@Example.com\"]\n").unwrap();
        let settings = loaded.config.tls_report_inbox.as_ref().unwrap().settings();
        assert_eq!(settings.addresses, ["tlsrpt@example.com"]);
        assert!(settings.https);
        assert_eq!(settings.limits, portcullis_policy::ReportLimits::default());
    }

    #[test]
    fn bad_addresses_and_an_inbox_that_receives_nothing_are_named() {
        let err = load("[tls-report-inbox]\naddress = [\"not-an-address\", \"a@\"]\n").unwrap_err();
        assert!(err.contains("tls-report-inbox.address[0]"), "{err}");
        assert!(err.contains("tls-report-inbox.address[1]"), "{err}");
        let err = load("[tls-report-inbox]\nhttps = false\n").unwrap_err();
        assert!(err.contains("the inbox would receive nothing"), "{err}");
        let err = load("[tls-report-inbox]\naddress = [\"a@b.example\"]\nmax-json-bytes = 0\n")
            .unwrap_err();
        assert!(err.contains("must be above 0"), "{err}");
        let err = load("[tls-report-inbox]\nadress = [\"a@b.example\"]\n").unwrap_err();
        assert!(err.contains("adress"), "{err}");
    }
}
