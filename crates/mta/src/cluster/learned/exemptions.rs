//! The STARTTLS exemptions' share of the sync (see the parent module):
//! table `tls_exemption`, one row per host with the latest expiry any node
//! recorded. Hosts are stored as the operator sees them (`mx.example`,
//! `[192.0.2.1]`) and parsed back as `ctl tls exemptions clear` parses them.

use crate::cluster::Columns;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use portcullis_policy::{HopHost, TlsExemptions};

use super::{Changes, changes, db_secs, unix, unix_now};
use crate::cluster::{Cluster, ClusterError};
use crate::maillog::MailLog;

#[derive(Debug)]
pub(super) struct ExemptionSync {
    exemptions: Arc<Mutex<TlsExemptions>>,
    /// Host → expiry (seconds since the epoch) as the database last had it.
    base: BTreeMap<String, u64>,
}

impl ExemptionSync {
    pub(super) fn new(exemptions: Arc<Mutex<TlsExemptions>>) -> Self {
        ExemptionSync {
            exemptions,
            base: BTreeMap::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TlsExemptions> {
        self.exemptions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The exemptions in force at `now`, by host as text.
    fn snapshot(&self, now: u64) -> BTreeMap<String, u64> {
        self.lock()
            .entries()
            .map(|(h, until)| (h.to_string(), unix(until)))
            .filter(|(_, until)| *until > now)
            .collect()
    }

    pub(super) async fn sync(
        &mut self,
        cluster: &Cluster,
        log: &MailLog,
    ) -> Result<(), ClusterError> {
        let now = unix_now();
        let snapshot = self.snapshot(now);
        let todo = changes(&snapshot, &self.base, |until| *until <= now);
        if !todo.is_empty() {
            push(cluster, todo).await?;
            self.base = snapshot.clone();
        }
        let rows = pull(cluster).await?;
        self.adopt(&rows, &snapshot, log);
        self.base = rows;
        Ok(())
    }

    /// Replaces the exemptions with `rows`, except what changed here since
    /// `snapshot` (kept, with the later expiry of the two).
    fn adopt(&self, rows: &BTreeMap<String, u64>, snapshot: &BTreeMap<String, u64>, log: &MailLog) {
        let mut ex = self.lock();
        let current: BTreeMap<String, (HopHost, u64)> = ex
            .entries()
            .map(|(h, until)| (h.to_string(), (h.clone(), unix(until))))
            .collect();
        let mut next = TlsExemptions::new();
        for (host, until) in rows {
            if snapshot.contains_key(host) && !current.contains_key(host) {
                continue; // cleared here since the snapshot: deleted next round
            }
            match crate::outbound::parse_host(host) {
                Ok(h) => next.record(h, at(*until)),
                Err(e) => log.warn(format_args!("cluster: STARTTLS exemption row skipped: {e}")),
            }
        }
        for (text, (host, until)) in current {
            if snapshot.get(&text) != Some(&until) {
                next.record(host, at(until));
            }
        }
        next.purge(SystemTime::now());
        *ex = next;
    }
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

async fn push(cluster: &Cluster, todo: Changes<u64>) -> Result<(), ClusterError> {
    let node = cluster.node().to_owned();
    cluster
        .with(|mut client| async move {
            let tx = client.transaction().await?;
            for (host, until) in &todo.upserts {
                tx.execute(
                    "INSERT INTO tls_exemption (host, until, learned_by) VALUES ($1, $2, $3)
                     ON CONFLICT (host) DO UPDATE SET
                        learned_by = CASE WHEN EXCLUDED.until > tls_exemption.until
                                          THEN EXCLUDED.learned_by ELSE tls_exemption.learned_by END,
                        until = greatest(tls_exemption.until, EXCLUDED.until)",
                    &[host, &db_secs(*until), &node],
                )
                .await?;
            }
            for host in &todo.forgets {
                tx.execute("DELETE FROM tls_exemption WHERE host = $1", &[host])
                    .await?;
            }
            tx.execute(
                "DELETE FROM tls_exemption WHERE until <= $1",
                &[&db_secs(unix_now())],
            )
            .await?;
            tx.commit().await?;
            Ok(())
        })
        .await
}

async fn pull(cluster: &Cluster) -> Result<BTreeMap<String, u64>, ClusterError> {
    cluster
        .with(|client| async move {
            let rows = client
                .query(
                    "SELECT host, until FROM tls_exemption WHERE until > $1",
                    &[&db_secs(unix_now())],
                )
                .await?;
            rows.iter()
                .map(|r| Ok((r.col::<String>(0)?, r.col::<i64>(1)?.max(0) as u64)))
                .collect()
        })
        .await
}
