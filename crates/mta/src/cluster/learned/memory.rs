//! The never-downgrade memory's share of the sync (see the parent module):
//! table `never_downgrade`, base kept in `<data-dir>/cluster-never-downgrade-base.json`
//! so that what was learned or forgotten while the database was away is
//! pushed even after a restart.

use crate::cluster::Columns;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Changes, changes, db_secs, unix_now};
use crate::cluster::{Cluster, ClusterError};
use crate::maillog::MailLog;
use crate::never_downgrade::{AuthMethod, NeverDowngrade, Remembered};

/// The base's file name in the data directory.
pub(crate) const BASE_FILE: &str = "cluster-never-downgrade-base.json";

#[derive(Debug)]
pub(super) struct MemorySync {
    memory: Arc<NeverDowngrade>,
    base: BTreeMap<String, Remembered>,
    base_path: PathBuf,
}

impl MemorySync {
    /// Reads the base left by the last run (missing or damaged: empty, so
    /// everything here is pushed again, which the upsert makes harmless).
    pub(super) fn open(data_dir: &Path, memory: Arc<NeverDowngrade>, log: &MailLog) -> Self {
        let base_path = data_dir.join(BASE_FILE);
        let base = match std::fs::read(&base_path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                log.warn(format_args!(
                    "cluster: {} is not a valid never-downgrade base ({e}); this node's whole memory is pushed again",
                    base_path.display()
                ));
                BTreeMap::new()
            }),
            Err(_) => BTreeMap::new(),
        };
        MemorySync {
            memory,
            base,
            base_path,
        }
    }

    pub(super) async fn sync(
        &mut self,
        cluster: &Cluster,
        log: &MailLog,
    ) -> Result<(), ClusterError> {
        let (now, snapshot) = self.memory.snapshot();
        let todo = changes(&snapshot, &self.base, |r| r.until <= now);
        if !todo.is_empty() {
            push(cluster, todo).await?;
            self.set_base(snapshot.clone(), log);
        }
        let rows = pull(cluster).await?;
        if let Err(e) = self.memory.adopt(&rows, &snapshot) {
            log.warn(format_args!("cluster: {e}"));
        }
        self.set_base(rows, log);
        Ok(())
    }

    fn set_base(&mut self, base: BTreeMap<String, Remembered>, log: &MailLog) {
        if base == self.base {
            return;
        }
        self.base = base;
        let written = serde_json::to_vec(&self.base)
            .map_err(std::io::Error::other)
            .and_then(|bytes| crate::durable::write_atomically(&self.base_path, &bytes, 0o600));
        if let Err(e) = written {
            log.warn(format_args!(
                "cluster: cannot write {} ({e}); after a restart this node pushes its whole never-downgrade memory again",
                self.base_path.display()
            ));
        }
    }
}

async fn push(cluster: &Cluster, todo: Changes<Remembered>) -> Result<(), ClusterError> {
    let node = cluster.node().to_owned();
    cluster
        .with(|mut client| async move {
            let tx = client.transaction().await?;
            for (domain, r) in &todo.upserts {
                tx.execute(
                    "INSERT INTO never_downgrade (domain, method, since, last, until, learned_by)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (domain) DO UPDATE SET
                        method = CASE WHEN EXCLUDED.last > never_downgrade.last
                                      THEN EXCLUDED.method ELSE never_downgrade.method END,
                        learned_by = CASE WHEN EXCLUDED.last > never_downgrade.last
                                      THEN EXCLUDED.learned_by ELSE never_downgrade.learned_by END,
                        since = least(never_downgrade.since, EXCLUDED.since),
                        last = greatest(never_downgrade.last, EXCLUDED.last),
                        until = greatest(never_downgrade.until, EXCLUDED.until)",
                    &[
                        domain,
                        &r.method.as_str(),
                        &db_secs(r.since),
                        &db_secs(r.last),
                        &db_secs(r.until),
                        &node,
                    ],
                )
                .await?;
            }
            for domain in &todo.forgets {
                tx.execute("DELETE FROM never_downgrade WHERE domain = $1", &[domain])
                    .await?;
            }
            tx.execute(
                "DELETE FROM never_downgrade WHERE until <= $1",
                &[&db_secs(unix_now())],
            )
            .await?;
            tx.commit().await?;
            Ok(())
        })
        .await
}

async fn pull(cluster: &Cluster) -> Result<BTreeMap<String, Remembered>, ClusterError> {
    cluster
        .with(|client| async move {
            let rows = client
                .query(
                    "SELECT domain, method, since, last, until FROM never_downgrade WHERE until > $1",
                    &[&db_secs(unix_now())],
                )
                .await?;
            let mut out = BTreeMap::new();
            for r in &rows {
                let Some(method) = method(r.col(1)?) else {
                    continue;
                };
                let secs = |i: usize| r.col::<i64>(i).map(|n| n.max(0) as u64);
                out.insert(
                    r.col::<String>(0)?,
                    Remembered {
                        method,
                        since: secs(2)?,
                        last: secs(3)?,
                        until: secs(4)?,
                    },
                );
            }
            Ok(out)
        })
        .await
}

/// A stored method; one a newer build wrote and this one does not know is
/// skipped (that node keeps it, this one does not apply it).
fn method(name: &str) -> Option<AuthMethod> {
    [AuthMethod::Dane, AuthMethod::MtaSts, AuthMethod::Pkix]
        .into_iter()
        .find(|m| m.as_str() == name)
}
