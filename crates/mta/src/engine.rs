//! The engine: everything the gateway runs, started from one
//! [`EngineSettings`] value and stopped with [`Engine::shutdown`].
//!
//! The settings are plain, already-validated values (the `config` module
//! builds them from the TOML file; tests build them directly): listeners
//! with their access policy and rustls server configuration, the outbound
//! policy, SMTP routes, the trust roots for outbound verification, the DNS
//! resolver, the spool directory, retry schedule and timeouts. The engine
//! does not re-validate them; it builds the one DNS resolver (and starts its
//! DNSSEC self-check), opens the spool, starts the delivery scheduler and the
//! queue control socket (`control.sock` in the data directory, see
//! [`crate::control`]), binds the listeners, starts the health sampler
//! ([`crate::health`]: resource conservation), and reports anything that
//! cannot start as a [`StartError`] for the operator.
//!
//! A running engine also obeys the operator (`operate.rs`): reload with new
//! settings, suspend and resume listeners and delivery, the temporary
//! STARTTLS exemptions, the MTA-STS cache, its status. An `Engine` is a
//! cheap handle (clones share the running gateway), so the admin interface
//! and the signal handler can hold it side by side.
//!
//! ```
//! use std::time::Duration;
//! use portcullis_mta::engine::*;
//! use portcullis_policy::{ListenerAccess, ListenerAccessConfig, OutboundPolicy};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let dir = tempfile::tempdir().unwrap();
//! let access: ListenerAccessConfig = toml::from_str(r#"
//!     kind = "private"
//!     [[hat.sender-group]]
//!     name = "LOOPBACK"
//!     match = ["127.0.0.1"]
//!     policy = "RELAYED"
//!     [hat.policy.RELAYED]
//!     action = "relay"
//! "#).unwrap();
//! let access = ListenerAccess::from_config(&access, "loopback").unwrap();
//! let tls = OutboundTls::new(rustls::RootCertStore::empty(), &Default::default()).unwrap();
//! let settings = EngineSettings {
//!     hostname: "gw.example".into(),
//!     listeners: vec![ListenerSettings::new("loopback", "127.0.0.1:0".parse().unwrap(), access)],
//!     spool_dir: dir.path().join("spool"),
//!     spool: Default::default(),
//!     data_dir: dir.path().join("data"),
//!     delivery: DeliverySettings::new(OutboundPolicy::default(), tls),
//!     log_observer: None,
//!     health: Default::default(),
//! };
//! let engine = Engine::start(settings).await.unwrap();
//! assert_ne!(engine.local_addrs()[0].port(), 0);
//! engine.shutdown(Duration::from_secs(1)).await;
//! # });
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::control::socket::ControlSocket;
use crate::control::{QueueService, SOCKET_NAME};
use crate::dns::Resolver;
use crate::health::Health;
use crate::health::sampler::Sampler;
use crate::inbound::{Inbound, Shared};
use crate::maillog::MailLog;
use crate::metrics::Metrics;
use crate::outbound::{Carried, Outbound};
use crate::spool::Spool;
use crate::suspension::Suspended;

pub use crate::error::StartError;
pub use crate::settings::{
    DeliverySettings, EngineSettings, ListenerSettings, MtaStsSettings, OutboundTls, RetrySchedule,
    RouteHost, SmtpRoute,
};

/// A running gateway. Cheap to clone: clones are handles to the same one.
#[derive(Debug, Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) inbound: Mutex<Option<Inbound>>,
    pub(crate) outbound: Mutex<Option<Outbound>>,
    pub(crate) spool: Arc<Spool>,
    pub(crate) dns: Mutex<Option<Resolver>>,
    pub(crate) log: MailLog,
    pub(crate) queue: QueueService,
    control: Mutex<Option<ControlSocket>>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) data_dir: PathBuf,
    /// What the operator suspended, as stored in the data directory.
    pub(crate) suspended: tokio::sync::Mutex<Suspended>,
    /// One reload at a time; also what the running settings are.
    pub(crate) settings: tokio::sync::Mutex<EngineSettings>,
    pub(crate) started: SystemTime,
    /// Where alerts go (off unless the caller started an alert service).
    pub(crate) alerts: crate::alerts::AlertSink,
    /// ACME renewals and DANE rollover watch (stopped with the engine).
    certificates: Mutex<Option<crate::cert_manager::CertificateManager>>,
    /// The TLS report inbox the listeners and the admin listener use.
    report_inbox: crate::tlsrpt_inbox::InboxSlot,
    /// Resource conservation state, read by the inbound path.
    pub(crate) health: Health,
    /// Reads the gauges (stopped with the engine).
    pub(crate) sampler: Mutex<Option<Sampler>>,
    /// TLS-RPT session counts of delivery (off until reports start).
    pub(crate) tls_report: Arc<crate::tlsrpt::SessionCounter>,
    /// The TLS-RPT report task, when `[tls-report]` is enabled.
    pub(crate) tls_reporter: Mutex<Option<crate::tlsrpt::ReportService>>,
    /// The cluster this node belongs to, if any.
    pub(crate) cluster: Option<crate::cluster::Cluster>,
}

impl Engine {
    /// Opens the spool, starts delivery of everything still queued, and
    /// binds every listener. Must be called inside a tokio runtime.
    pub async fn start(settings: EngineSettings) -> Result<Engine, StartError> {
        Engine::start_with_alerts(settings, crate::alerts::AlertSink::off()).await
    }

    /// As [`start`](Self::start), raising alerts on `alerts`: spool damage
    /// and listeners that cannot bind (here), DNSSEC broken (the resolver's
    /// self-check), TLS policy failing for every MX of a destination
    /// (delivery), failed reloads and changed CA lists (`operate.rs`).
    pub async fn start_with_alerts(
        settings: EngineSettings,
        alerts: crate::alerts::AlertSink,
    ) -> Result<Engine, StartError> {
        Engine::start_in_cluster(settings, alerts, None).await
    }

    /// As [`start_with_alerts`](Self::start_with_alerts), as a node of
    /// `cluster` when there is one: what delivery learns about peers is
    /// shared with the other nodes.
    pub async fn start_in_cluster(
        settings: EngineSettings,
        alerts: crate::alerts::AlertSink,
        cluster: Option<crate::cluster::Cluster>,
    ) -> Result<Engine, StartError> {
        let log = MailLog::with_observer(settings.log_observer.clone());
        std::fs::create_dir_all(&settings.data_dir).map_err(|e| {
            StartError::Setup(format!(
                "cannot create the data directory {}: {e}",
                settings.data_dir.display()
            ))
        })?;
        let suspended = Suspended::load(&settings.data_dir).map_err(StartError::Setup)?;
        let dns = start_resolver(&settings, &log, &alerts)?;
        let (spool, queued) = Spool::open(&settings.spool_dir, settings.spool.clone())
            .inspect_err(|e| {
                crate::alerts::sources::spool_failed(&alerts, &settings.spool_dir, e)
            })?;
        crate::alerts::sources::spool_damage_at_open(&alerts, spool.damage_at_open());
        let spool = Arc::new(spool);
        let metrics = Arc::new(Metrics::default());
        let tls_report = Arc::new(crate::tlsrpt::SessionCounter::default());
        let never_downgrade = crate::never_downgrade::open_in(&settings.data_dir, &alerts, &log);
        let carried = Carried {
            metrics: metrics.clone(),
            alerts: alerts.clone(),
            tls_report: tls_report.clone(),
            never_downgrade: never_downgrade.clone(),
            cluster: cluster.clone(),
            ..Carried::default()
        };
        if !suspended.delivery.is_empty() {
            log.warn(format_args!(
                "delivery is suspended (since before this start) for: {}; `portcullis ctl resume delivery TARGET` resumes it",
                suspended.delivery.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        let outbound = Outbound::start(
            &settings,
            spool.clone(),
            log.clone(),
            queued,
            dns.clone(),
            carried,
            suspended.delivery_suspensions(),
        )?;
        let queue = QueueService::new(spool.clone(), outbound.control());
        let socket_path = settings.data_dir.join(SOCKET_NAME);
        let control = match ControlSocket::start(&socket_path, queue.clone(), log.clone()) {
            Ok(c) => c,
            Err(e) => {
                outbound.shutdown(Duration::ZERO).await;
                return Err(StartError::Setup(format!(
                    "cannot open the queue control socket {}: {e}",
                    socket_path.display()
                )));
            }
        };
        let report_inbox = crate::tlsrpt_inbox::InboxSlot::default();
        let health = Health::new(&settings.health);
        let shared = Shared {
            spool: spool.clone(),
            outbound: outbound.handle(),
            log: log.clone(),
            dns: dns.clone(),
            metrics: metrics.clone(),
            report_inbox: report_inbox.clone(),
            health: health.clone(),
        };
        let inbound = match Inbound::start(&settings, shared, &suspended.listeners).await {
            Ok(i) => i,
            Err(e) => {
                crate::alerts::sources::start_failed(&alerts, &e);
                control.shutdown().await;
                outbound.shutdown(Duration::ZERO).await;
                return Err(e);
            }
        };
        // Subscribed before the sampler's first reading.
        crate::alerts::health_bridge::spawn(health.subscribe(), alerts.clone());
        let sampler = Sampler::start(
            health.clone(),
            settings.health.clone(),
            crate::health::gauges::Sources {
                spool: spool.clone(),
                open_sessions: health.session_counter(),
            },
            log.clone(),
        );
        Ok(Engine {
            inner: Arc::new(Inner {
                inbound: Mutex::new(Some(inbound)),
                outbound: Mutex::new(Some(outbound)),
                spool,
                dns: Mutex::new(dns),
                log,
                queue,
                control: Mutex::new(Some(control)),
                metrics,
                data_dir: settings.data_dir.clone(),
                suspended: tokio::sync::Mutex::new(suspended),
                settings: tokio::sync::Mutex::new(settings),
                started: SystemTime::now(),
                certificates: Mutex::new(None),
                report_inbox,
                health,
                sampler: Mutex::new(Some(sampler)),
                alerts,
                tls_report,
                tls_reporter: Mutex::new(None),
                cluster,
            }),
        })
    }

    /// The cluster this node belongs to (`None`: a single gateway).
    pub fn cluster(&self) -> Option<&crate::cluster::Cluster> {
        self.inner.cluster.as_ref()
    }

    /// Starts the certificate tasks beside the mail path: ACME renewals of
    /// the `[acme]` entries (with the HTTP-01 listener) and the watch over
    /// DANE key rollovers, both through the engine's resolver and logging
    /// to its mail log. They stop with the engine.
    pub async fn manage_certificates(
        &self,
        settings: crate::cert_manager::CertificateSettings,
    ) -> Result<(), StartError> {
        let dns = lock(&self.inner.dns).clone();
        let manager =
            crate::cert_manager::CertificateManager::start(settings, dns, self.inner.log.clone())
                .await?;
        *lock(&self.inner.certificates) = Some(manager);
        Ok(())
    }

    /// Attaches (or, with `None`, detaches) the TLS report inbox: from now
    /// on mail to its addresses is stored as reports, not queued.
    pub fn attach_report_inbox(&self, inbox: Option<Arc<crate::tlsrpt_inbox::ReportInbox>>) {
        *self
            .inner
            .report_inbox
            .write()
            .unwrap_or_else(|e| e.into_inner()) = inbox;
    }

    /// The TLS report inbox, when one is attached.
    pub fn report_inbox(&self) -> Option<Arc<crate::tlsrpt_inbox::ReportInbox>> {
        self.inner
            .report_inbox
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The HTTP-01 challenge listener's address, when it runs.
    pub fn acme_http01_addr(&self) -> Option<SocketAddr> {
        lock(&self.inner.certificates)
            .as_ref()
            .and_then(|c| c.http01_addr())
    }

    /// Forgets every cached DNS answer and DNSSEC validation result (after
    /// fixing a zone, say): the next lookups ask the servers again.
    pub fn flush_dns_cache(&self) -> Result<(), portcullis_dane::dns::DnsSetupError> {
        let dns = lock(&self.inner.dns).clone();
        let Some(dns) = dns else {
            return Err(portcullis_dane::dns::DnsSetupError::NoServers);
        };
        dns.flush()?;
        self.inner.log.line(format_args!("DNS: cache flushed"));
        Ok(())
    }

    /// The bound address of each listener, in settings order (a suspended
    /// listener: the address it had, or its configured one).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        lock(&self.inner.inbound)
            .as_ref()
            .map(Inbound::local_addrs)
            .unwrap_or_default()
    }

    /// The spool (for status and tests).
    pub fn spool(&self) -> &Arc<Spool> {
        &self.inner.spool
    }

    /// The mail path's counters.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// Where the engine raises alerts (a bridge from other monitors, such
    /// as health thresholds, raises on it too).
    pub fn alerts(&self) -> &crate::alerts::AlertSink {
        &self.inner.alerts
    }

    /// The mail log (the admin interface writes its own lines to it).
    pub fn mail_log(&self) -> &MailLog {
        &self.inner.log
    }

    /// Resource conservation state, the gauges' last report, and the
    /// channel of health events (see [`crate::health`]).
    pub fn health(&self) -> &Health {
        &self.inner.health
    }

    /// Queue commands on the running gateway: what the control socket
    /// serves, and what any other front end should call.
    pub fn queue_service(&self) -> QueueService {
        self.inner.queue.clone()
    }

    /// Stops accepting connections, lets open sessions finish within
    /// `grace`, then closes them (a message not yet answered `250` was
    /// never accepted); deliveries in flight get what is left of `grace`
    /// (at least a second) before they are abandoned. Nothing queued is
    /// lost: what was not delivered stays in the spool for the next start.
    /// Other handles (clones) see a stopped engine; the spool, and its
    /// lock, is released when the last handle is dropped.
    pub async fn shutdown(self, grace: Duration) {
        let certificates = lock(&self.inner.certificates).take();
        drop(certificates);
        let sampler = lock(&self.inner.sampler).take();
        drop(sampler);
        let started = std::time::Instant::now();
        let control = lock(&self.inner.control).take();
        if let Some(c) = control {
            c.shutdown().await;
        }
        let inbound = lock(&self.inner.inbound).take();
        if let Some(i) = inbound {
            i.shutdown(grace).await;
        }
        let left = grace
            .saturating_sub(started.elapsed())
            .max(Duration::from_secs(1));
        let outbound = lock(&self.inner.outbound).take();
        if let Some(o) = outbound {
            o.shutdown(left).await;
        }
        // After delivery stopped: its last sessions are in the final flush.
        let reporter = lock(&self.inner.tls_reporter).take();
        if let Some(r) = reporter {
            r.shutdown().await;
        }
    }
}

/// The one resolver, with its start-up DNSSEC self-check.
pub(crate) fn start_resolver(
    settings: &EngineSettings,
    log: &MailLog,
    alerts: &crate::alerts::AlertSink,
) -> Result<Option<Resolver>, StartError> {
    let dns = match &settings.delivery.dns {
        Some(d) => {
            Some(Resolver::new(d).map_err(|e| StartError::Setup(format!("DNS resolver: {e}")))?)
        }
        None => {
            log.warn(format_args!(
                "DNS: no resolver configured ([dns] resolvers, or nameserver lines in /etc/resolv.conf): only SMTP routes given by address can be delivered"
            ));
            None
        }
    };
    if let Some(dns) = &dns {
        dns.check_at_start(log.clone(), alerts.clone());
    }
    Ok(dns)
}

/// Locks a mutex whose holder cannot leave it inconsistent (every critical
/// section is a swap or a read).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
