//! The one control interface of a running gateway: what the admin API, the
//! status page, `portcullis ctl` and SIGHUP ask for goes through
//! [`Control`]. It holds the engine, where the configuration came from
//! ([`ConfigOrigin`]) and the configuration in force, and it owns the steps
//! that touch the configuration file:
//!
//! - **reload**: read the file again, check everything, then apply it to
//!   the engine all or nothing; when anything is wrong, the running
//!   configuration stays and every problem is returned and logged as
//!   `FILE:LINE:COL: key: message`;
//! - **import**: the same from text the operator sends (a whole file, or one
//!   section of it); applied like a reload, then written to the
//!   configuration file atomically (the previous file is kept as
//!   `FILE.previous`), so a restart keeps it;
//! - **reset**: one section back to the built-in default, the same way;
//! - **export**: the configuration in force, secrets masked or in clear.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::cert::AdminCertResolver;
use super::tokens::TokenStore;
use crate::config::origin::{replace_section, reset_section};
use crate::config::secrets::{SecretHandling, export};
use crate::config::{ConfigOrigin, ConfigReport, LoadedConfig};
use crate::durable::write_atomically;
use crate::engine::Engine;
use crate::operate::ReloadSummary;

/// Why a reload or import did not happen; the running configuration is
/// unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadFailure {
    /// One line.
    pub error: String,
    /// Every problem, `FILE:LINE:COL: key: message`.
    pub problems: Vec<String>,
}

impl ReloadFailure {
    fn plain(error: impl Into<String>) -> Self {
        ReloadFailure {
            error: error.into(),
            problems: Vec::new(),
        }
    }

    fn report(what: &str, r: &ConfigReport) -> Self {
        ReloadFailure {
            error: format!("{} has {} problem(s); {what}", r.source, r.issues.len()),
            problems: r.to_string().lines().map(str::to_owned).collect(),
        }
    }
}

impl std::fmt::Display for ReloadFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for p in &self.problems {
            writeln!(f, "{p}")?;
        }
        f.write_str(&self.error)
    }
}

/// The running gateway, as operators act on it.
#[derive(Debug)]
pub struct Control {
    engine: Engine,
    origin: ConfigOrigin,
    running: tokio::sync::Mutex<LoadedConfig>,
    tokens: TokenStore,
    cert: Option<Arc<AdminCertResolver>>,
    /// The admin address in force (a change needs a restart).
    admin_address: Option<std::net::SocketAddr>,
    /// The MTA-STS policy host, when one runs.
    sts_host: std::sync::OnceLock<crate::sts_host::StsHostHandle>,
    /// The cluster whose shared configuration imports go to, if any.
    cluster: std::sync::OnceLock<crate::cluster::Cluster>,
}

impl Control {
    /// Around a started engine and the configuration it was started with.
    pub fn new(
        engine: Engine,
        origin: ConfigOrigin,
        running: LoadedConfig,
        tokens: TokenStore,
        cert: Option<Arc<AdminCertResolver>>,
        admin_address: Option<std::net::SocketAddr>,
    ) -> Self {
        Control {
            engine,
            origin,
            running: tokio::sync::Mutex::new(running),
            tokens,
            cert,
            admin_address,
            sts_host: std::sync::OnceLock::new(),
            cluster: std::sync::OnceLock::new(),
        }
    }

    /// Makes imports and resets change the cluster's shared configuration
    /// (every node applies it) instead of this node's file.
    pub fn attach_cluster(&self, cluster: crate::cluster::Cluster) {
        let _ = self.cluster.set(cluster);
    }

    /// Lets reloads replace what the running MTA-STS policy host serves.
    pub fn attach_sts_host(&self, handle: crate::sts_host::StsHostHandle) {
        let _ = self.sts_host.set(handle);
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The API tokens.
    pub fn tokens(&self) -> &TokenStore {
        &self.tokens
    }

    /// The admin listener's certificate resolver (where an ACME client
    /// mounts its TLS-ALPN-01 challenges), when there is a listener.
    pub fn certificates(&self) -> Option<&Arc<AdminCertResolver>> {
        self.cert.as_ref()
    }

    /// The grace delay of the configuration in force.
    pub async fn grace(&self) -> Duration {
        Duration::from_secs(self.running.lock().await.config.shutdown_grace_seconds)
    }

    /// The configuration in force.
    pub async fn running(&self) -> LoadedConfig {
        self.running.lock().await.clone()
    }

    /// The most recent alerts for the status page and `/api/status`.
    ///
    /// The recent alerts, newest first, as the alert service keeps them in
    /// the data directory (empty without `[alerts]`).
    pub fn recent_alerts(&self) -> Vec<serde_json::Value> {
        let dir = crate::alerts::alerts_dir(&self.engine.inner.data_dir);
        crate::alerts::recent::read(&dir.join(crate::alerts::recent::RECENT_FILE))
            .unwrap_or_default()
            .iter()
            .rev()
            .filter_map(|n| serde_json::to_value(n).ok())
            .collect()
    }

    /// Reads the configuration file again and applies it (SIGHUP, `ctl
    /// reload`).
    pub async fn reload(&self) -> Result<ReloadSummary, ReloadFailure> {
        let mut running = self.running.lock().await;
        let loaded = self.origin.load().map_err(|r| {
            self.failed(ReloadFailure::report(
                "the running configuration stays in force",
                &r,
            ))
        })?;
        self.apply(&mut running, loaded, None).await
    }

    /// Applies `text` (a whole configuration, or with `section` one section
    /// of it), then writes it to the configuration file.
    pub async fn import(
        &self,
        name: &str,
        text: &str,
        section: Option<&str>,
    ) -> Result<ReloadSummary, ReloadFailure> {
        let mut running = self.running.lock().await;
        let file = self.file()?;
        if let Some(cluster) = self.cluster.get() {
            let current = self.shared_document(&running)?;
            let document = match section {
                None => text.to_owned(),
                Some(s) => {
                    replace_section(&current, name, text, s).map_err(ReloadFailure::plain)?
                }
            };
            return self
                .publish_shared(cluster, &mut running, name, document, &file)
                .await;
        }
        let whole = match section {
            None => text.to_owned(),
            Some(s) => {
                let current = std::fs::read_to_string(&file).map_err(|e| {
                    ReloadFailure::plain(format!("cannot read {}: {e}", file.display()))
                })?;
                replace_section(&current, name, text, s).map_err(ReloadFailure::plain)?
            }
        };
        self.apply_text(&mut running, name, whole, &file).await
    }

    /// Returns `section` to the built-in default and writes the file.
    pub async fn reset(&self, section: &str) -> Result<ReloadSummary, ReloadFailure> {
        let mut running = self.running.lock().await;
        let file = self.file()?;
        if let Some(cluster) = self.cluster.get() {
            let current = self.shared_document(&running)?;
            let document = reset_section(&current, section).map_err(ReloadFailure::plain)?;
            let name = format!("the built-in default's [{section}]");
            return self
                .publish_shared(cluster, &mut running, &name, document, &file)
                .await;
        }
        let current = std::fs::read_to_string(&file)
            .map_err(|e| ReloadFailure::plain(format!("cannot read {}: {e}", file.display())))?;
        let whole = reset_section(&current, section).map_err(ReloadFailure::plain)?;
        let name = file.display().to_string();
        self.apply_text(&mut running, &name, whole, &file).await
    }

    /// The configuration in force as TOML.
    pub async fn export(&self, handling: SecretHandling) -> Result<String, String> {
        export(&*self.running.lock().await, handling)
    }

    fn file(&self) -> Result<PathBuf, ReloadFailure> {
        self.origin.file.clone().ok_or_else(|| {
            ReloadFailure::plain(
                "the gateway runs the built-in default (no --config FILE): there is no file to import into; start it with --config",
            )
        })
    }

    /// The shared configuration this node runs (its copy).
    fn shared_document(&self, running: &LoadedConfig) -> Result<String, ReloadFailure> {
        let copy = crate::cluster::shared_config::read_copy(&running.config.data_dir)
            .map_err(ReloadFailure::plain)?;
        Ok(copy.map(|c| c.document).unwrap_or_default())
    }

    /// Checks `document` as this node would run it (under its own file),
    /// stores it as the cluster's next configuration version, and applies
    /// it here; the other nodes apply it at their next poll.
    async fn publish_shared(
        &self,
        cluster: &crate::cluster::Cluster,
        running: &mut LoadedConfig,
        name: &str,
        document: String,
        file: &Path,
    ) -> Result<ReloadSummary, ReloadFailure> {
        use crate::cluster::shared_config::{merge, publish, shareable, write_copy};
        let document = shareable(&document).map_err(ReloadFailure::plain)?;
        let local = std::fs::read_to_string(file)
            .map_err(|e| ReloadFailure::plain(format!("cannot read {}: {e}", file.display())))?;
        let merged = merge(&document, &local).map_err(ReloadFailure::plain)?;
        let mut loaded = self.origin.parse(name, &merged).map_err(|r| {
            self.failed(ReloadFailure::report(
                "nothing was imported; the running configuration stays in force",
                &r,
            ))
        })?;
        let shared = publish(cluster, &document, cluster.node())
            .await
            .map_err(|e| {
                self.logged(ReloadFailure::plain(format!(
                    "{e}; nothing was imported and the cluster configuration is unchanged"
                )))
            })?;
        if let Err(e) = write_copy(&running.config.data_dir, &shared) {
            self.engine.mail_log().warn(format_args!("cluster: {e}"));
        }
        self.engine.mail_log().line(format_args!(
            "cluster: configuration version {} stored from {name}; every node applies it at its next poll",
            shared.version
        ));
        loaded.source_name = format!(
            "{} over the cluster configuration version {}",
            file.display(),
            shared.version
        );
        self.apply(running, loaded, Some(name)).await
    }

    async fn apply_text(
        &self,
        running: &mut LoadedConfig,
        name: &str,
        text: String,
        file: &Path,
    ) -> Result<ReloadSummary, ReloadFailure> {
        let loaded = self.origin.parse(name, &text).map_err(|r| {
            self.failed(ReloadFailure::report(
                "nothing was imported; the running configuration stays in force",
                &r,
            ))
        })?;
        // Written first so that a reload that succeeds is never lost at
        // the next start; put back if the engine refuses it.
        let previous = std::fs::read(file).ok();
        if let Some(old) = &previous {
            let keep = backup_path(file);
            let _ = write_atomically(&keep, old, 0o600);
        }
        write_atomically(file, text.as_bytes(), 0o600)
            .map_err(|e| ReloadFailure::plain(format!("cannot write {}: {e}", file.display())))?;
        let mut loaded = loaded;
        loaded.source_name = file.display().to_string();
        match self.apply(running, loaded, Some(name)).await {
            Ok(s) => Ok(s),
            Err(e) => {
                if let Some(old) = previous {
                    let _ = write_atomically(file, &old, 0o600);
                }
                Err(e)
            }
        }
    }

    async fn apply(
        &self,
        running: &mut LoadedConfig,
        loaded: LoadedConfig,
        imported: Option<&str>,
    ) -> Result<ReloadSummary, ReloadFailure> {
        let what = "the running configuration stays in force";
        let settings = loaded
            .to_engine_settings()
            .map_err(|r| self.failed(ReloadFailure::report(what, &r)))?;
        let admin = loaded
            .admin_settings()
            .map_err(|r| self.failed(ReloadFailure::report(what, &r)))?;
        let sts = loaded
            .sts_host_settings()
            .map_err(|r| self.failed(ReloadFailure::report(what, &r)))?;
        let grace = Duration::from_secs(loaded.config.shutdown_grace_seconds);
        let mut summary = self
            .engine
            .reload(settings, grace)
            .await
            .map_err(|e| self.logged(ReloadFailure::plain(format!("{e}; {what}"))))?;
        match admin {
            Some(a) => {
                if let Some(cert) = &self.cert {
                    cert.replace(a.certificate.clone());
                }
                self.tokens.set_config_tokens(a.tokens);
                if Some(a.address) != self.admin_address && a.address.port() != 0 {
                    summary.restart_needed.push("admin.address".into());
                }
                if let Ok(mut e) = super::endpoint::Endpoint::load(&running.config.data_dir)
                    && let Some(leaf) = a.certificate.cert.first()
                {
                    e.certificate_sha256 = super::endpoint::fingerprint(leaf);
                    let _ = e.save(&running.config.data_dir);
                }
            }
            None if self.admin_address.is_some() => {
                summary.restart_needed.push("[admin] removed".into());
            }
            None => {}
        }
        self.reload_sts_host(running, &loaded, sts, &mut summary);
        match crate::tlsrpt_inbox::open_configured(&loaded.config) {
            Ok(inbox) => self.engine.attach_report_inbox(inbox),
            Err(e) => self.engine.mail_log().warn(format_args!(
                "{e}; the TLS report inbox keeps its previous settings"
            )),
        }
        // The alert service keeps the settings it started with.
        if loaded.config.alerts != running.config.alerts {
            summary.restart_needed.push("[alerts]".into());
        }
        if let Some(name) = imported {
            self.engine.mail_log().line(format_args!(
                "operator: configuration imported from {name} and written to {}",
                loaded.source_name
            ));
        }
        *running = loaded;
        Ok(summary)
    }

    /// The policy host serves the reloaded policies and certificates (the
    /// store's current ones: a renewed certificate too); starting, stopping
    /// or moving it needs a restart.
    fn reload_sts_host(
        &self,
        running: &LoadedConfig,
        loaded: &LoadedConfig,
        sts: Option<crate::sts_host::StsHostSettings>,
        summary: &mut ReloadSummary,
    ) {
        let log = self.engine.mail_log();
        let changed = running.config.mta_sts.hosting != loaded.config.mta_sts.hosting;
        match (self.sts_host.get(), sts) {
            (Some(host), Some(s)) if host.address() == s.address => {
                host.replace(&s);
                if changed {
                    let domains: Vec<String> = s
                        .policies
                        .iter()
                        .map(|p| format!("{} ({})", p.domain.as_str(), p.policy.mode().as_str()))
                        .collect();
                    log.line(format_args!(
                        "reload: the MTA-STS policy host now serves {}; publish the new records (`portcullis sts publish`)",
                        domains.join(", ")
                    ));
                }
            }
            (Some(_), Some(_)) => {
                summary
                    .restart_needed
                    .push("mta-sts.hosting.address".into());
                log.warn(format_args!(
                    "reload: mta-sts.hosting.address changed; the MTA-STS policy host keeps its address and policies until the next start"
                ));
            }
            (None, Some(_)) => {
                summary
                    .restart_needed
                    .push("[mta-sts.hosting] added".into());
                log.warn(format_args!(
                    "reload: [mta-sts.hosting] added; the MTA-STS policy host starts at the next start"
                ));
            }
            (Some(_), None) => {
                summary
                    .restart_needed
                    .push("[mta-sts.hosting] removed".into());
                log.warn(format_args!(
                    "reload: [mta-sts.hosting] removed; the MTA-STS policy host keeps serving until the next start"
                ));
            }
            (None, None) => {}
        }
    }

    /// Logs a failed reload, problem by problem.
    /// A reload refused before the engine saw it: logged, and raised as
    /// an alert (the engine raises its own refusals).
    fn failed(&self, f: ReloadFailure) -> ReloadFailure {
        let f = self.logged(f);
        crate::alerts::sources::reload_refused(
            self.engine.alerts(),
            &f.error,
            f.problems.first().map(String::as_str),
        );
        f
    }

    /// A refused reload, logged.
    fn logged(&self, f: ReloadFailure) -> ReloadFailure {
        let log = self.engine.mail_log();
        for p in &f.problems {
            log.warn(format_args!("reload refused: {p}"));
        }
        log.warn(format_args!("reload refused: {}", f.error));
        f
    }
}

fn backup_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".previous");
    PathBuf::from(name)
}
