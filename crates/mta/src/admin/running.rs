//! A whole gateway as `portcullis run` starts it: the engine, its
//! certificate tasks (ACME renewals, DANE rollovers), the control
//! interface around it, and the admin listener when `[admin]` is
//! configured (with the token store, the first token written at first
//! start, and `endpoint.json` for `portcullis ctl`), the MTA-STS policy
//! host when `[mta-sts.hosting]` is configured, and the TLS report task when
//! `[tls-report]` is enabled. The alert service (`[alerts]`) starts first,
//! so that a start that fails (a listener that cannot bind, a damaged
//! spool) is still told to the operator.

use std::sync::Arc;
use std::time::Duration;

use super::cert::AdminCertResolver;
use super::cluster_tasks::ClusterTasks;
use super::control::Control;
use super::endpoint::{Endpoint, fingerprint};
use super::server::AdminServer;
use super::tokens::TokenStore;
use crate::alerts::AlertService;
use crate::alerts::sources::CertificateWatch;
use crate::config::{ConfigOrigin, LoadedConfig};
use crate::engine::{Engine, EngineSettings};
use crate::sts_host::StsHostServer;

/// How long a failed start waits for its alerts to go out before exiting
/// (what is not sent stays in the alert outbox for the next start).
const FAILED_START_ALERT_WAIT: Duration = Duration::from_secs(15);

/// How often the certificate-expiry watch looks at the alert clock.
const CERTIFICATE_WATCH_TICK: Duration = Duration::from_secs(60);

/// A running gateway with its operations.
#[derive(Debug)]
pub struct Running {
    /// The engine.
    pub engine: Engine,
    /// The control interface (reload, import, …).
    pub control: Arc<Control>,
    server: Option<AdminServer>,
    sts_host: Option<StsHostServer>,
    alerts: Option<AlertService>,
    certificate_watch: Option<CertificateWatch>,
    cluster: Option<ClusterTasks>,
    learned: Option<crate::cluster::learned::LearnedSync>,
}

impl Running {
    /// Starts the engine from `settings` (built from `loaded`), then the
    /// admin listener. `origin` is how `loaded` was read, for reloads.
    pub async fn start(
        origin: ConfigOrigin,
        loaded: LoadedConfig,
        settings: EngineSettings,
    ) -> Result<Running, String> {
        let admin = loaded.admin_settings().map_err(|r| r.to_string())?;
        let sts_settings = loaded.sts_host_settings().map_err(|r| r.to_string())?;
        let tls_report = loaded
            .tls_report_settings(crate::clock::system())
            .map_err(|r| r.to_string())?;
        let certificates = loaded
            .to_certificate_settings()
            .map_err(|r| r.to_string())?;
        let data_dir = loaded.config.data_dir.clone();
        let (tokens, first) = TokenStore::open(
            &data_dir,
            admin.as_ref().map(|a| a.tokens.clone()).unwrap_or_default(),
        )?;
        let alerts = match loaded
            .alert_settings(&settings)
            .map_err(|r| r.to_string())?
        {
            Some(s) => Some(AlertService::start(
                s,
                crate::clock::system(),
                crate::maillog::MailLog::with_observer(settings.log_observer.clone()),
            )?),
            None => None,
        };
        let sink = alerts.as_ref().map(AlertService::sink).unwrap_or_default();
        let cluster = match &loaded.config.cluster {
            Some(c) => Some(
                join_cluster(
                    c,
                    &data_dir,
                    sink.clone(),
                    crate::maillog::MailLog::with_observer(settings.log_observer.clone()),
                )
                .await?,
            ),
            None => None,
        };
        if let (Some(a), Some(c)) = (&alerts, &cluster) {
            a.join_cluster(c.clone());
        }
        if let Some(a) = &alerts
            && let Err(e) = crate::alerts::sources::ca_list_at_start(
                &sink,
                &a.settings().dir,
                &settings.delivery.tls.roots,
            )
        {
            tracing::warn!(target: "portcullis", "alerts: {e}");
        }
        let engine = match Engine::start_in_cluster(settings, sink.clone(), cluster.clone()).await {
            Ok(e) => e,
            Err(e) => {
                if let Some(a) = &alerts {
                    a.wait_idle(FAILED_START_ALERT_WAIT).await;
                }
                return Err(e.to_string());
            }
        };
        let learned = cluster
            .as_ref()
            .and_then(|c| crate::cluster::learned::start(c.clone(), &engine));
        let certificate_watch = CertificateWatch::start(
            sink,
            loaded.config.store_dir(),
            loaded.certificates_in_use(),
            engine.mail_log().clone(),
            CERTIFICATE_WATCH_TICK,
        );
        if let Err(e) = engine.manage_certificates(certificates).await {
            engine.shutdown(Duration::ZERO).await;
            return Err(e.to_string());
        }
        if let Some(reports) = tls_report {
            engine.start_tls_reports(reports).await;
        }
        let log = engine.mail_log().clone();
        match crate::tlsrpt_inbox::open_configured(&loaded.config) {
            Ok(inbox) => {
                if let Some(i) = &inbox {
                    log.line(format_args!(
                        "TLS report inbox: mail to {} is stored as reports{} (in {})",
                        if i.settings().addresses.is_empty() {
                            "(no address)".to_owned()
                        } else {
                            i.settings().addresses.join(", ")
                        },
                        if i.settings().https {
                            ", and POST /tlsrpt on the admin listener"
                        } else {
                            ""
                        },
                        i.store().dir().display()
                    ));
                }
                engine.attach_report_inbox(inbox);
            }
            Err(e) => {
                engine.shutdown(Duration::ZERO).await;
                return Err(e);
            }
        }
        let sts_host = match &sts_settings {
            None => None,
            Some(s) => match StsHostServer::start(s).await {
                Ok(server) => {
                    let domains: Vec<&str> = s.policies.iter().map(|p| p.domain.as_str()).collect();
                    log.line(format_args!(
                        "MTA-STS policy host on https://{}/ for {}",
                        server.local_addr(),
                        domains.join(", ")
                    ));
                    Some(server)
                }
                Err(e) => {
                    engine.shutdown(Duration::ZERO).await;
                    return Err(e);
                }
            },
        };
        if let Some(file) = &first {
            log.line(format_args!(
                "admin: first API token ({}, role admin) written to {} (owner-only); `portcullis ctl` uses it",
                super::tokens::FIRST_TOKEN_NAME,
                file.display()
            ));
        }
        let Some(admin) = admin else {
            let control = Arc::new(Control::new(
                engine.clone(),
                origin,
                loaded,
                tokens,
                None,
                None,
            ));
            if let Some(s) = &sts_host {
                control.attach_sts_host(s.handle());
            }
            let cluster = cluster.map(|c| ClusterTasks::start_for(c, &control));
            return Ok(Running {
                engine,
                control,
                server: None,
                sts_host,
                alerts,
                certificate_watch,
                cluster,
                learned,
            });
        };
        let resolver = Arc::new(AdminCertResolver::new(admin.certificate.clone()));
        let control = Arc::new(Control::new(
            engine.clone(),
            origin,
            loaded,
            tokens,
            Some(resolver.clone()),
            Some(admin.address),
        ));
        if let Some(s) = &sts_host {
            control.attach_sts_host(s.handle());
        }
        let server = match AdminServer::start(&admin, control.clone(), resolver).await {
            Ok(s) => s,
            Err(e) => {
                if let Some(s) = sts_host {
                    s.shutdown().await;
                }
                engine.shutdown(Duration::ZERO).await;
                return Err(e);
            }
        };
        let addr = server.local_addr();
        let endpoint = Endpoint {
            url: format!("https://{addr}"),
            certificate_sha256: admin
                .certificate
                .cert
                .first()
                .map(|c| fingerprint(c))
                .unwrap_or_default(),
        };
        if let Err(e) = endpoint.save(&data_dir) {
            log.warn(format_args!("admin: {e}; `portcullis ctl` needs --url"));
        }
        log.line(format_args!(
            "admin listener on https://{addr}/ (status page, API, /metrics; certificate {:?})",
            admin.certificate_name
        ));
        let cluster = cluster.map(|c| ClusterTasks::start_for(c, &control));
        Ok(Running {
            engine,
            control,
            server: Some(server),
            sts_host,
            alerts,
            certificate_watch,
            cluster,
            learned,
        })
    }

    /// The alert service, when `[alerts]` is configured.
    pub fn alerts(&self) -> Option<&AlertService> {
        self.alerts.as_ref()
    }

    /// The admin listener's address, when there is one.
    pub fn admin_addr(&self) -> Option<std::net::SocketAddr> {
        self.server.as_ref().map(AdminServer::local_addr)
    }

    /// The MTA-STS policy host's address, when there is one.
    pub fn sts_host_addr(&self) -> Option<std::net::SocketAddr> {
        self.sts_host.as_ref().map(StsHostServer::local_addr)
    }

    /// Stops the MTA-STS policy host and the admin listener, then the
    /// engine (see [`Engine::shutdown`]).
    pub async fn shutdown(self, grace: Duration) {
        if let Some(c) = self.cluster {
            c.stop().await;
        }
        if let Some(l) = self.learned {
            l.stop().await;
        }
        if let Some(s) = self.sts_host {
            s.shutdown().await;
        }
        if let Some(s) = self.server {
            s.shutdown().await;
            let data_dir = self.control.running().await.config.data_dir;
            let _ = std::fs::remove_file(super::endpoint::path(&data_dir));
        }
        drop(self.certificate_watch);
        self.engine.shutdown(grace).await;
        if let Some(a) = self.alerts {
            a.shutdown().await;
        }
    }
}

/// Opens this node's link to the cluster database and checks it once: a
/// schema newer than this build stops the start; an unreachable database
/// does not (the node runs its copy of the shared configuration).
async fn join_cluster(
    config: &crate::config::ClusterConfig,
    data_dir: &std::path::Path,
    alerts: crate::alerts::AlertSink,
    log: crate::maillog::MailLog,
) -> Result<crate::cluster::Cluster, String> {
    use crate::cluster::{Cluster, ClusterError, ClusterSettings, shared_config};
    let settings = ClusterSettings::for_node(config, data_dir)?;
    let cluster = Cluster::new(settings).map_err(|e| e.to_string())?;
    cluster.attach(alerts, log.clone());
    match shared_config::newest_version(&cluster).await {
        Ok(v) => log.line(format_args!(
            "cluster: node {} joined through {} (newest configuration version {v})",
            cluster.node(),
            cluster.settings().database_shown
        )),
        Err(e @ ClusterError::NewerSchema { .. }) => return Err(e.to_string()),
        // Unreachable (logged and alerted by the link) or refused: go on.
        Err(_) => {}
    }
    Ok(cluster)
}
