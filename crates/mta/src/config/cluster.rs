//! `[cluster]`: this node's link to the cluster's PostgreSQL database. The
//! section lives only in the node's local file (with the other per-node
//! settings such as listener addresses); everything else comes from the
//! configuration shared in the database.

use serde::{Deserialize, Serialize};

/// `[cluster]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ClusterConfig {
    /// The database: `postgres://USER:PASSWORD@HOST:PORT/DATABASE`.
    pub database: String,
    /// This node's name, unique in the cluster (logs, alerts, `ctl cluster
    /// status`).
    pub node: String,
    /// `required` (default): TLS to the database, its certificate checked
    /// against the CA lists enabled in the certificate store; `off`: plain
    /// TCP (a database on loopback or a private link only).
    #[serde(default)]
    pub database_tls: DatabaseTls,
    /// How often the node looks for a new shared configuration and for what
    /// other nodes learned. Default 2.
    #[serde(default = "default_poll")]
    pub poll_seconds: u64,
    /// How often the node writes its heartbeat. Default 5; a node silent
    /// for three heartbeats is shown as `silent`.
    #[serde(default = "default_heartbeat")]
    pub heartbeat_seconds: u64,
    /// How long one connection attempt or query may take before the
    /// database counts as unreachable. Default 5.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
}

/// TLS to the database.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatabaseTls {
    #[default]
    Required,
    Off,
}

fn default_poll() -> u64 {
    2
}

fn default_heartbeat() -> u64 {
    5
}

fn default_timeout() -> u64 {
    5
}
