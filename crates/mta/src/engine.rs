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
//! [`crate::control`]), binds the listeners, and reports anything that
//! cannot start as a [`StartError`] for the operator.
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
//! };
//! let engine = Engine::start(settings).await.unwrap();
//! assert_ne!(engine.local_addrs()[0].port(), 0);
//! engine.shutdown(Duration::from_secs(1)).await;
//! # });
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::control::socket::ControlSocket;
use crate::control::{QueueService, SOCKET_NAME};
use crate::dns::Resolver;
use crate::inbound::Inbound;
use crate::maillog::MailLog;
use crate::outbound::Outbound;
use crate::spool::Spool;

pub use crate::error::StartError;
pub use crate::settings::{
    DeliverySettings, EngineSettings, ListenerSettings, MtaStsSettings, OutboundTls, RetrySchedule,
    RouteHost, SmtpRoute,
};

/// A running gateway.
#[derive(Debug)]
pub struct Engine {
    inbound: Inbound,
    outbound: Outbound,
    spool: Arc<Spool>,
    dns: Option<Resolver>,
    log: MailLog,
    queue: QueueService,
    control: ControlSocket,
    certificates: Option<crate::cert_manager::CertificateManager>,
}

impl Engine {
    /// Opens the spool, starts delivery of everything still queued, and
    /// binds every listener. Must be called inside a tokio runtime.
    pub async fn start(settings: EngineSettings) -> Result<Engine, StartError> {
        let log = MailLog::with_observer(settings.log_observer.clone());
        std::fs::create_dir_all(&settings.data_dir).map_err(|e| {
            StartError::Setup(format!(
                "cannot create the data directory {}: {e}",
                settings.data_dir.display()
            ))
        })?;
        let dns = match &settings.delivery.dns {
            Some(d) => Some(
                Resolver::new(d).map_err(|e| StartError::Setup(format!("DNS resolver: {e}")))?,
            ),
            None => {
                log.warn(format_args!(
                    "DNS: no resolver configured ([dns] resolvers, or nameserver lines in /etc/resolv.conf): only SMTP routes given by address can be delivered"
                ));
                None
            }
        };
        if let Some(dns) = &dns {
            dns.check_at_start(log.clone());
        }
        let (spool, queued) = Spool::open(&settings.spool_dir, settings.spool.clone())?;
        let spool = Arc::new(spool);
        let outbound = Outbound::start(&settings, spool.clone(), log.clone(), queued, dns.clone())?;
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
        let inbound = match Inbound::start(
            &settings,
            spool.clone(),
            outbound.handle(),
            log.clone(),
            dns.clone(),
        )
        .await
        {
            Ok(i) => i,
            Err(e) => {
                control.shutdown().await;
                outbound.shutdown(Duration::ZERO).await;
                return Err(e);
            }
        };
        Ok(Engine {
            inbound,
            outbound,
            spool,
            dns,
            log,
            queue,
            control,
            certificates: None,
        })
    }

    /// Starts the certificate tasks beside the mail path: ACME renewals of
    /// the `[acme]` entries (with the HTTP-01 listener) and the watch over
    /// DANE key rollovers, both through the engine's resolver and logging
    /// to its mail log. They stop with the engine.
    pub async fn manage_certificates(
        &mut self,
        settings: crate::cert_manager::CertificateSettings,
    ) -> Result<(), StartError> {
        let manager = crate::cert_manager::CertificateManager::start(
            settings,
            self.dns.clone(),
            self.log.clone(),
        )
        .await?;
        self.certificates = Some(manager);
        Ok(())
    }

    /// The HTTP-01 challenge listener's address, when it runs.
    pub fn acme_http01_addr(&self) -> Option<SocketAddr> {
        self.certificates.as_ref().and_then(|c| c.http01_addr())
    }

    /// Forgets every cached DNS answer and DNSSEC validation result (after
    /// fixing a zone, say): the next lookups ask the servers again.
    pub fn flush_dns_cache(&self) -> Result<(), portcullis_dane::dns::DnsSetupError> {
        let Some(dns) = &self.dns else {
            return Err(portcullis_dane::dns::DnsSetupError::NoServers);
        };
        dns.flush()?;
        self.log.line(format_args!("DNS: cache flushed"));
        Ok(())
    }

    /// The bound address of each listener, in settings order.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.inbound.local_addrs()
    }

    /// The spool (for status and tests).
    pub fn spool(&self) -> &Arc<Spool> {
        &self.spool
    }

    /// Queue commands on the running gateway: what the control socket
    /// serves, and what any other front end should call.
    pub fn queue_service(&self) -> QueueService {
        self.queue.clone()
    }

    /// Stops accepting connections, lets open sessions finish within
    /// `grace`, then closes them (a message not yet answered `250` was
    /// never accepted); deliveries in flight get what is left of `grace`
    /// (at least a second) before they are abandoned. Nothing queued is
    /// lost: what was not delivered stays in the spool for the next start.
    pub async fn shutdown(mut self, grace: Duration) {
        drop(self.certificates.take());
        let started = std::time::Instant::now();
        self.control.shutdown().await;
        self.inbound.shutdown(grace).await;
        let left = grace
            .saturating_sub(started.elapsed())
            .max(Duration::from_secs(1));
        self.outbound.shutdown(left).await;
    }
}
