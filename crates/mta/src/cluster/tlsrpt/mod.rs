//! TLS-RPT in a cluster: every node's session counts summed in the
//! database, each report sent once. A flush writes the node's counts as a
//! batch into its outbox ([`outbox`], in the data directory: the mail path
//! and the flush never wait for the database); [`ClusterReports::push`]
//! drains the outbox into the database, one transaction per batch that
//! also records the batch id, so nothing is lost while the database is
//! away and nothing is added twice. Sending takes a turn per report
//! ([`db::claim`]) and records where the report went in the database
//! ([`db::mark_sent`]), which every node reads.

pub mod db;
pub mod outbox;
pub mod received;

use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};

use tokio::sync::Mutex as AsyncMutex;

use super::{Cluster, ClusterError};
use crate::maillog::MailLog;
use crate::tlsrpt::counts::Pending;
use crate::tlsrpt::day::UtcDay;
use crate::tlsrpt::store::{AggregateStore, FileStore, StoreError};
use outbox::{Outbox, outbox_dir};

/// How long applied batch ids are kept (see [`db::forget_applied`]).
const KEEP_APPLIED: Duration = Duration::from_secs(60 * 86_400);

/// A node's TLS-RPT link to the cluster.
#[derive(Debug)]
pub struct ClusterReports {
    cluster: Cluster,
    outbox: Outbox,
    log: MailLog,
    /// One drain at a time (the pusher, the report round and shutdown).
    pushing: AsyncMutex<()>,
}

impl ClusterReports {
    /// The outbox in the cluster's data directory.
    pub fn new(cluster: Cluster, log: MailLog) -> ClusterReports {
        let outbox = Outbox::new(outbox_dir(&cluster.settings().data_dir), cluster.node());
        ClusterReports {
            cluster,
            outbox,
            log,
            pushing: AsyncMutex::new(()),
        }
    }

    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// Where this link's problems are told.
    pub fn log(&self) -> &MailLog {
        &self.log
    }

    /// Writes `pending` to the outbox as one batch, durably; its id.
    pub fn add(&self, pending: &Pending) -> Result<String, StoreError> {
        self.outbox.put(pending)
    }

    /// Moves the counts of a single gateway's file store (`store_dir`,
    /// from before this node joined the cluster) from `from` on into the
    /// outbox, so the cluster's reports include them; reports already
    /// sent (`finished`) stay where they are. Each file becomes a batch
    /// whose id is derived from the file's bytes, then is renamed
    /// `….json.in-cluster`: a crash in between moves it again under the
    /// same id, which the database skips. How many files were moved.
    pub fn adopt_local(
        &self,
        store_dir: &Path,
        from: UtcDay,
        finished: &[&str],
    ) -> Result<usize, StoreError> {
        let local = FileStore::new(store_dir);
        let mut moved = 0;
        for day in local.days()?.into_iter().filter(|d| *d >= from) {
            for domain in local.domains(day)? {
                let path = store_dir
                    .join(day.to_string())
                    .join(format!("{domain}.json"));
                let bytes = std::fs::read(&path).map_err(|source| StoreError::Io {
                    path: path.clone(),
                    source,
                })?;
                let Some(stored) = local.load(day, &domain)? else {
                    continue;
                };
                if stored
                    .sent_to
                    .iter()
                    .any(|s| finished.contains(&s.as_str()))
                {
                    continue;
                }
                let digest: String = Sha256::digest(&bytes)
                    .iter()
                    .take(8)
                    .map(|b| format!("{b:02x}"))
                    .collect();
                let id = format!("{}.local.{day}.{domain}.{digest}", self.cluster.node());
                let mut pending = Pending::new();
                pending.insert((day, domain.clone()), stored.counts);
                self.outbox.put_as(Some(id), &pending)?;
                let mut aside = path.clone().into_os_string();
                aside.push(".in-cluster");
                std::fs::rename(&path, &aside).map_err(|source| StoreError::Io {
                    path: path.clone(),
                    source,
                })?;
                self.log.line(format_args!(
                    "TLS reports: counts of {domain} for {day} from {} moved to the cluster",
                    path.display()
                ));
                moved += 1;
            }
        }
        Ok(moved)
    }

    /// Whether batches wait in the outbox.
    pub fn waiting(&self) -> Result<usize, StoreError> {
        self.outbox.waiting().map(|w| w.len())
    }

    /// Adds every waiting batch to the database, oldest first, and deletes
    /// each once the database has it; stops at the first batch the
    /// database does not take (it stays for the next push). The number
    /// of batches that left the outbox.
    pub async fn push(&self) -> Result<usize, ClusterError> {
        let _one = self.pushing.lock().await;
        let waiting = self.outbox.waiting().map_err(|e| {
            let e = ClusterError::Invalid(e.to_string());
            self.log.warn(format_args!("TLS reports: {e}"));
            e
        })?;
        let mut done = 0;
        for path in waiting {
            let batch = match self.outbox.read(&path) {
                Ok(b) => b,
                Err(e) => {
                    // Damaged: moved aside by read, named here.
                    self.log.warn(format_args!("TLS reports: {e}"));
                    continue;
                }
            };
            match db::apply(&self.cluster, &batch).await {
                Ok(fresh) => {
                    if !fresh {
                        self.log.line(format_args!(
                            "TLS reports: batch {} was already in the cluster database (its acknowledgement was lost); not added again",
                            batch.id
                        ));
                    }
                }
                Err(e) => {
                    if !e.is_unreachable() {
                        self.log.warn(format_args!(
                            "TLS reports: batch {} ({}) not added to the cluster database: {e}; kept and retried",
                            batch.id,
                            path.display()
                        ));
                    }
                    return Err(e);
                }
            }
            if let Err(e) = self.outbox.remove(&path) {
                // Applied: pushing it again is skipped by its id.
                self.log.warn(format_args!("TLS reports: {e}"));
            }
            done += 1;
        }
        if done > 0 {
            let _ = db::forget_applied(&self.cluster, KEEP_APPLIED).await;
        }
        Ok(done)
    }
}
