//! Received TLS reports shared by the cluster: each node keeps the reports
//! it takes in in its own store (the inbox answers "accepted" once the
//! report is on its disk, never waiting for the database), and
//! [`ReceivedMirror`] copies them into `tlsrpt_received`, so that
//! `GET /api/tls-reports` and `portcullis tls-report list` on any node
//! show every node's reports. The local store is the durable buffer: a
//! report stored while the database is away is copied at a later poll.

use crate::cluster::Columns;
use std::collections::HashSet;

use portcullis_policy::TlsReport;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cluster::{Cluster, ClusterError};
use crate::tlsrpt_inbox::{ReportStore, StoredReport, with_report};

/// The copying task of one node.
#[derive(Debug)]
pub struct ReceivedMirror {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl ReceivedMirror {
    /// Copies the reports of the node's store (in the cluster's data
    /// directory) every poll interval.
    pub fn start(cluster: Cluster) -> ReceivedMirror {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(mirror(cluster, stopped));
        ReceivedMirror { stop, task }
    }

    /// Ends the task.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// The copying loop, until `stopped` turns true (for a caller that runs
/// its tasks under one stop signal).
pub async fn mirror(cluster: Cluster, mut stopped: watch::Receiver<bool>) {
    let store = ReportStore::at(&cluster.settings().data_dir);
    let mut copied = HashSet::new();
    let mut tick = tokio::time::interval(cluster.settings().poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.changed() => return,
        }
        if *stopped.borrow() {
            return;
        }
        // The link logs and alerts when the database is away.
        let _ = copy_new(&cluster, &store, &mut copied).await;
    }
}

/// Copies the reports of `store` not in `copied` (nor already in the
/// database) into the database; how many were added.
pub async fn copy_new(
    cluster: &Cluster,
    store: &ReportStore,
    copied: &mut HashSet<String>,
) -> Result<usize, ClusterError> {
    let listing = store.clone();
    let ids = tokio::task::spawn_blocking(move || listing.received_ids())
        .await
        .unwrap_or_default();
    let new: Vec<String> = ids.into_iter().filter(|i| !copied.contains(i)).collect();
    if new.is_empty() {
        return Ok(0);
    }
    let known: Vec<String> = {
        let new = new.clone();
        cluster
            .with(|client| async move {
                let rows = client
                    .query("SELECT id FROM tlsrpt_received WHERE id = ANY($1)", &[&new])
                    .await?;
                rows.iter().map(|r| r.col::<String>(0)).collect()
            })
            .await?
    };
    copied.extend(known.iter().cloned());
    let mut added = 0;
    for id in new.into_iter().filter(|i| !known.contains(i)) {
        let reading = store.clone();
        let read_id = id.clone();
        let Ok(Ok((stored, _))) =
            tokio::task::spawn_blocking(move || reading.report(&read_id)).await
        else {
            // Unreadable here: the local listing names it already.
            copied.insert(id);
            continue;
        };
        let json = serde_json::to_value(&stored)
            .map_err(|e| ClusterError::Invalid(format!("TLS report {id}: {e}")))?;
        let at = i64::try_from(stored.received_at).unwrap_or(i64::MAX);
        let node = cluster.node().to_owned();
        cluster
            .with(|client| async move {
                client
                    .execute(
                        "INSERT INTO tlsrpt_received (id, received_at, received_by, stored)
                         VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
                        &[&stored.id, &at, &node, &json],
                    )
                    .await?;
                Ok(())
            })
            .await?;
        copied.insert(id);
        added += 1;
    }
    Ok(added)
}

/// Every report in the database, oldest first, with the rows that do not
/// read (each with why).
pub async fn reports(
    cluster: &Cluster,
) -> Result<(Vec<(StoredReport, TlsReport)>, Vec<String>), ClusterError> {
    let rows = cluster
        .with(|client| async move {
            Ok(client
                .query(
                    "SELECT id, stored FROM tlsrpt_received ORDER BY received_at, id",
                    &[],
                )
                .await?)
        })
        .await?;
    let mut out = Vec::new();
    let mut damaged = Vec::new();
    for row in rows {
        let id: String = row.col(0)?;
        match serde_json::from_value::<StoredReport>(row.col(1)?)
            .map_err(|e| format!("not a stored report: {e}"))
            .and_then(with_report)
        {
            Ok(r) => out.push(r),
            Err(e) => damaged.push(format!("cluster database, tlsrpt_received {id}: {e}")),
        }
    }
    Ok((out, damaged))
}

/// One report from the database by id.
pub async fn report(cluster: &Cluster, id: &str) -> Result<Option<StoredReport>, ClusterError> {
    let id = id.to_owned();
    let row = cluster
        .with(|client| async move {
            Ok(client
                .query_opt("SELECT stored FROM tlsrpt_received WHERE id = $1", &[&id])
                .await?)
        })
        .await?;
    Ok(row.and_then(|r| serde_json::from_value(r.col(0).ok()?).ok()))
}
