//! The `[admin]` section: the HTTPS admin listener (API, status page,
//! `/metrics`), its certificate, and API tokens given in the file. Off
//! unless configured; the built-in default enables it on loopback with a
//! free port (written to `<data-dir>/admin/endpoint.json` for
//! `portcullis ctl`).
//!
//! ```toml
//! [admin]
//! address = "127.0.0.1:8443"
//! certificate = "admin"          # store entry; default: the demonstration certificate
//! [[admin.token]]
//! name = "monitoring"
//! role = "read"                  # or "admin"
//! token = "…at least 32 random characters…"
//! ```
//!
//! Tokens made with `portcullis ctl token create` are kept hashed in the
//! data directory instead; a token in the file is a secret (`config export`
//! masks or encrypts it).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use portcullis_certstore::check_entry_name;
use serde::{Deserialize, Serialize};

use super::source::KeyPath;
use super::validate::Problem;

/// `[admin]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct AdminConfig {
    /// `IP:port` of the HTTPS listener. Port 0 picks a free port.
    pub address: String,
    /// Certificate store entry presented; default the demonstration
    /// certificate (generated on first start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// API tokens given in the file.
    #[serde(default, rename = "token", skip_serializing_if = "Vec::is_empty")]
    pub tokens: Vec<AdminTokenConfig>,
}

impl AdminConfig {
    /// The built-in default: loopback, a free port.
    pub fn loopback() -> Self {
        AdminConfig {
            address: "127.0.0.1:0".to_owned(),
            certificate: None,
            tokens: Vec::new(),
        }
    }
}

/// One `[[admin.token]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct AdminTokenConfig {
    /// A name for the log and `ctl token list`.
    pub name: String,
    /// What the token may do.
    pub role: Role,
    /// The token itself (a secret).
    pub token: String,
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Status, metrics, listings.
    Read,
    /// Everything: suspend, resume, reload, queue changes, configuration.
    Admin,
}

impl Role {
    /// `read` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Admin => "admin",
        }
    }
}

/// The shortest token accepted in the file.
pub const MIN_TOKEN_LEN: usize = 32;

/// Checks `[admin]`.
pub(crate) fn check(admin: Option<&AdminConfig>, p: &mut Vec<Problem>) {
    let Some(admin) = admin else {
        return;
    };
    let at = KeyPath::root().key("admin");
    if admin.address.parse::<SocketAddr>().is_err() {
        p.push((
                at.key("address"),
                format!(
                    "{:?} is not an IP address and port (write 127.0.0.1:8443, or port 0 for a free port)",
                    admin.address
                ),
            ));
    }
    if let Some(c) = &admin.certificate
        && let Err(e) = check_entry_name(c)
    {
        p.push((at.key("certificate"), e.to_string()));
    }
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, t) in admin.tokens.iter().enumerate() {
        let here = at.key("token").index(i);
        if t.name.trim().is_empty() {
            p.push((here.key("name"), "must not be empty".into()));
        } else if let Some(first) = names.insert(t.name.as_str(), i) {
            p.push((
                here.key("name"),
                format!("{:?} is already the name of admin.token[{first}]", t.name),
            ));
        }
        if t.token.chars().count() < MIN_TOKEN_LEN || t.token.chars().any(char::is_whitespace) {
            p.push((
                here.key("token"),
                format!(
                    "a token must be at least {MIN_TOKEN_LEN} characters without spaces (for example the output of `openssl rand -base64 32`)"
                ),
            ));
        }
    }
}

impl super::LoadedConfig {
    /// The admin listener's settings, or `None` when `[admin]` is absent:
    /// the certificate loaded from the store (the demonstration one,
    /// generated if needed, when none is named) with the `[tls.admin]`
    /// versions and cipher suites, and the file's tokens hashed.
    pub fn admin_settings(
        &self,
    ) -> Result<Option<crate::admin::AdminSettings>, super::ConfigReport> {
        let c = &self.config;
        let Some(admin) = &c.admin else {
            return Ok(None);
        };
        let at = KeyPath::root().key("admin");
        let address = admin.address.parse::<SocketAddr>().map_err(|_| {
            self.report(vec![(
                at.key("address"),
                format!("{:?} is not an IP address and port", admin.address),
            )])
        })?;
        let store = portcullis_certstore::Store::open_or_create(c.store_dir()).map_err(|e| {
            self.report(vec![(
                KeyPath::root().key("data-dir"),
                format!("certificate store: {e}"),
            )])
        })?;
        let settings =
            super::validate::tls_settings(&c.tls.admin.versions, &c.tls.admin.cipher_suites);
        let name = admin
            .certificate
            .clone()
            .unwrap_or_else(|| portcullis_certstore::DEMO_ENTRY.to_owned());
        let fail = |e: String| self.report(vec![(at.key("certificate"), e)]);
        if name == portcullis_certstore::DEMO_ENTRY {
            store
                .demo_certificate(&c.hostname)
                .map_err(|e| fail(e.to_string()))?;
        }
        let certificate = store
            .client_certificate(&name, &settings)
            .map_err(|e| fail(e.to_string()))?;
        let tls_at = KeyPath::root().key("tls").key("admin");
        let provider = settings
            .provider()
            .map_err(|e| self.report(vec![(tls_at.clone(), e.to_string())]))?;
        let versions = settings
            .protocol_versions()
            .map_err(|e| self.report(vec![(tls_at, e.to_string())]))?;
        Ok(Some(crate::admin::AdminSettings {
            address,
            certificate_name: name,
            certificate,
            provider,
            versions,
            tokens: admin
                .tokens
                .iter()
                .map(|t| crate::admin::tokens::ConfigToken::new(&t.name, t.role, &t.token))
                .collect(),
        }))
    }
}
