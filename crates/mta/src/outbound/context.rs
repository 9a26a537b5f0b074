//! What every delivery shares: the settings, the spool, the mail log, the
//! temporary STARTTLS exemptions, the trust for certificate checks, the DNS
//! resolver, the MTA-STS state, connection limits and the idle-connection
//! pool. Built when delivery starts and again at each reload: deliveries in
//! flight keep the `Arc` of the context they started with, new attempts get
//! the new one. What must outlive a reload ([`Carried`]: the STARTTLS
//! exemptions, the counters, the TLS-RPT session counts, the never-downgrade
//! memory) is shared between the two.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use portcullis_dane::{PeerVerifier, PkixRoots};
use portcullis_policy::{DomainName, TlsExemptions};
use tokio::sync::Semaphore;
use tokio_rustls::TlsConnector;

use super::OutboundHandle;
use super::mta_sts::StsState;
use super::reuse::Pool;
use crate::error::StartError;
use crate::maillog::MailLog;
use crate::settings::{DeliverySettings, EngineSettings};
use crate::spool::Spool;

/// Shared by every delivery.
pub(crate) struct Context {
    pub settings: DeliverySettings,
    pub hostname: String,
    pub spool: Arc<Spool>,
    pub log: MailLog,
    pub handle: OutboundHandle,
    pub exemptions: Arc<Mutex<TlsExemptions>>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Where delivery raises alerts (TLS policy failing for every MX).
    pub alerts: crate::alerts::AlertSink,
    /// The enabled CA lists, for PKIX checks.
    pub pkix: PkixRoots,
    /// A connector for hops that need no certificate check.
    pub plain_connector: TlsConnector,
    pub connections: Arc<Semaphore>,
    pub per_destination: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// The gateway's resolver (built once by the engine).
    pub resolver: Option<crate::dns::Resolver>,
    pub sts: StsState,
    pub pool: Arc<Pool>,
    /// TLS session caches per hop and certificate check.
    pub tls_sessions: super::tls_sessions::TlsSessions,
    /// TLS-RPT session counts (RFC 8460), taken by the report task.
    pub tls_report: Arc<crate::tlsrpt::SessionCounter>,
    /// Domains delivered to with authenticated TLS (never-downgrade).
    pub never_downgrade: Arc<crate::never_downgrade::NeverDowngrade>,
    /// The cluster this node shares what it learns with, if any.
    pub cluster: Option<crate::cluster::Cluster>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("hostname", &self.hostname)
            .finish_non_exhaustive()
    }
}

/// What every context of one engine shares, across reloads.
#[derive(Debug, Clone, Default)]
pub(crate) struct Carried {
    pub exemptions: Arc<Mutex<TlsExemptions>>,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub alerts: crate::alerts::AlertSink,
    pub tls_report: Arc<crate::tlsrpt::SessionCounter>,
    pub never_downgrade: Arc<crate::never_downgrade::NeverDowngrade>,
    pub cluster: Option<crate::cluster::Cluster>,
}

impl Context {
    pub(crate) fn new(
        settings: &EngineSettings,
        spool: Arc<Spool>,
        log: MailLog,
        handle: OutboundHandle,
        resolver: Option<crate::dns::Resolver>,
        carried: &Carried,
    ) -> Result<Context, StartError> {
        let d = &settings.delivery;
        let pkix = PkixRoots::new(d.tls.roots.clone(), d.tls.provider.clone()).map_err(|e| {
            StartError::Setup(format!(
                "outbound TLS: cannot verify certificates with the configured CA lists: {e}"
            ))
        })?;
        if pkix.is_empty() {
            log.warn(format_args!(
                "outbound TLS: no CA list is enabled; every certificate verification (required-verify, MTA-STS enforce, REQUIRETLS) will fail"
            ));
        }
        let plain = Arc::new(PeerVerifier::any_certificate(d.tls.provider.clone()))
            .client_config(&d.tls.versions, d.tls.client_certificate.clone())
            .map_err(|e| StartError::Setup(format!("outbound TLS settings: {e}")))?;
        Ok(Context {
            settings: d.clone(),
            hostname: settings.hostname.clone(),
            spool,
            log,
            handle,
            exemptions: carried.exemptions.clone(),
            metrics: carried.metrics.clone(),
            alerts: carried.alerts.clone(),
            pkix,
            plain_connector: TlsConnector::from(Arc::new(plain)),
            connections: Arc::new(Semaphore::new(d.max_connections.max(1))),
            per_destination: Mutex::default(),
            sts: StsState::new(settings, resolver.clone())?,
            pool: Arc::default(),
            tls_sessions: Default::default(),
            tls_report: carried.tls_report.clone(),
            never_downgrade: carried.never_downgrade.clone(),
            cluster: carried.cluster.clone(),
            resolver,
        })
    }

    /// Connection slots of one destination: the destination entry's
    /// `max-connections`, capped by the engine-wide per-destination limit.
    pub(crate) fn destination_slots(&self, domain: &DomainName) -> Arc<Semaphore> {
        let limit = (self
            .settings
            .policy
            .destinations()
            .lookup(domain)
            .limits
            .max_connections as usize)
            .min(self.settings.max_connections_per_destination)
            .max(1);
        let mut map = self
            .per_destination
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        map.entry(domain.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(limit)))
            .clone()
    }
}
