//! The MTA-STS policy cache shared by the nodes: a policy one node fetched
//! is stored with its TXT id and fetch time, and a node about to fetch the
//! same id takes it from here instead. Asked only while the database is
//! reachable, and briefly: a slow database costs a delivery at most
//! [`LOOKUP_WAIT`], after which the node fetches the policy itself.

use std::time::Duration;

use super::{Cluster, Columns};

/// How long a delivery waits for the shared cache before fetching itself.
pub(crate) const LOOKUP_WAIT: Duration = Duration::from_secs(1);

/// A policy as another node fetched it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SharedPolicy {
    /// Seconds since the Unix epoch.
    pub fetched_at: u64,
    /// The policy file's text.
    pub policy: String,
    pub fetched_by: String,
}

/// The policy of `domain` fetched under TXT id `id`, if a node stored one.
pub(crate) async fn lookup(cluster: &Cluster, domain: &str, id: &str) -> Option<SharedPolicy> {
    if !cluster.is_online() {
        return None;
    }
    let (domain, id) = (domain.to_owned(), id.to_owned());
    let query = cluster.with(|client| async move {
        let row = client
            .query_opt(
                "SELECT fetched_at, policy, fetched_by FROM sts_policy WHERE domain = $1 AND policy_id = $2",
                &[&domain, &id],
            )
            .await?;
        row.map(|r| {
            Ok(SharedPolicy {
                fetched_at: r.col::<i64>(0)?.max(0) as u64,
                policy: r.col(1)?,
                fetched_by: r.col(2)?,
            })
        })
        .transpose()
    });
    tokio::time::timeout(LOOKUP_WAIT, query)
        .await
        .ok()
        .and_then(Result::ok)
        .flatten()
}

/// Stores a policy this node fetched, in the background (a newer fetch of
/// the domain replaces an older one; an older never replaces a newer).
pub(crate) fn publish(cluster: &Cluster, domain: &str, id: &str, fetched_at: u64, policy: &str) {
    let cluster = cluster.clone();
    let (domain, id, policy) = (domain.to_owned(), id.to_owned(), policy.to_owned());
    let at = i64::try_from(fetched_at).unwrap_or(i64::MAX);
    tokio::spawn(async move {
        let node = cluster.node().to_owned();
        let _ = cluster
            .with(|client| async move {
                client
                    .execute(
                        "INSERT INTO sts_policy (domain, policy_id, fetched_at, policy, fetched_by)
                         VALUES ($1, $2, $3, $4, $5)
                         ON CONFLICT (domain) DO UPDATE SET
                            policy_id = EXCLUDED.policy_id, fetched_at = EXCLUDED.fetched_at,
                            policy = EXCLUDED.policy, fetched_by = EXCLUDED.fetched_by
                         WHERE sts_policy.fetched_at <= EXCLUDED.fetched_at",
                        &[&domain, &id, &at, &policy, &node],
                    )
                    .await?;
                Ok(())
            })
            .await;
    });
}
