//! The `[acme]` and `[dane]` sections: which store entries the running
//! gateway keeps renewed from an ACME CA (and how to reach it), and how it
//! watches DNS during a DANE key rollover. Their checks, and the
//! [`CertificateSettings`] built from them.
//!
//! ```toml
//! [acme]
//! directory = "https://acme-v02.api.letsencrypt.org/directory"
//! contact = ["mailto:postmaster@example.com"]
//! http-listen = "0.0.0.0:80"
//! [[acme.certificate]]
//! name = "mx1"
//! domains = ["mx1.example.com"]
//!
//! [dane]
//! rollover-check-seconds = 300
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use portcullis_certstore::check_entry_name;
use serde::{Deserialize, Serialize};

use super::source::KeyPath;
use super::validate::{Problem, check_readable_file};
use crate::acme::{AcmeSettings, ChallengeKind};
use crate::cert_manager::{CertificateSettings, ManagedCertificate};

/// Automatic certificates from an ACME CA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct AcmeConfig {
    /// The CA's directory URL. Default: Let's Encrypt's production directory.
    #[serde(default = "default_directory")]
    pub directory: String,
    /// Contact addresses of the account (`mailto:…`), for the CA's notices.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contact: Vec<String>,
    /// PEM file with the CA of a private ACME server's own HTTPS
    /// certificate, trusted besides the store's CA lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_ca_file: Option<PathBuf>,
    /// Where the HTTP-01 challenge listener binds. Default `0.0.0.0:80`.
    #[serde(default = "default_http_listen")]
    pub http_listen: String,
    /// `http-01` (default) or `tls-alpn-01` (needs the HTTPS admin listener).
    #[serde(default = "default_challenge")]
    pub challenge: String,
    /// How often the certificates are looked at. Default 43200 (12 hours).
    #[serde(default = "default_check")]
    pub check_interval_seconds: u64,
    /// Wait after a failed renewal, doubling up to `retry-max-seconds`.
    /// Default 3600.
    #[serde(default = "default_retry_first")]
    pub retry_first_seconds: u64,
    /// Longest wait between failed renewals. Default 86400.
    #[serde(default = "default_retry_max")]
    pub retry_max_seconds: u64,
    /// Deadline of one HTTP exchange with the CA. Default 30.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_seconds: u64,
    /// The store entries to keep renewed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificate: Vec<AcmeCertificateConfig>,
}

/// One entry kept renewed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct AcmeCertificateConfig {
    /// The store entry (`portcullis cert acme NAME …` made it).
    pub name: String,
    /// The names on the certificate; the first is the common name.
    pub domains: Vec<String>,
}

/// DANE key rollovers in the running gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct DaneConfig {
    /// How often the next key's TLSA records are looked up during a
    /// rollover. Default 300.
    #[serde(default = "default_rollover_check")]
    pub rollover_check_seconds: u64,
    /// The port of the TLSA records (`_25._tcp.<host>`). Default 25.
    #[serde(default = "default_tlsa_port")]
    pub tlsa_port: u16,
}

impl Default for DaneConfig {
    fn default() -> Self {
        DaneConfig {
            rollover_check_seconds: default_rollover_check(),
            tlsa_port: default_tlsa_port(),
        }
    }
}

fn default_directory() -> String {
    AcmeSettings::LETS_ENCRYPT.to_owned()
}
fn default_http_listen() -> String {
    "0.0.0.0:80".to_owned()
}
fn default_challenge() -> String {
    "http-01".to_owned()
}
fn default_check() -> u64 {
    43_200
}
fn default_retry_first() -> u64 {
    3600
}
fn default_retry_max() -> u64 {
    86_400
}
fn default_request_timeout() -> u64 {
    30
}
fn default_rollover_check() -> u64 {
    300
}
fn default_tlsa_port() -> u16 {
    25
}

/// Checks both sections; with `acme` set, builds the automation settings.
pub(crate) fn check(
    acme: Option<&AcmeConfig>,
    dane: &DaneConfig,
    p: &mut Vec<Problem>,
) -> CertificateSettings {
    let root = KeyPath::root();
    let dane_at = root.key("dane");
    if dane.rollover_check_seconds == 0 {
        p.push((
            dane_at.key("rollover-check-seconds"),
            "must be at least 1".into(),
        ));
    }
    if dane.tlsa_port == 0 {
        p.push((dane_at.key("tlsa-port"), "must be a port number".into()));
    }
    let mut out = CertificateSettings::new();
    out.rollover_check = Duration::from_secs(dane.rollover_check_seconds.max(1));
    out.tlsa_port = dane.tlsa_port;
    let Some(a) = acme else {
        return out;
    };
    let at = root.key("acme");
    if !a.directory.starts_with("https://") {
        p.push((
            at.key("directory"),
            format!("{:?} is not an https:// URL", a.directory),
        ));
    }
    for (i, c) in a.contact.iter().enumerate() {
        if !c.starts_with("mailto:") {
            p.push((
                at.key("contact").index(i),
                format!("{c:?}: write contacts as mailto:address"),
            ));
        }
    }
    let mut settings = AcmeSettings::new(a.directory.clone());
    settings.contact = a.contact.clone();
    settings.request_timeout = Duration::from_secs(a.request_timeout_seconds.max(1));
    if let Some(f) = &a.server_ca_file
        && check_readable_file(f, at.key("server-ca-file"), p)
    {
        match std::fs::read(f).map_err(|e| e.to_string()).and_then(|b| {
            portcullis_certstore::pem::parse_certs(&b, &f.display().to_string())
                .map_err(|e| e.to_string())
        }) {
            Ok(certs) => settings.server_roots = certs,
            Err(e) => p.push((at.key("server-ca-file"), e)),
        }
    }
    match a.http_listen.parse::<SocketAddr>() {
        Ok(addr) => out.http_listen = Some(addr),
        Err(_) => p.push((
            at.key("http-listen"),
            format!("{:?} is not IP:port", a.http_listen),
        )),
    }
    let challenge = match a.challenge.parse::<ChallengeKind>() {
        Ok(ChallengeKind::TlsAlpn01) => {
            p.push((
                at.key("challenge"),
                "tls-alpn-01 needs the HTTPS admin listener, which this version does not have; use http-01".into(),
            ));
            ChallengeKind::Http01
        }
        Ok(c) => c,
        Err(e) => {
            p.push((at.key("challenge"), e));
            ChallengeKind::Http01
        }
    };
    for (name, key, value) in [
        ("check-interval-seconds", 0, a.check_interval_seconds),
        ("retry-first-seconds", 0, a.retry_first_seconds),
        ("retry-max-seconds", 0, a.retry_max_seconds),
    ] {
        if value == key {
            p.push((at.key(name), "must be at least 1".into()));
        }
    }
    if a.retry_max_seconds < a.retry_first_seconds {
        p.push((
            at.key("retry-max-seconds"),
            "must not be less than retry-first-seconds".into(),
        ));
    }
    out.check_interval = Duration::from_secs(a.check_interval_seconds.max(1));
    out.retry_first = Duration::from_secs(a.retry_first_seconds.max(1));
    out.retry_max = Duration::from_secs(a.retry_max_seconds.max(1));
    for (i, c) in a.certificate.iter().enumerate() {
        let cat = at.key("certificate").index(i);
        if let Err(e) = check_entry_name(&c.name) {
            p.push((cat.key("name"), e.to_string()));
        }
        if c.domains.is_empty() {
            p.push((cat.key("domains"), "list at least one name".into()));
        }
        for (j, d) in c.domains.iter().enumerate() {
            if let Err(e) = portcullis_certstore::check_fqdn("domain", d, true) {
                p.push((cat.key("domains").index(j), e.to_string()));
            }
        }
        out.managed.push(ManagedCertificate {
            entry: c.name.clone(),
            domains: c.domains.clone(),
            challenge,
        });
    }
    out.acme = Some(settings);
    out
}

#[cfg(test)]
mod tests {
    use crate::config::LoadedConfig;

    fn problems(text: &str) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "data-dir = {:?}\n[[listener]]\nname = \"in\"\naddress = \"127.0.0.1:2525\"\nrat.accept = [\"example.com\"]\n{text}",
            dir.path().display().to_string()
        );
        match LoadedConfig::parse("c.toml", &text) {
            Ok(l) => l.validate().map_or_else(
                |r| r.to_string().lines().map(str::to_owned).collect(),
                |_| Vec::new(),
            ),
            Err(r) => r.to_string().lines().map(str::to_owned).collect(),
        }
    }

    #[test]
    fn acme_and_dane_sections_are_checked_with_locations() {
        let p = problems(
            "[acme]\ndirectory = \"http://ca.example/dir\"\ncontact = [\"postmaster@example.com\"]\n\
             http-listen = \"port 80\"\nchallenge = \"dns-01\"\n\
             [[acme.certificate]]\nname = \"mx/1\"\ndomains = [\"not a name\"]\n\
             [dane]\nrollover-check-seconds = 0\n",
        );
        let want = [
            "c.toml:7:1: acme.directory: \"http://ca.example/dir\" is not an https:// URL",
            "c.toml:8:12: acme.contact[0]: \"postmaster@example.com\": write contacts as mailto:address",
            "c.toml:9:1: acme.http-listen: \"port 80\" is not IP:port",
            "c.toml:10:1: acme.challenge: unknown ACME challenge \"dns-01\"",
            "c.toml:12:1: acme.certificate[0].name: invalid certificate name",
            "c.toml:13:12: acme.certificate[0].domains[0]: domain \"not a name\"",
            "c.toml:15:1: dane.rollover-check-seconds: must be at least 1",
        ];
        for w in want {
            assert!(
                p.iter().any(|l| l.starts_with(w)),
                "no line starting {w:?} in\n{}",
                p.join("\n")
            );
        }
        let ok = problems(
            "[acme]\ncontact = [\"mailto:postmaster@example.com\"]\n[[acme.certificate]]\nname = \"mx1\"\ndomains = [\"mx1.example.com\"]\n",
        );
        assert!(ok.is_empty(), "{ok:?}");
    }
}
