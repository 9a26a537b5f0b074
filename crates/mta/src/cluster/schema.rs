//! The cluster database's schema, as numbered migrations applied at start
//! in order, each in one transaction under an advisory lock so that nodes
//! starting together do not apply one twice. A database whose schema is
//! newer than this build knows is refused: an older node must not write
//! rows a newer one reads differently.

use deadpool_postgres::Object;

use super::{ClusterError, Columns};

/// One migration: its number, a name for the log, the SQL.
pub(crate) struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration, oldest first; append, never edit a released one.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "configuration, nodes, MTA-STS policy cache",
        sql: "
        CREATE TABLE cluster_config (
            version     bigint PRIMARY KEY,
            document    text NOT NULL,
            imported_by text NOT NULL,
            imported_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE cluster_node (
            name           text PRIMARY KEY,
            state          text NOT NULL,
            queue_messages bigint NOT NULL DEFAULT 0,
            queue_bytes    bigint NOT NULL DEFAULT 0,
            config_version bigint,
            version        text NOT NULL,
            started_at     timestamptz NOT NULL,
            last_heartbeat timestamptz NOT NULL
        );
        CREATE TABLE sts_policy (
            domain     text PRIMARY KEY,
            policy_id  text NOT NULL,
            fetched_at bigint NOT NULL,
            policy     text NOT NULL,
            fetched_by text NOT NULL
        );
    ",
    },
    Migration {
        version: 2,
        name: "TLS-RPT counts summed over nodes, one sender per report, received reports",
        sql: "
        -- Counts per (day, policy domain, policy); the policy key (type,
        -- strings, MX patterns) is its JSON, compared as jsonb.
        CREATE TABLE tlsrpt_policy_count (
            day           date NOT NULL,
            policy_domain text NOT NULL,
            policy        jsonb NOT NULL,
            successful    bigint NOT NULL DEFAULT 0,
            failed        bigint NOT NULL DEFAULT 0,
            PRIMARY KEY (day, policy_domain, policy)
        );
        -- Failed sessions per failure key (result type and peers, JSON).
        CREATE TABLE tlsrpt_failure_count (
            day           date NOT NULL,
            policy_domain text NOT NULL,
            policy        jsonb NOT NULL,
            failure       jsonb NOT NULL,
            sessions      bigint NOT NULL DEFAULT 0,
            PRIMARY KEY (day, policy_domain, policy, failure)
        );
        -- One row per report (day, policy domain): where it went (the
        -- file store's sent_to) and which node holds the turn to send it.
        CREATE TABLE tlsrpt_report (
            day           date NOT NULL,
            policy_domain text NOT NULL,
            sent_to       text[] NOT NULL DEFAULT '{}',
            sender        text,
            sending_until timestamptz,
            PRIMARY KEY (day, policy_domain)
        );
        -- TLS reports received by any node (the stored report as JSON:
        -- id, received-at, source, report), so every node lists them all.
        CREATE TABLE tlsrpt_received (
            id          text PRIMARY KEY,
            received_at bigint NOT NULL,
            received_by text NOT NULL,
            stored      jsonb NOT NULL
        );
        -- Batches already added: a batch pushed again is skipped.
        CREATE TABLE tlsrpt_applied (
            batch      text PRIMARY KEY,
            node       text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now()
        );
    ",
    },
    Migration {
        version: 3,
        name: "never-downgrade memory, STARTTLS exemptions, alert claims and recent alerts, suspensions",
        sql: "
        CREATE TABLE never_downgrade (
            domain     text PRIMARY KEY,
            method     text NOT NULL,
            since      bigint NOT NULL,
            last       bigint NOT NULL,
            until      bigint NOT NULL,
            learned_by text NOT NULL
        );
        CREATE TABLE tls_exemption (
            host       text PRIMARY KEY,
            until      bigint NOT NULL,
            learned_by text NOT NULL
        );
        CREATE TABLE alert_claim (
            key         text PRIMARY KEY,
            node        text NOT NULL,
            claimed_at  bigint NOT NULL,
            claimed_end bigint NOT NULL
        );
        CREATE TABLE alert_recent (
            seq      bigserial PRIMARY KEY,
            node     text NOT NULL,
            id       text NOT NULL,
            at       bigint NOT NULL,
            class    text NOT NULL,
            severity text NOT NULL,
            key      text NOT NULL,
            text     text NOT NULL,
            repeats  integer NOT NULL
        );
        CREATE INDEX alert_recent_at ON alert_recent (at DESC, seq DESC);
        CREATE TABLE delivery_suspension (
            target text PRIMARY KEY,
            set_by text NOT NULL,
            set_at bigint NOT NULL
        );
    ",
    },
];

/// The newest schema this build knows.
pub fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Any constant unique to Portcullis: the lock nodes take to migrate.
const MIGRATION_LOCK: i64 = 0x706f_7274_6375_6c01;

/// Brings the schema up to [`latest`]; returns the migrations applied.
pub(crate) async fn migrate(client: &mut Object) -> Result<Vec<String>, ClusterError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS portcullis_schema (
            version    integer PRIMARY KEY,
            name       text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now()
        )",
    )
    .await?;
    let current: i32 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM portcullis_schema",
            &[],
        )
        .await?
        .col(0)?;
    if current > latest() {
        return Err(ClusterError::NewerSchema {
            database: current,
            known: latest(),
        });
    }
    let mut applied = Vec::new();
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        tx.batch_execute(m.sql).await?;
        tx.execute(
            "INSERT INTO portcullis_schema (version, name) VALUES ($1, $2)",
            &[&m.version, &m.name],
        )
        .await?;
        applied.push(format!("{} ({})", m.version, m.name));
    }
    tx.commit().await?;
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_one_by_one() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1, "{}", m.name);
        }
    }
}
