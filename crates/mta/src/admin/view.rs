//! What `GET /api/status` and the status page show, gathered in one value:
//! the engine's state (listeners, delivery suspensions, queue), the TLS
//! outcomes of the last hour, the certificates in the store with the days
//! they have left, the recent alerts, newest first (with `[alerts]`), and
//! the health gauges.

use serde::{Deserialize, Serialize};

use super::control::Control;
use crate::metrics::TlsClass;
use crate::operate::EngineStatus;

/// A certificate of the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateView {
    pub name: String,
    pub subject: String,
    /// Unix seconds.
    pub not_after: u64,
    /// Negative once expired.
    pub days_left: i64,
    pub demo: bool,
}

/// TLS outcomes of the last hour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsHour {
    pub inbound_tls: u64,
    pub inbound_plain: u64,
    pub inbound_failed: u64,
    pub outbound_tls: u64,
    pub outbound_plain: u64,
    pub outbound_failed: u64,
    /// Per 5 minutes, oldest first (12 buckets): `[inbound tls, inbound
    /// plain, inbound failed, outbound tls, outbound plain, outbound failed]`.
    pub per_5_minutes: Vec<[u64; 6]>,
}

/// The whole status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusView {
    pub version: String,
    pub pid: u32,
    #[serde(flatten)]
    pub engine: EngineStatus,
    pub tls_last_hour: TlsHour,
    pub certificates: Vec<CertificateView>,
    /// Recent alerts, newest first (`alerts::Notice` as JSON; empty
    /// without `[alerts]`).
    pub recent_alerts: Vec<serde_json::Value>,
    /// The health gauges and resource conservation.
    #[serde(default)]
    pub health: crate::health::HealthReport,
    /// The cluster's nodes, when this gateway is a node and the database
    /// answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<Vec<crate::cluster::nodes::NodeRow>>,
}

pub(crate) async fn status(control: &Control) -> StatusView {
    let engine = control.engine().status().await;
    let running = control.running().await;
    StatusView {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        pid: std::process::id(),
        engine,
        tls_last_hour: tls_hour(control),
        certificates: certificates(&running.config.store_dir()),
        recent_alerts: match control.engine().cluster() {
            Some(c) => crate::cluster::alerts::recent_for_status(c, RECENT_ALERTS)
                .await
                .unwrap_or_else(|| control.recent_alerts()),
            None => control.recent_alerts(),
        },
        health: control.engine().health().report(),
        cluster: match control.engine().cluster() {
            Some(c) => cluster_nodes(c).await,
            None => None,
        },
    }
}

/// How many alerts the page and `/api/status` show from the cluster's list.
const RECENT_ALERTS: usize = 50;

/// The nodes, if the cluster database answers within a second (the page
/// must not hang on a database that does not).
async fn cluster_nodes(c: &crate::cluster::Cluster) -> Option<Vec<crate::cluster::nodes::NodeRow>> {
    if !c.is_online() {
        return None;
    }
    let list = crate::cluster::nodes::list(c, c.settings().heartbeat);
    tokio::time::timeout(std::time::Duration::from_secs(1), list)
        .await
        .ok()?
        .ok()
}

fn tls_hour(control: &Control) -> TlsHour {
    let minutes = control.engine().metrics().last_hour();
    let total = |c: TlsClass| minutes.get(c as usize).map_or(0, |m| m.iter().sum());
    let per_5_minutes = (0..12)
        .map(|b| {
            let mut row = [0u64; 6];
            for (class, cell) in row.iter_mut().enumerate() {
                *cell = minutes
                    .get(class)
                    .map_or(0, |m| m.iter().skip(b * 5).take(5).sum());
            }
            row
        })
        .collect();
    TlsHour {
        inbound_tls: total(TlsClass::InboundTls),
        inbound_plain: total(TlsClass::InboundPlain),
        inbound_failed: total(TlsClass::InboundFailed),
        outbound_tls: total(TlsClass::OutboundTls),
        outbound_plain: total(TlsClass::OutboundPlain),
        outbound_failed: total(TlsClass::OutboundFailed),
        per_5_minutes,
    }
}

/// The store's certificates, soonest to expire first.
pub(crate) fn certificates(store_dir: &std::path::Path) -> Vec<CertificateView> {
    let Ok(store) = portcullis_certstore::Store::open(store_dir) else {
        return Vec::new();
    };
    let now = portcullis_certstore::Timestamp::now();
    let mut out: Vec<CertificateView> = store
        .list(30)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|e| {
            let leaf = e.chain.first()?;
            Some(CertificateView {
                name: e.name.clone(),
                subject: leaf
                    .common_name
                    .clone()
                    .unwrap_or_else(|| leaf.subject.clone()),
                not_after: leaf
                    .not_after
                    .to_system()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
                days_left: now.days_until(leaf.not_after),
                demo: e.demo,
            })
        })
        .collect();
    out.sort_by_key(|c| c.not_after);
    out
}
