//! A cluster of gateways sharing one PostgreSQL database: the configuration,
//! what nodes learn about peers (MTA-STS policies, STARTTLS exemptions,
//! never-downgrade memory), TLS-RPT counts, alerts and node membership.
//! Each node keeps its own queue: a message is durable on the node that
//! answered `250`.
//!
//! The mail path never waits for the database. Every node keeps what it
//! needs in its data directory and in memory, as a single gateway does;
//! background tasks push what the node learns to the database and pull what
//! the others learned. When the database is unreachable the node goes on
//! from its last known state, keeps what it has to push, raises an alert,
//! and catches up when the database is back.
//!
//! - [`Cluster`]: the connection pool, the schema check and whether the
//!   database is reachable;
//! - `schema`: the numbered migrations;
//! - [`shared_config`]: the configuration document in the database and the
//!   node's local copy;
//! - [`nodes`]: heartbeats and `ctl cluster status`.

pub mod alerts;
pub mod learned;
mod link;
pub mod nodes;
pub(crate) mod schema;
mod settings;
pub mod setup;
pub mod shared_config;
pub(crate) mod sts_cache;
pub(crate) mod suspensions;
pub mod tlsrpt;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use link::Link;
pub use settings::ClusterSettings;

use crate::alerts::AlertSink;
use crate::maillog::MailLog;

/// What went wrong talking to the cluster database.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    #[error("the cluster database is unreachable: {0}")]
    Unreachable(String),
    #[error("the cluster database refused a query: {0}")]
    Query(String),
    #[error(
        "the cluster database has schema version {database}, newer than this portcullis knows ({known}): upgrade this node before it joins"
    )]
    NewerSchema { database: i32, known: i32 },
    #[error("{0}")]
    Invalid(String),
}

impl From<tokio_postgres::Error> for ClusterError {
    fn from(e: tokio_postgres::Error) -> Self {
        // A SQLSTATE means the server answered; anything else is the link.
        match e.code() {
            Some(_) => ClusterError::Query(e.to_string()),
            None => ClusterError::Unreachable(e.to_string()),
        }
    }
}

impl ClusterError {
    /// Whether this says the database could not be reached (as opposed to a
    /// refused query or a schema this build cannot use).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ClusterError::Unreachable(_))
    }
}

/// This node's handle on the cluster database. Cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    settings: ClusterSettings,
    pool: Pool,
    link: Link,
    migrated: tokio::sync::OnceCell<()>,
    alerts: OnceLock<AlertSink>,
    log: OnceLock<MailLog>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node", &self.inner.settings.node)
            .field("database", &self.inner.settings.database_shown)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// The pool for `settings`; connects lazily (no I/O here).
    pub fn new(settings: ClusterSettings) -> Result<Cluster, ClusterError> {
        let manager = match &settings.tls {
            Some(tls) => Manager::from_config(
                settings.database.clone(),
                tokio_postgres_rustls::MakeRustlsConnect::new((**tls).clone()),
                manager_config(),
            ),
            None => Manager::from_config(
                settings.database.clone(),
                tokio_postgres::NoTls,
                manager_config(),
            ),
        };
        let pool = Pool::builder(manager)
            .max_size(4)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(settings.timeout))
            .create_timeout(Some(settings.timeout))
            .recycle_timeout(Some(settings.timeout))
            .build()
            .map_err(|e| ClusterError::Invalid(format!("cluster database pool: {e}")))?;
        Ok(Cluster {
            inner: Arc::new(Inner {
                settings,
                pool,
                link: Link::default(),
                migrated: tokio::sync::OnceCell::new(),
                alerts: OnceLock::new(),
                log: OnceLock::new(),
            }),
        })
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.inner.settings.node
    }

    /// The settings it was made with.
    pub fn settings(&self) -> &ClusterSettings {
        &self.inner.settings
    }

    /// Where link changes are told (the mail log and the alerts); set once
    /// the alert service and the engine exist.
    pub fn attach(&self, alerts: AlertSink, log: MailLog) {
        let _ = self.inner.alerts.set(alerts);
        let _ = self.inner.log.set(log);
    }

    /// Whether the last exchange with the database worked.
    pub fn is_online(&self) -> bool {
        self.inner.link.is_online()
    }

    /// Runs `work` with a pooled connection, within the configured timeout,
    /// after the schema was brought up to date; records whether the
    /// database was reachable.
    pub async fn with<T, F, Fut>(&self, work: F) -> Result<T, ClusterError>
    where
        F: FnOnce(Object) -> Fut,
        Fut: std::future::Future<Output = Result<T, ClusterError>>,
    {
        let timeout = self.inner.settings.timeout;
        let result = match tokio::time::timeout(timeout * 2, async {
            let client = self.connection().await?;
            work(client).await
        })
        .await
        {
            Ok(r) => r,
            Err(_) => Err(ClusterError::Unreachable(format!(
                "no answer within {} s",
                (timeout * 2).as_secs()
            ))),
        };
        match &result {
            Ok(_) => self.inner.link.up(self),
            Err(e @ (ClusterError::Unreachable(_) | ClusterError::NewerSchema { .. })) => {
                self.inner.link.down(self, e)
            }
            Err(_) => {}
        }
        result
    }

    async fn connection(&self) -> Result<Object, ClusterError> {
        let mut client = self
            .inner
            .pool
            .get()
            .await
            .map_err(|e| ClusterError::Unreachable(pool_error(e)))?;
        self.inner
            .migrated
            .get_or_try_init(|| async {
                let applied = schema::migrate(&mut client).await?;
                if !applied.is_empty() {
                    self.log().line(format_args!(
                        "cluster: database schema migrated: {}",
                        applied.join(", ")
                    ));
                }
                Ok::<(), ClusterError>(())
            })
            .await?;
        Ok(client)
    }

    fn log(&self) -> MailLog {
        self.inner.log.get().cloned().unwrap_or_default()
    }

    fn alerts(&self) -> AlertSink {
        self.inner.alerts.get().cloned().unwrap_or_default()
    }
}

fn manager_config() -> ManagerConfig {
    ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    }
}

fn pool_error(e: deadpool_postgres::PoolError) -> String {
    match e {
        deadpool_postgres::PoolError::Backend(e) => e.to_string(),
        deadpool_postgres::PoolError::Timeout(_) => "no connection within the timeout".into(),
        other => other.to_string(),
    }
}

/// Reads columns of rows the way this build's schema wrote them; a column
/// of another type (a table changed behind the nodes' back) is a refused
/// query, never a panic.
pub(crate) trait Columns {
    fn col<'a, T: tokio_postgres::types::FromSql<'a>>(
        &'a self,
        i: usize,
    ) -> Result<T, ClusterError>;
}

impl Columns for tokio_postgres::Row {
    fn col<'a, T: tokio_postgres::types::FromSql<'a>>(
        &'a self,
        i: usize,
    ) -> Result<T, ClusterError> {
        self.try_get(i).map_err(|e| {
            ClusterError::Query(format!("column {i} is not what this portcullis wrote: {e}"))
        })
    }
}

/// Seconds as a duration, at least one.
pub(crate) fn seconds(n: u64) -> Duration {
    Duration::from_secs(n.max(1))
}
