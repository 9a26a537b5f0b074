//! Node membership: each node writes a heartbeat row (state, queue size,
//! the shared configuration version it runs) every few seconds; `ctl
//! cluster status` and the status page list the rows. A node that stopped
//! says so; one that went quiet without stopping shows as `silent`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Cluster, ClusterError, Columns};

/// What a node reports about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    /// `running` or `stopped`.
    pub state: &'static str,
    pub queue_messages: u64,
    pub queue_bytes: u64,
    /// The shared configuration version in force (`None`: none yet).
    pub config_version: Option<i64>,
}

/// One node as `ctl cluster status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRow {
    pub name: String,
    /// `running`, `stopped`, or `silent` (no heartbeat for three intervals).
    pub state: String,
    pub queue_messages: u64,
    pub queue_bytes: u64,
    pub config_version: Option<i64>,
    pub version: String,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub last_heartbeat: String,
    pub seconds_since_heartbeat: u64,
}

/// Writes this node's row.
pub async fn beat(
    cluster: &Cluster,
    started_at: i64,
    beat: &Heartbeat,
) -> Result<(), ClusterError> {
    let node = cluster.node().to_owned();
    let beat = beat.clone();
    cluster
        .with(|client| async move {
            client
                .execute(
                    "INSERT INTO cluster_node
                        (name, state, queue_messages, queue_bytes, config_version, version, started_at, last_heartbeat)
                     VALUES ($1, $2, $3, $4, $5, $6, to_timestamp($7), now())
                     ON CONFLICT (name) DO UPDATE SET
                        state = EXCLUDED.state, queue_messages = EXCLUDED.queue_messages,
                        queue_bytes = EXCLUDED.queue_bytes, config_version = EXCLUDED.config_version,
                        version = EXCLUDED.version, started_at = EXCLUDED.started_at,
                        last_heartbeat = now()",
                    &[
                        &node,
                        &beat.state,
                        &clamp(beat.queue_messages),
                        &clamp(beat.queue_bytes),
                        &beat.config_version,
                        &env!("CARGO_PKG_VERSION"),
                        &(started_at as f64),
                    ],
                )
                .await?;
            Ok(())
        })
        .await
}

/// Every node, by name; `heartbeat` is the interval nodes beat at.
pub async fn list(cluster: &Cluster, heartbeat: Duration) -> Result<Vec<NodeRow>, ClusterError> {
    let silent_after = (heartbeat.as_secs() * 3) as i64;
    cluster
        .with(|client| async move {
            let rows = client
                .query(
                    "SELECT name, state, queue_messages, queue_bytes, config_version, version,
                            to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                            to_char(last_heartbeat AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                            greatest(0, extract(epoch FROM now() - last_heartbeat))::bigint
                     FROM cluster_node ORDER BY name",
                    &[],
                )
                .await?;
            rows.iter()
                .map(|r| {
                    let since: i64 = r.col(8)?;
                    let state: String = r.col(1)?;
                    Ok(NodeRow {
                        name: r.col(0)?,
                        state: if state == "running" && since > silent_after {
                            "silent".into()
                        } else {
                            state
                        },
                        queue_messages: r.col::<i64>(2)?.max(0) as u64,
                        queue_bytes: r.col::<i64>(3)?.max(0) as u64,
                        config_version: r.col(4)?,
                        version: r.col(5)?,
                        started_at: r.col(6)?,
                        last_heartbeat: r.col(7)?,
                        seconds_since_heartbeat: since.max(0) as u64,
                    })
                })
                .collect()
        })
        .await
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
