//! `[mta-sts.hosting]`: the MTA-STS policies (RFC 8461) of the domains we
//! receive mail for, served over HTTPS at
//! `https://mta-sts.<domain>/.well-known/mta-sts.txt` by the running
//! gateway, and the DNS records `portcullis sts publish` prints for them.
//! Off unless configured.
//!
//! ```toml
//! [mta-sts.hosting]
//! address = "0.0.0.0:443"
//! certificate = "mta-sts"            # store entry presented without a better match
//! [[mta-sts.hosting.domain]]
//! domain = "example.com"
//! mode = "enforce"                   # enforce | testing | none
//! mx = ["mx1.example.com", "*.mx.example.com"]
//! max-age-seconds = 604800
//! certificate = "mta-sts-example"    # optional: presented for mta-sts.example.com
//! tls-report-rua = ["mailto:tlsrpt@example.com"]
//! ```
//!
//! Checking builds the very [`HostedPolicy`] values that are served and
//! published, so a policy that passes `config validate` is one our own
//! MTA-STS parser accepts.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use portcullis_certstore::check_entry_name;
use portcullis_policy::mta_sts::{MxPattern, StsMode, StsPolicy};
use portcullis_policy::{DomainName, TlsRptTxtRecord};
use rustls::sign::CertifiedKey;
use serde::{Deserialize, Serialize};

use super::source::KeyPath;
use super::validate::Problem;
use crate::sts_host::{HostedPolicy, StsHostSettings};

/// `[mta-sts.hosting]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct StsHostingConfig {
    /// `IP:port` of the HTTPS listener (443 in production; port 0 picks a
    /// free port).
    pub address: String,
    /// Certificate store entry presented when no domain's own certificate
    /// matches the name the client asks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// The hosted domains.
    #[serde(default, rename = "domain", skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<StsHostedDomainConfig>,
}

/// One `[[mta-sts.hosting.domain]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct StsHostedDomainConfig {
    /// The mail domain (the policy is served for `mta-sts.<domain>`).
    pub domain: String,
    /// `enforce`, `testing` or `none`.
    pub mode: String,
    /// MX host patterns: `mx1.example.com` or `*.example.com`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mx: Vec<String>,
    /// How long senders may cache the policy. Default 604800 (a week).
    #[serde(default = "default_max_age")]
    pub max_age_seconds: u32,
    /// Certificate store entry presented for `mta-sts.<domain>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// Where senders send TLS reports (RFC 8460): `mailto:` or `https:`
    /// URIs, published in the `_smtp._tls.<domain>` record.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tls_report_rua: Vec<String>,
}

fn default_max_age() -> u32 {
    604_800
}

fn parse_mode(mode: &str) -> Option<StsMode> {
    match mode {
        "enforce" => Some(StsMode::Enforce),
        "testing" => Some(StsMode::Testing),
        "none" => Some(StsMode::None),
        _ => None,
    }
}

/// Checks `[mta-sts.hosting]`; returns the policies to serve (those that
/// passed).
pub(crate) fn check(config: &super::Config, p: &mut Vec<Problem>) -> Vec<HostedPolicy> {
    let Some(hosting) = &config.mta_sts.hosting else {
        return Vec::new();
    };
    let at = KeyPath::root().key("mta-sts").key("hosting");
    match hosting.address.parse::<SocketAddr>() {
        Err(_) => p.push((
            at.key("address"),
            format!(
                "{:?} is not an IP address and port (write 0.0.0.0:443, or port 0 for a free port)",
                hosting.address
            ),
        )),
        Ok(address) if address.port() != 0 => {
            let taken = config
                .admin
                .iter()
                .map(|a| ("the admin listener", a.address.as_str()))
                .chain(
                    config
                        .listener
                        .iter()
                        .map(|l| ("an SMTP listener", l.address.as_str())),
                )
                .find(|(_, other)| other.parse::<SocketAddr>().ok() == Some(address));
            if let Some((what, _)) = taken {
                p.push((
                    at.key("address"),
                    format!("{address} is already the address of {what}; give the policy host its own (usually port 443)"),
                ));
            }
        }
        Ok(_) => {}
    }
    if let Some(c) = &hosting.certificate
        && let Err(e) = check_entry_name(c)
    {
        p.push((at.key("certificate"), e.to_string()));
    }
    if hosting.domains.is_empty() {
        p.push((
            at.clone(),
            "no domain to serve a policy for; add a [[mta-sts.hosting.domain]] with domain, mode and mx".into(),
        ));
    }
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = Vec::new();
    for (i, d) in hosting.domains.iter().enumerate() {
        let here = at.key("domain").index(i);
        if let Ok(name) = DomainName::parse(&d.domain)
            && let Some(first) = seen.insert(name.as_str().to_owned(), i)
        {
            p.push((
                here.key("domain"),
                format!(
                    "{} already has a policy in mta-sts.hosting.domain[{first}]",
                    name.as_str()
                ),
            ));
            continue;
        }
        if let Some(policy) = check_domain(d, hosting.certificate.is_some(), &here, p) {
            out.push(policy);
        }
    }
    out
}

fn check_domain(
    d: &StsHostedDomainConfig,
    default_certificate: bool,
    at: &KeyPath,
    p: &mut Vec<Problem>,
) -> Option<HostedPolicy> {
    let before = p.len();
    let domain = DomainName::parse(&d.domain)
        .map_err(|e| p.push((at.key("domain"), e.to_string())))
        .ok();
    let mode = parse_mode(&d.mode);
    if mode.is_none() {
        p.push((
            at.key("mode"),
            format!("{:?} is not a mode; write enforce, testing or none", d.mode),
        ));
    }
    let mut mx = Vec::new();
    for (j, pattern) in d.mx.iter().enumerate() {
        match MxPattern::parse(pattern) {
            Ok(m) => mx.push(m),
            Err(e) => p.push((at.key("mx").index(j), e.to_string())),
        }
    }
    match &d.certificate {
        Some(c) => {
            if let Err(e) = check_entry_name(c) {
                p.push((at.key("certificate"), e.to_string()));
            }
        }
        None if !default_certificate => p.push((
            at.key("certificate"),
            "no certificate for this domain's policy host; name a store entry here or in [mta-sts.hosting] certificate".into(),
        )),
        None => {}
    }
    let mut rua_ok = true;
    if !d.tls_report_rua.is_empty() {
        let record = tlsrpt_record_text(&d.tls_report_rua);
        if let Err(e) = TlsRptTxtRecord::parse(record.as_bytes()) {
            rua_ok = false;
            p.push((at.key("tls-report-rua"), e.to_string()));
        }
    }
    let policy = match mode.map(|m| StsPolicy::new(m, d.max_age_seconds, mx)) {
        Some(Ok(policy)) => Some(policy),
        Some(Err(e)) => {
            let key = match e {
                portcullis_policy::MtaStsPolicyError::NoMx(_) => "mx",
                _ => "max-age-seconds",
            };
            p.push((at.key(key), e.to_string()));
            None
        }
        None => None,
    };
    if p.len() != before || !rua_ok {
        return None;
    }
    Some(HostedPolicy {
        domain: domain?,
        policy: policy?,
        tls_report_rua: d.tls_report_rua.clone(),
    })
}

/// `v=TLSRPTv1; rua=…` for these report addresses.
pub(crate) fn tlsrpt_record_text(rua: &[String]) -> String {
    format!("v=TLSRPTv1; rua={}", rua.join(","))
}

/// The store entries `[mta-sts.hosting]` names, with their key paths (for
/// the certificate store check).
pub(crate) fn named_certificates(hosting: Option<&StsHostingConfig>) -> Vec<(KeyPath, &str)> {
    let Some(hosting) = hosting else {
        return Vec::new();
    };
    let at = KeyPath::root().key("mta-sts").key("hosting");
    let mut named = Vec::new();
    if let Some(c) = &hosting.certificate {
        named.push((at.key("certificate"), c.as_str()));
    }
    for (i, d) in hosting.domains.iter().enumerate() {
        if let Some(c) = &d.certificate {
            named.push((at.key("domain").index(i).key("certificate"), c.as_str()));
        }
    }
    named
}

impl super::LoadedConfig {
    /// The hosted policies, after every semantic check of the file passed
    /// (empty when `[mta-sts.hosting]` is absent). Reads no file: this is
    /// what `portcullis sts publish` prints records for.
    pub fn hosted_policies(&self) -> Result<Vec<HostedPolicy>, super::ConfigReport> {
        self.check_semantics()?;
        let mut problems = Vec::new();
        let policies = check(&self.config, &mut problems);
        if problems.is_empty() {
            Ok(policies)
        } else {
            Err(self.report(problems))
        }
    }

    /// The policy host's settings, or `None` when `[mta-sts.hosting]` is
    /// absent: the policies, and the certificates loaded from the store
    /// with the `[tls.admin]` versions and cipher suites (the admin
    /// listener's: both are HTTPS services of the gateway).
    pub fn sts_host_settings(&self) -> Result<Option<StsHostSettings>, super::ConfigReport> {
        let c = &self.config;
        let Some(hosting) = &c.mta_sts.hosting else {
            return Ok(None);
        };
        let policies = self.hosted_policies()?;
        let at = KeyPath::root().key("mta-sts").key("hosting");
        let address = hosting.address.parse::<SocketAddr>().map_err(|_| {
            self.report(vec![(
                at.key("address"),
                format!("{:?} is not an IP address and port", hosting.address),
            )])
        })?;
        let store = portcullis_certstore::Store::open_or_create(c.store_dir()).map_err(|e| {
            self.report(vec![(
                KeyPath::root().key("data-dir"),
                format!("certificate store: {e}"),
            )])
        })?;
        let tls = super::validate::tls_settings(&c.tls.admin.versions, &c.tls.admin.cipher_suites);
        let load = |at: KeyPath, name: &str| -> Result<Arc<CertifiedKey>, super::ConfigReport> {
            store
                .client_certificate(name, &tls)
                .map_err(|e| self.report(vec![(at, e.to_string())]))
        };
        let default = match &hosting.certificate {
            Some(name) => Some((name.clone(), load(at.key("certificate"), name)?)),
            None => None,
        };
        let mut by_host = Vec::new();
        for (i, d) in hosting.domains.iter().enumerate() {
            if let Some(name) = &d.certificate
                && let Ok(domain) = DomainName::parse(&d.domain)
            {
                let key = load(at.key("domain").index(i).key("certificate"), name)?;
                by_host.push((format!("mta-sts.{}", domain.as_str()), name.clone(), key));
            }
        }
        let tls_at = KeyPath::root().key("tls").key("admin");
        let provider = tls
            .provider()
            .map_err(|e| self.report(vec![(tls_at.clone(), e.to_string())]))?;
        let versions = tls
            .protocol_versions()
            .map_err(|e| self.report(vec![(tls_at, e.to_string())]))?;
        Ok(Some(StsHostSettings {
            address,
            policies,
            default_certificate: default,
            certificates: by_host,
            provider,
            versions,
        }))
    }
}
