//! Delivery suspensions for the whole cluster (`ctl suspend delivery
//! TARGET --cluster`): one row per target in `delivery_suspension`. The
//! operator's command writes the row (and so needs the database); every
//! node's learned-state sync reads the rows and applies them beside its own
//! suspensions ([`crate::engine::Engine::apply_cluster_suspensions`]),
//! keeping the last list read in its `suspended.json` for a start without
//! the database.

use crate::cluster::Columns;
use std::collections::BTreeMap;

use super::{Cluster, ClusterError};

/// Stores `target` (already in its canonical form); false if it was there.
pub(crate) async fn add(cluster: &Cluster, target: &str, at: u64) -> Result<bool, ClusterError> {
    let (target, node) = (target.to_owned(), cluster.node().to_owned());
    let at = i64::try_from(at).unwrap_or(i64::MAX);
    cluster
        .with(|client| async move {
            let n = client
                .execute(
                    "INSERT INTO delivery_suspension (target, set_by, set_at) VALUES ($1, $2, $3)
                     ON CONFLICT (target) DO NOTHING",
                    &[&target, &node, &at],
                )
                .await?;
            Ok(n == 1)
        })
        .await
}

/// Removes `target`; false if it was not there.
pub(crate) async fn remove(cluster: &Cluster, target: &str) -> Result<bool, ClusterError> {
    let target = target.to_owned();
    cluster
        .with(|client| async move {
            let n = client
                .execute(
                    "DELETE FROM delivery_suspension WHERE target = $1",
                    &[&target],
                )
                .await?;
            Ok(n == 1)
        })
        .await
}

/// Every cluster-wide suspension with the time it began.
pub(crate) async fn list(cluster: &Cluster) -> Result<BTreeMap<String, u64>, ClusterError> {
    cluster
        .with(|client| async move {
            let rows = client
                .query("SELECT target, set_at FROM delivery_suspension", &[])
                .await?;
            rows.iter()
                .map(|r| Ok((r.col::<String>(0)?, r.col::<i64>(1)?.max(0) as u64)))
                .collect()
        })
        .await
}

use crate::engine::Engine;
use crate::suspension::DeliveryTarget;

impl Engine {
    /// Suspends delivery to `target` on every node of the cluster: stored
    /// in the cluster database (which must be reachable: the operator is
    /// told otherwise), applied here at once and by the other nodes at
    /// their next poll. Kept until [`resume_delivery_in_cluster`](Self::resume_delivery_in_cluster).
    pub async fn suspend_delivery_in_cluster(&self, target: &str) -> Result<String, String> {
        let (cluster, t) = self.cluster_target(target)?;
        let now = crate::outbound::unix_now();
        let added = add(&cluster, &t, now).await.map_err(|e| not_stored(&e))?;
        let mut rows = self.inner.suspended.lock().await.cluster.clone();
        rows.entry(t.clone()).or_insert(now);
        let detail = self.apply_cluster_suspensions(rows).await?;
        let line = match added {
            true => format!(
                "delivery to {t} suspended on every node of the cluster (the others within their poll interval){}",
                detail.map(|d| format!(": here {d}")).unwrap_or_default()
            ),
            false => format!("delivery to {t} is already suspended cluster-wide"),
        };
        self.inner.log.line(format_args!("operator: {line}"));
        Ok(line)
    }

    /// Ends the cluster-wide suspension of `target`.
    pub async fn resume_delivery_in_cluster(&self, target: &str) -> Result<String, String> {
        let (cluster, t) = self.cluster_target(target)?;
        let removed = remove(&cluster, &t).await.map_err(|e| not_stored(&e))?;
        let mut rows = self.inner.suspended.lock().await.cluster.clone();
        // Not in the database but still here: another node resumed it and
        // this one has not polled since; end it here too.
        if rows.remove(&t).is_none() && !removed {
            return Err(format!("delivery to {t} is not suspended cluster-wide"));
        }
        let detail = self.apply_cluster_suspensions(rows).await?;
        let line = format!(
            "delivery to {t} resumed on every node of the cluster (the others within their poll interval){}",
            detail.map(|d| format!(": here {d}")).unwrap_or_default()
        );
        self.inner.log.line(format_args!("operator: {line}"));
        Ok(line)
    }

    fn cluster_target(&self, target: &str) -> Result<(Cluster, String), String> {
        let cluster = self
            .cluster()
            .cloned()
            .ok_or("this gateway is not in a cluster (no [cluster] section)")?;
        Ok((cluster, DeliveryTarget::parse(target)?.to_string()))
    }

    /// Makes `rows` the cluster-wide suspensions in force here (saved in
    /// `suspended.json`, handed to the scheduler); `None` when they were
    /// already, else what the scheduler did.
    pub(crate) async fn apply_cluster_suspensions(
        &self,
        rows: BTreeMap<String, u64>,
    ) -> Result<Option<String>, String> {
        let mut suspended = self.inner.suspended.lock().await;
        if suspended.cluster == rows {
            return Ok(None);
        }
        let before = std::mem::replace(&mut suspended.cluster, rows);
        suspended.save(&self.inner.data_dir)?;
        let detail = self.push_suspensions(&suspended).await?;
        let added: Vec<&String> = suspended
            .cluster
            .keys()
            .filter(|t| !before.contains_key(*t))
            .collect();
        let ended: Vec<&String> = before
            .keys()
            .filter(|t| !suspended.cluster.contains_key(*t))
            .collect();
        self.inner.log.line(format_args!(
            "cluster: delivery suspensions for the whole cluster now: {} (suspended: {:?}, resumed: {:?}); {detail}",
            match suspended.cluster.is_empty() {
                true => "none".to_owned(),
                false => suspended.cluster.keys().cloned().collect::<Vec<_>>().join(", "),
            },
            added,
            ended
        ));
        Ok(Some(detail))
    }
}

fn not_stored(e: &ClusterError) -> String {
    format!(
        "not stored in the cluster database ({e}); nothing changed. Retry when the database is reachable, or use `portcullis ctl suspend delivery TARGET` on each node"
    )
}
