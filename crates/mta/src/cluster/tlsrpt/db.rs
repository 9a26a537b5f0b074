//! The TLS-RPT tables of migration 2: counts added batch by batch (each
//! batch once, by its id in `tlsrpt_applied`), read back summed over every
//! node; one row per report with where it went (`sent_to`) and which node
//! holds the turn to send it (`sender`, `sending_until`).
//!
//! The turn is a lease rather than an advisory lock held while sending:
//! a report goes out over SMTP or HTTPS, which may take longer than the
//! cluster's query timeout, and a pooled connection must not be held for
//! it. The claim itself runs under `pg_try_advisory_xact_lock` on the
//! report's key, so a node that finds another claiming gives the report up
//! for this round instead of waiting; the lease then keeps the others away
//! until the sender records the result or its lease runs out (a node that
//! died while sending).

use crate::cluster::Columns;
use std::collections::BTreeMap;
use std::time::Duration;

use super::outbox::Batch;
use crate::cluster::{Cluster, ClusterError};
use crate::tlsrpt::counts::{DomainDay, FailureKey, PolicyCounts, PolicyKey};
use crate::tlsrpt::day::UtcDay;
use crate::tlsrpt::store::StoredDay;

/// Who may send a report now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Turn {
    /// This node: the addresses that already took the report.
    Mine { sent_to: Vec<String> },
    /// Another node (named when known) is sending it.
    Elsewhere(Option<String>),
    /// The database has no such report.
    Unknown,
}

fn json<T: serde::Serialize>(v: &T) -> Result<serde_json::Value, ClusterError> {
    serde_json::to_value(v).map_err(|e| ClusterError::Invalid(format!("TLS-RPT counts: {e}")))
}

fn big(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn small(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Adds `batch` to the sums unless its id was added before; whether it was
/// added now.
pub async fn apply(cluster: &Cluster, batch: &Batch) -> Result<bool, ClusterError> {
    let node = cluster.node().to_owned();
    let batch = batch.clone();
    cluster
        .with(|mut client| async move {
            let tx = client.transaction().await?;
            let fresh = tx
                .execute(
                    "INSERT INTO tlsrpt_applied (batch, node) VALUES ($1, $2)
                     ON CONFLICT (batch) DO NOTHING",
                    &[&batch.id, &node],
                )
                .await?;
            if fresh == 0 {
                tx.commit().await?;
                return Ok(false);
            }
            // Rows in one order on every node: concurrent batches wait for
            // each other instead of deadlocking.
            for (day, domain, counts) in &batch.days {
                let day = day.to_string();
                tx.execute(
                    "INSERT INTO tlsrpt_report (day, policy_domain) VALUES ($1::text::date, $2)
                     ON CONFLICT (day, policy_domain) DO NOTHING",
                    &[&day, domain],
                )
                .await?;
                for (policy, c) in &counts.policies {
                    let policy = json(policy)?;
                    tx.execute(
                        "INSERT INTO tlsrpt_policy_count
                             (day, policy_domain, policy, successful, failed)
                         VALUES ($1::text::date, $2, $3, $4, $5)
                         ON CONFLICT (day, policy_domain, policy) DO UPDATE SET
                             successful = tlsrpt_policy_count.successful + EXCLUDED.successful,
                             failed = tlsrpt_policy_count.failed + EXCLUDED.failed",
                        &[&day, domain, &policy, &big(c.successful), &big(c.failed)],
                    )
                    .await?;
                    for (failure, n) in &c.failures {
                        tx.execute(
                            "INSERT INTO tlsrpt_failure_count
                                 (day, policy_domain, policy, failure, sessions)
                             VALUES ($1::text::date, $2, $3, $4, $5)
                             ON CONFLICT (day, policy_domain, policy, failure) DO UPDATE SET
                                 sessions = tlsrpt_failure_count.sessions + EXCLUDED.sessions",
                            &[&day, domain, &policy, &json(failure)?, &big(*n)],
                        )
                        .await?;
                    }
                }
            }
            tx.commit().await?;
            Ok(true)
        })
        .await
}

/// Forgets batch ids older than `keep`: a batch is pushed again only while
/// its file is still in an outbox, minutes or days, never months.
pub async fn forget_applied(cluster: &Cluster, keep: Duration) -> Result<u64, ClusterError> {
    let secs = keep.as_secs_f64();
    cluster
        .with(|client| async move {
            Ok(client
                .execute(
                    "DELETE FROM tlsrpt_applied
                     WHERE applied_at < now() - make_interval(secs => $1::float8)",
                    &[&secs],
                )
                .await?)
        })
        .await
}

/// Days from `from` on with a report not yet `finished` (its `sent_to`
/// holds none of those markers), oldest first.
pub async fn days(
    cluster: &Cluster,
    from: UtcDay,
    finished: &[&str],
) -> Result<Vec<UtcDay>, ClusterError> {
    let from = from.to_string();
    let finished: Vec<String> = finished.iter().map(|s| (*s).to_owned()).collect();
    let rows = cluster
        .with(|client| async move {
            Ok(client
                .query(
                    "SELECT DISTINCT to_char(day, 'YYYY-MM-DD') AS d FROM tlsrpt_report
                     WHERE day >= $1::text::date AND NOT (sent_to && $2::text[])
                     ORDER BY d",
                    &[&from, &finished],
                )
                .await?)
        })
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| UtcDay::parse(r.col::<&str>(0).ok()?).ok())
        .collect())
}

/// The policy domains with a report for `day`, without those `finished`.
pub async fn domains(
    cluster: &Cluster,
    day: UtcDay,
    finished: &[&str],
) -> Result<Vec<String>, ClusterError> {
    let day = day.to_string();
    let finished: Vec<String> = finished.iter().map(|s| (*s).to_owned()).collect();
    let rows = cluster
        .with(|client| async move {
            Ok(client
                .query(
                    "SELECT policy_domain FROM tlsrpt_report
                     WHERE day = $1::text::date AND NOT (sent_to && $2::text[])
                     ORDER BY policy_domain",
                    &[&day, &finished],
                )
                .await?)
        })
        .await?;
    rows.iter().map(|r| r.col::<String>(0)).collect()
}

/// Takes the turn to send the report of `domain` for `day` for `lease`,
/// unless another node holds it.
pub async fn claim(
    cluster: &Cluster,
    day: UtcDay,
    domain: &str,
    lease: Duration,
) -> Result<Turn, ClusterError> {
    let node = cluster.node().to_owned();
    let (day, domain) = (day.to_string(), domain.to_owned());
    let secs = lease.as_secs_f64();
    cluster
        .with(|mut client| async move {
            let tx = client.transaction().await?;
            let locked: bool = tx
                .query_one(
                    "SELECT pg_try_advisory_xact_lock(hashtext('portcullis tlsrpt'),
                                                      hashtext($1 || ' ' || $2))",
                    &[&day, &domain],
                )
                .await?
                .col(0)?;
            if !locked {
                return Ok(Turn::Elsewhere(None));
            }
            let mine = tx
                .query_opt(
                    "UPDATE tlsrpt_report
                     SET sender = $3, sending_until = now() + make_interval(secs => $4::float8)
                     WHERE day = $1::text::date AND policy_domain = $2
                       AND (sending_until IS NULL OR sending_until < now() OR sender = $3)
                     RETURNING sent_to",
                    &[&day, &domain, &node, &secs],
                )
                .await?;
            let turn = match mine {
                Some(row) => Turn::Mine {
                    sent_to: row.col(0)?,
                },
                None => match tx
                    .query_opt(
                        "SELECT sender FROM tlsrpt_report
                         WHERE day = $1::text::date AND policy_domain = $2",
                        &[&day, &domain],
                    )
                    .await?
                {
                    Some(row) => Turn::Elsewhere(row.col(0)?),
                    None => Turn::Unknown,
                },
            };
            tx.commit().await?;
            Ok(turn)
        })
        .await
}

/// Gives the turn back (the result is recorded; any node may go on).
pub async fn release(cluster: &Cluster, day: UtcDay, domain: &str) -> Result<(), ClusterError> {
    let node = cluster.node().to_owned();
    let (day, domain) = (day.to_string(), domain.to_owned());
    cluster
        .with(|client| async move {
            client
                .execute(
                    "UPDATE tlsrpt_report SET sending_until = NULL
                     WHERE day = $1::text::date AND policy_domain = $2 AND sender = $3",
                    &[&day, &domain, &node],
                )
                .await?;
            Ok(())
        })
        .await
}

/// The summed counts and `sent_to` of the report of `domain` for `day`.
pub async fn load(
    cluster: &Cluster,
    day: UtcDay,
    domain: &str,
) -> Result<Option<StoredDay>, ClusterError> {
    let (day, domain) = (day.to_string(), domain.to_owned());
    cluster
        .with(|client| async move {
            let Some(report) = client
                .query_opt(
                    "SELECT sent_to FROM tlsrpt_report
                     WHERE day = $1::text::date AND policy_domain = $2",
                    &[&day, &domain],
                )
                .await?
            else {
                return Ok(None);
            };
            let mut policies: BTreeMap<PolicyKey, PolicyCounts> = BTreeMap::new();
            for row in client
                .query(
                    "SELECT policy, successful, failed FROM tlsrpt_policy_count
                     WHERE day = $1::text::date AND policy_domain = $2",
                    &[&day, &domain],
                )
                .await?
            {
                let c = policies.entry(policy_key(row.col(0)?)?).or_default();
                c.successful = c.successful.saturating_add(small(row.col(1)?));
                c.failed = c.failed.saturating_add(small(row.col(2)?));
            }
            for row in client
                .query(
                    "SELECT policy, failure, sessions FROM tlsrpt_failure_count
                     WHERE day = $1::text::date AND policy_domain = $2",
                    &[&day, &domain],
                )
                .await?
            {
                let failure: FailureKey = serde_json::from_value(row.col(1)?).map_err(|e| {
                    ClusterError::Invalid(format!(
                        "tlsrpt_failure_count of {domain} on {day}: unreadable failure key: {e}"
                    ))
                })?;
                let c = policies.entry(policy_key(row.col(0)?)?).or_default();
                let n = c.failures.entry(failure).or_default();
                *n = n.saturating_add(small(row.col(2)?));
            }
            Ok(Some(StoredDay {
                counts: DomainDay { policies },
                sent_to: report.col(0)?,
            }))
        })
        .await
}

fn policy_key(v: serde_json::Value) -> Result<PolicyKey, ClusterError> {
    serde_json::from_value(v)
        .map_err(|e| ClusterError::Invalid(format!("TLS-RPT counts: unreadable policy key: {e}")))
}

/// Records that `rua` took the report of `domain` for `day`.
pub async fn mark_sent(
    cluster: &Cluster,
    day: UtcDay,
    domain: &str,
    rua: &str,
) -> Result<(), ClusterError> {
    let (day, domain, rua) = (day.to_string(), domain.to_owned(), rua.to_owned());
    cluster
        .with(|client| async move {
            client
                .execute(
                    "INSERT INTO tlsrpt_report (day, policy_domain, sent_to)
                     VALUES ($1::text::date, $2, ARRAY[$3::text])
                     ON CONFLICT (day, policy_domain) DO UPDATE SET
                         sent_to = CASE WHEN $3 = ANY(tlsrpt_report.sent_to)
                                   THEN tlsrpt_report.sent_to
                                   ELSE array_append(tlsrpt_report.sent_to, $3) END",
                    &[&day, &domain, &rua],
                )
                .await?;
            Ok(())
        })
        .await
}
