//! Where the report task keeps its aggregates: a single gateway's
//! [`AggregateStore`] (local files), or, in a cluster, the node's outbox
//! and the database's sums ([`ClusterReports`]). The report task asks the
//! same questions of both; only a cluster has turns (another node may be
//! sending a report) and a push before sending.

use std::sync::Arc;
use std::time::Duration;

use super::counts::Pending;
use super::day::UtcDay;
use super::store::{AggregateStore, StoredDay};
use crate::cluster::tlsrpt::ClusterReports;
use crate::cluster::tlsrpt::db::{self, Turn as DbTurn};

/// How long a node holds the turn to send a report: longer than sending
/// one domain's report to all its addresses takes; a node that dies while
/// sending leaves it to the others after this.
const SENDING_LEASE: Duration = Duration::from_secs(3600);

#[derive(Debug)]
pub(crate) enum Backend {
    Local(Arc<dyn AggregateStore>),
    Cluster(Arc<ClusterReports>),
}

/// Whether this node sends a report now.
pub(crate) enum Turn {
    /// Yes: the counts and the addresses that took it already.
    Send(StoredDay),
    /// Nothing counted for it.
    Nothing,
    /// Another node is sending it (named when known).
    Elsewhere(Option<String>),
}

impl Backend {
    /// Adds the counts durably; those that could not be written, each
    /// with why (the caller keeps them for the next flush).
    pub(crate) fn add(&self, pending: Pending) -> Vec<(Pending, String)> {
        match self {
            Backend::Local(store) => {
                let mut failed = Vec::new();
                for ((day, domain), counts) in pending {
                    if let Err(e) = store.add(day, &domain, &counts) {
                        let mut one = Pending::new();
                        let why = format!("counts of {domain} for {day} not stored ({e})");
                        one.insert((day, domain), counts);
                        failed.push((one, why));
                    }
                }
                failed
            }
            Backend::Cluster(c) => match c.add(&pending) {
                Ok(_) => Vec::new(),
                Err(e) => vec![(pending, format!("counts not written to the outbox ({e})"))],
            },
        }
    }

    /// Before a sending round: a cluster node pushes its outbox, so that
    /// the report it may send has this node's counts.
    pub(crate) async fn before_sending(&self) {
        if let Backend::Cluster(c) = self {
            let _ = c.push().await;
        }
    }

    /// Days with reports, from `from` on, oldest first (a cluster leaves
    /// out the days whose reports are all `finished`).
    pub(crate) async fn days(
        &self,
        from: UtcDay,
        finished: &[&str],
    ) -> Result<Vec<UtcDay>, String> {
        match self {
            Backend::Local(store) => store
                .days()
                .map(|d| d.into_iter().filter(|d| *d >= from).collect())
                .map_err(|e| e.to_string()),
            Backend::Cluster(c) => db::days(c.cluster(), from, finished)
                .await
                .map_err(|e| e.to_string()),
        }
    }

    /// The policy domains with a report for `day` (a cluster leaves out
    /// the `finished` ones).
    pub(crate) async fn domains(
        &self,
        day: UtcDay,
        finished: &[&str],
    ) -> Result<Vec<String>, String> {
        match self {
            Backend::Local(store) => store.domains(day).map_err(|e| e.to_string()),
            Backend::Cluster(c) => db::domains(c.cluster(), day, finished)
                .await
                .map_err(|e| e.to_string()),
        }
    }

    /// Takes the turn to send the report of `domain` for `day`.
    pub(crate) async fn take_turn(&self, day: UtcDay, domain: &str) -> Result<Turn, String> {
        match self {
            Backend::Local(store) => match store.load(day, domain) {
                Ok(Some(s)) => Ok(Turn::Send(s)),
                Ok(None) => Ok(Turn::Nothing),
                Err(e) => Err(e.to_string()),
            },
            Backend::Cluster(c) => {
                let cluster = c.cluster();
                match db::claim(cluster, day, domain, SENDING_LEASE).await {
                    Ok(DbTurn::Mine { .. }) => match db::load(cluster, day, domain).await {
                        Ok(Some(s)) => Ok(Turn::Send(s)),
                        Ok(None) => {
                            let _ = db::release(cluster, day, domain).await;
                            Ok(Turn::Nothing)
                        }
                        Err(e) => {
                            let _ = db::release(cluster, day, domain).await;
                            Err(e.to_string())
                        }
                    },
                    Ok(DbTurn::Elsewhere(node)) => Ok(Turn::Elsewhere(node)),
                    Ok(DbTurn::Unknown) => Ok(Turn::Nothing),
                    Err(e) => Err(e.to_string()),
                }
            }
        }
    }

    /// Gives the turn back once the results are recorded.
    pub(crate) async fn end_turn(&self, day: UtcDay, domain: &str) {
        if let Backend::Cluster(c) = self {
            let _ = db::release(c.cluster(), day, domain).await;
        }
    }

    /// Records that `rua` took the report.
    pub(crate) async fn mark_sent(
        &self,
        day: UtcDay,
        domain: &str,
        rua: &str,
    ) -> Result<(), String> {
        match self {
            Backend::Local(store) => store.mark_sent(day, domain, rua).map_err(|e| e.to_string()),
            Backend::Cluster(c) => db::mark_sent(c.cluster(), day, domain, rua)
                .await
                .map_err(|e| format!("TLS report store (cluster database): {e}")),
        }
    }

    /// At shutdown: one push of what the last flush wrote (what the
    /// database does not take now waits in the outbox for the next start).
    pub(crate) async fn last_push(&self) {
        if let Backend::Cluster(c) = self {
            let _ = c.push().await;
        }
    }
}
