//! What nodes learn about peers, shared through the cluster database: the
//! never-downgrade memory (`memory.rs`) and the temporary STARTTLS
//! exemptions (`exemptions.rs`). Deliveries keep reading and writing the
//! in-memory sets as on a single gateway; one background task per node
//! reconciles them with the database every `cluster.settings().poll`:
//!
//! 1. what changed here since the last exchange (compared with the *base*,
//!    the set as the database last had it) is pushed: new or refreshed
//!    entries upserted keeping the stronger facts, entries the operator
//!    removed here deleted (entries that merely ended are left to expire);
//! 2. every row is pulled and replaces the set, except what changed here
//!    meanwhile, which is kept and pushed at the next round;
//! 3. the rows become the new base.
//!
//! When the database is unreachable nothing is lost: the base stays, so
//! the next round pushes everything learned or forgotten meanwhile. The
//! never-downgrade base is kept in the data directory beside the memory's
//! own file, so that holds across a restart too; exemptions live in memory
//! only (as on a single gateway), and so does their base.
//!
//! With an engine ([`Learned::with_engine`]) the same round also applies
//! the cluster-wide delivery suspensions (`cluster/suspensions.rs`).

mod exemptions;
mod memory;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use portcullis_policy::TlsExemptions;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Cluster, ClusterError};
use crate::maillog::MailLog;
use crate::never_downgrade::NeverDowngrade;

/// What changed locally since the base: entries to upsert, keys to delete.
#[derive(Debug)]
struct Changes<V> {
    upserts: Vec<(String, V)>,
    forgets: Vec<String>,
}

impl<V> Changes<V> {
    fn is_empty(&self) -> bool {
        self.upserts.is_empty() && self.forgets.is_empty()
    }
}

/// `local` against `base`: entries new or different here are upserts;
/// entries of the base missing here are forgets unless `ended` says they
/// merely ran out.
fn changes<V: PartialEq + Clone>(
    local: &BTreeMap<String, V>,
    base: &BTreeMap<String, V>,
    ended: impl Fn(&V) -> bool,
) -> Changes<V> {
    Changes {
        upserts: local
            .iter()
            .filter(|(k, v)| base.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        forgets: base
            .iter()
            .filter(|(k, v)| !local.contains_key(*k) && !ended(v))
            .map(|(k, _)| k.clone())
            .collect(),
    }
}

/// Seconds since the epoch, now.
fn unix_now() -> u64 {
    unix(std::time::SystemTime::now())
}

fn unix(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A stored count of seconds (PostgreSQL `bigint`).
fn db_secs(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// This node's learned state and its bases.
#[derive(Debug)]
pub struct Learned {
    cluster: Cluster,
    memory: memory::MemorySync,
    exemptions: exemptions::ExemptionSync,
    log: MailLog,
    engine: Option<crate::engine::Engine>,
}

impl Learned {
    /// The node's never-downgrade memory and exemptions (the same `Arc`s
    /// the delivery contexts hold across reloads).
    pub fn new(
        cluster: Cluster,
        memory: Arc<NeverDowngrade>,
        exemptions: Arc<Mutex<TlsExemptions>>,
        log: MailLog,
    ) -> Learned {
        let memory = memory::MemorySync::open(&cluster.settings().data_dir, memory, &log);
        Learned {
            cluster,
            memory,
            exemptions: exemptions::ExemptionSync::new(exemptions),
            log,
            engine: None,
        }
    }

    /// Also applies the cluster-wide delivery suspensions to `engine`.
    pub fn with_engine(mut self, engine: crate::engine::Engine) -> Learned {
        self.engine = Some(engine);
        self
    }

    async fn sync_suspensions(&self) -> Result<(), ClusterError> {
        let Some(engine) = &self.engine else {
            return Ok(());
        };
        let rows = super::suspensions::list(&self.cluster).await?;
        if let Err(e) = engine.apply_cluster_suspensions(rows).await {
            self.log.warn(format_args!(
                "cluster: node {}: cluster-wide delivery suspensions not applied: {e}",
                self.cluster.node()
            ));
        }
        Ok(())
    }

    /// One round for both sets. An unreachable database is the link's to
    /// report (once per outage); other failures are logged here.
    pub async fn sync_once(&mut self) -> Result<(), ClusterError> {
        let memory = self.memory.sync(&self.cluster, &self.log).await;
        let exemptions = self.exemptions.sync(&self.cluster, &self.log).await;
        let suspensions = self.sync_suspensions().await;
        for e in [&memory, &exemptions, &suspensions]
            .into_iter()
            .flat_map(|r| r.as_ref().err())
        {
            if !e.is_unreachable() {
                self.log.warn(format_args!(
                    "cluster: node {}: sharing learned state: {e}; retried at the next poll",
                    self.cluster.node()
                ));
            }
        }
        memory.and(exemptions).and(suspensions)
    }
}

/// The running sync task; [`LearnedSync::stop`] ends it.
#[derive(Debug)]
pub struct LearnedSync {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl LearnedSync {
    /// Starts the task: one round at once, then one every poll interval.
    pub fn start(learned: Learned) -> LearnedSync {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(learned, stopped));
        LearnedSync { stop, task }
    }

    /// Ends the task (a round in progress is finished first, within the
    /// cluster timeout).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Starts the sync for a running engine (for `Running::start`): its
/// never-downgrade memory, exemptions and delivery suspensions; `None`
/// when the engine has no delivery context (shutting down).
pub fn start(cluster: Cluster, engine: &crate::engine::Engine) -> Option<LearnedSync> {
    let (memory, exemptions) = engine.learned_state()?;
    let log = engine.mail_log().clone();
    Some(LearnedSync::start(
        Learned::new(cluster, memory, exemptions, log).with_engine(engine.clone()),
    ))
}

async fn run(mut learned: Learned, mut stopped: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(learned.cluster.settings().poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.changed() => return,
        }
        let _ = learned.sync_once().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_new_or_different_entries_and_removed_ones_not_ended() {
        let base: BTreeMap<String, u64> = [("a", 10), ("b", 10), ("c", 5), ("d", 10)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        let local: BTreeMap<String, u64> = [("a", 10), ("b", 20), ("e", 10)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        let c = changes(&local, &base, |until| *until <= 5);
        assert_eq!(c.upserts, vec![("b".into(), 20), ("e".into(), 10)]);
        assert_eq!(c.forgets, vec!["d".to_owned()], "c ended, not forgotten");
    }
}
