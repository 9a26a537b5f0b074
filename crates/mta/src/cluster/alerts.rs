//! One alert per event for the whole cluster. Before its alert service
//! delivers a notice, a node claims the notice's key in the database for
//! the de-duplication window (the database's clock, so nodes' clocks need
//! not agree); when several nodes raise the same key within the window only
//! the first delivers, and its text names it. The winner also adds the
//! notice to `alert_recent`, which every node's status page reads.
//!
//! When the database cannot be reached the node delivers itself (a
//! duplicate is better than a lost alert) and adds the notice to the shared
//! list once it is back. The cluster-database alert is never claimed: each
//! node says for itself that it lost the database.

use crate::cluster::Columns;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Cluster, ClusterError};
use crate::alerts::{Alert, AlertClass, Notice, Severity};

/// The key each node raises for itself (see `cluster/link.rs`).
pub(crate) const OWN_KEY: &str = "cluster:database";

/// Most notices kept for the shared list while the database is away (the
/// oldest are dropped from it; they stay in the node's own list).
const MAX_BACKLOG: usize = 200;

/// Rows kept in `alert_recent` (far more than any status page shows).
const KEEP_SHARED: i64 = 1000;

/// Who delivers a notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Claim {
    /// This node: it claimed the key (the notice is in the shared list).
    Mine,
    /// Another node claimed the key within the window.
    Taken { node: String },
    /// This node, without a claim: the database is unreachable (the
    /// notice waits in the backlog for the shared list), or each node
    /// sends this notice for itself.
    Local,
}

/// Claims `notice` for this node for `window`; `backlog` (notices this
/// node delivered without the database) goes to the shared list first.
/// Notices the database did not take are left in `backlog`.
pub(crate) async fn claim(
    cluster: &Cluster,
    notice: &Notice,
    window: Duration,
    backlog: &mut Vec<Notice>,
) -> Claim {
    let own = notice.alert.key == OWN_KEY;
    let node = cluster.node().to_owned();
    let late = std::mem::take(backlog);
    let late_copy = late.clone();
    let this = notice.clone();
    let window = i64::try_from(window.as_secs().max(1)).unwrap_or(i64::MAX);
    let result = cluster
        .with(|mut client| async move {
            let tx = client.transaction().await?;
            for n in &late {
                record(&tx, &node, n).await?;
            }
            let claim = if own {
                record(&tx, &node, &this).await?;
                Claim::Local
            } else {
                let won = tx
                    .query_opt(
                        "INSERT INTO alert_claim (key, node, claimed_at, claimed_end)
                         VALUES ($1, $2, extract(epoch FROM now())::bigint,
                                 extract(epoch FROM now())::bigint + $3)
                         ON CONFLICT (key) DO UPDATE SET
                            node = EXCLUDED.node, claimed_at = EXCLUDED.claimed_at,
                            claimed_end = EXCLUDED.claimed_end
                         WHERE alert_claim.claimed_end <= EXCLUDED.claimed_at
                         RETURNING node",
                        &[&this.alert.key, &node, &window],
                    )
                    .await?;
                if won.is_some() {
                    record(&tx, &node, &this).await?;
                    Claim::Mine
                } else {
                    let holder = tx
                        .query_opt(
                            "SELECT node FROM alert_claim WHERE key = $1",
                            &[&this.alert.key],
                        )
                        .await?
                        .map(|r| r.col::<String>(0))
                        .transpose()?
                        .unwrap_or_default();
                    Claim::Taken { node: holder }
                }
            };
            tx.commit().await?;
            Ok(claim)
        })
        .await;
    match result {
        Ok(claim) => claim,
        Err(_) => {
            // Unreachable or refused: deliver here, share the record later.
            *backlog = late_copy;
            backlog.push(notice.clone());
            let excess = backlog.len().saturating_sub(MAX_BACKLOG);
            backlog.drain(..excess);
            Claim::Local
        }
    }
}

async fn record(
    tx: &deadpool_postgres::Transaction<'_>,
    node: &str,
    n: &Notice,
) -> Result<(), ClusterError> {
    tx.execute(
        "INSERT INTO alert_recent (node, id, at, class, severity, key, text, repeats)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            &node,
            &n.id,
            &i64::try_from(n.at).unwrap_or(i64::MAX),
            &n.alert.class.as_str(),
            &n.alert.severity.as_str(),
            &n.alert.key,
            &n.alert.text,
            &i32::try_from(n.repeats).unwrap_or(i32::MAX),
        ],
    )
    .await?;
    tx.execute(
        "DELETE FROM alert_recent WHERE seq <= (SELECT seq FROM alert_recent ORDER BY seq DESC OFFSET $1 LIMIT 1)",
        &[&KEEP_SHARED],
    )
    .await?;
    Ok(())
}

/// The text a cluster node delivers: naming the node (the cluster-database
/// alert names it already).
pub(crate) fn naming_node(node: &str, mut notice: Notice) -> Notice {
    if notice.alert.key != OWN_KEY {
        notice.alert.text = format!("node {node}: {}", notice.alert.text);
    }
    notice
}

/// One alert of the shared recent list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterNotice {
    /// The node that delivered it.
    pub node: String,
    #[serde(flatten)]
    pub notice: Notice,
}

/// The cluster's `limit` most recent alerts, newest first (for the status
/// page and `ctl alerts` of any node).
pub async fn recent(cluster: &Cluster, limit: usize) -> Result<Vec<ClusterNotice>, ClusterError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    cluster
        .with(|client| async move {
            let rows = client
                .query(
                    "SELECT node, id, at, class, severity, key, text, repeats
                     FROM alert_recent ORDER BY at DESC, seq DESC LIMIT $1",
                    &[&limit],
                )
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(ClusterNotice {
                        node: r.col(0)?,
                        notice: Notice {
                            id: r.col(1)?,
                            at: r.col::<i64>(2)?.max(0) as u64,
                            alert: Alert {
                                class: AlertClass::parse(r.col(3)?).unwrap_or(AlertClass::System),
                                severity: Severity::parse(r.col(4)?).unwrap_or(Severity::Warning),
                                key: r.col(5)?,
                                text: r.col(6)?,
                            },
                            repeats: r.col::<i32>(7)?.max(0) as u32,
                        },
                    })
                })
                .collect()
        })
        .await
}

/// How long the status page waits for the shared list before it shows the
/// node's own.
const STATUS_WAIT: Duration = Duration::from_secs(1);

/// The shared recent list as the status page and `/api/status` show alerts
/// (newest first, each notice's fields plus `node`); `None` when the
/// database is not reachable now, for the caller to show the node's own
/// list (`Control::recent_alerts`) instead.
pub async fn recent_for_status(cluster: &Cluster, limit: usize) -> Option<Vec<serde_json::Value>> {
    if !cluster.is_online() {
        return None;
    }
    let list = tokio::time::timeout(STATUS_WAIT, recent(cluster, limit))
        .await
        .ok()?
        .ok()?;
    Some(
        list.iter()
            .filter_map(|n| serde_json::to_value(n).ok())
            .collect(),
    )
}
