//! The gateway's configuration file: one TOML file for everything (SPEC §6).
//!
//! * [`schema`]: the structs, in kebab-case TOML, reusing `policy`'s HAT, RAT
//!   and outbound types and `certstore`'s TLS versions; unknown keys are
//!   errors.
//! * Loading ([`LoadedConfig::load`]) is all-or-nothing and reports every
//!   problem with its line, column and key path ([`ConfigReport`]): TOML
//!   syntax, wrong types and unknown keys first, then the semantic checks
//!   (addresses, names, patterns, open relay, contradictory destination
//!   entries, certificates missing from the store).
//! * [`Config::builtin_default`]: what runs without a file.
//! * [`LoadedConfig::to_engine_settings`]: the validated
//!   [`EngineSettings`](crate::settings::EngineSettings), with the certificate
//!   store opened (created on first start), the demonstration certificate
//!   generated if a listener needs it, and the rustls configurations built.
//!
//! ```
//! use portcullis_mta::config::LoadedConfig;
//!
//! let text = r#"
//! hostname = "mx.example.com"
//!
//! [[listener]]
//! name = "inbound"
//! address = "0.0.0.0:25"
//! rat.accept = ["ALL"]
//! "#;
//! let loaded = LoadedConfig::parse("portcullis.toml", text).unwrap();
//! let report = loaded.validate().unwrap_err();
//! assert_eq!(
//!     report.to_string(),
//!     "portcullis.toml:7:5: listener[0].rat.accept: ALL on a public listener makes an open relay; \
//!      list your domains, or set allow-open-relay = true if you really mean it"
//! );
//! ```

mod acme;
mod admin;
mod alerts;
mod cluster;
mod default;
mod dns;
mod engine_settings;
pub(crate) mod health;
mod load;
pub mod origin;
mod report;
pub mod schema;
pub mod secrets;
mod source;
mod sts_hosting;
mod tls_report;
mod tls_report_inbox;
mod validate;
#[cfg(test)]
mod validate_tests;

use std::path::PathBuf;

use portcullis_certstore::Store;

pub use alerts::{AlertRecipientConfig, AlertsConfig};
pub use cluster::{ClusterConfig, DatabaseTls};
pub use default::{DEFAULT_LISTEN, DEFAULT_LISTENER};
pub use health::{HealthConfig, MarksConfig};
pub use load::{BUILTIN, LoadedConfig};
pub use origin::ConfigOrigin;
pub use report::{ConfigIssue, ConfigReport};
pub use schema::{Config, ResolverEntry};
pub(crate) use sts_hosting::tlsrpt_record_text;
pub use sts_hosting::{StsHostedDomainConfig, StsHostingConfig};
pub use tls_report::TlsReportConfig;
pub use tls_report_inbox::TlsReportInboxConfig;

impl Config {
    /// The certificate store directory: `<data-dir>/certs`.
    pub fn store_dir(&self) -> PathBuf {
        self.data_dir.join("certs")
    }

    /// The spool directory: `<data-dir>/spool`.
    pub fn spool_dir(&self) -> PathBuf {
        self.data_dir.join("spool")
    }

    /// The MTA-STS policy cache: `<data-dir>/mta-sts`.
    pub fn mta_sts_dir(&self) -> PathBuf {
        self.data_dir.join("mta-sts")
    }

    /// Validates a configuration that has no source text (built in code);
    /// problems have key paths but no positions.
    pub fn to_engine_settings(&self) -> Result<crate::settings::EngineSettings, ConfigReport> {
        LoadedConfig {
            source_name: BUILTIN.to_owned(),
            text: String::new(),
            config: self.clone(),
        }
        .to_engine_settings()
    }
}

impl LoadedConfig {
    /// The semantic checks that read no file (addresses, names, patterns,
    /// open relay, contradictory entries); [`LoadedConfig::validate`] adds
    /// the certificate store. Syntax and types were checked by `parse`.
    pub fn check_semantics(&self) -> Result<(), ConfigReport> {
        validate::check(&self.config)
            .map(|_| ())
            .map_err(|p| self.report(p))
    }

    /// Every semantic check, without changing anything on disk: the
    /// certificate store is only read (if it exists yet). This is what
    /// `portcullis config validate` runs.
    pub fn validate(&self) -> Result<(), ConfigReport> {
        let mut problems = match validate::check(&self.config) {
            Ok(_) => Vec::new(),
            Err(p) => p,
        };
        let dir = self.config.store_dir();
        let store = if dir.exists() {
            match Store::open(&dir) {
                Ok(s) => Some(s),
                Err(e) => {
                    problems.push((
                        source::KeyPath::root().key("data-dir"),
                        format!("certificate store: {e}"),
                    ));
                    None
                }
            }
        } else {
            None
        };
        problems.extend(validate::check_certificates(
            &self.config,
            store.as_ref(),
            &dir,
        ));
        if problems.is_empty() {
            Ok(())
        } else {
            Err(self.report(problems))
        }
    }
}
