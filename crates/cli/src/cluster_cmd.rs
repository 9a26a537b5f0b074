//! `portcullis cluster init|join|status`: set up a node of a cluster of
//! gateways sharing one PostgreSQL database, and see the nodes. A node's
//! file holds `[cluster]` (the database and the node's name) and what
//! differs per node (listeners, admin listener, data directory); the rest
//! of the configuration is shared through the database.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use portcullis_mta::cluster::nodes::NodeRow;
use portcullis_mta::cluster::setup::{self, NodeFile};

use crate::Global;
use crate::output::{CmdResult, emit, finish, out};

/// The node's own file.
#[derive(Debug, Clone, clap::Args)]
pub struct NodeAt {
    /// This node's file: `[cluster]` and the per-node settings.
    #[arg(long, value_name = "FILE", env = "PORTCULLIS_CONFIG")]
    config: PathBuf,
    /// Use this data directory instead of the file's.
    #[arg(long, value_name = "DIR", env = "PORTCULLIS_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

/// Cluster commands.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Set up the cluster from its first node: create the tables in the
    /// database and store SHARED as the configuration every node runs
    /// (after checking this node can run it).
    ///
    /// Example: portcullis cluster init --config node1.toml shared.toml
    Init {
        /// The shared configuration (a whole configuration file; per-node
        /// keys in the node's file take precedence).
        shared: PathBuf,
        #[command(flatten)]
        at: NodeAt,
    },
    /// Set up another node: fetch the shared configuration into this
    /// node's data directory (after checking it can run it). Then start it
    /// with `portcullis run --config FILE`.
    Join {
        #[command(flatten)]
        at: NodeAt,
    },
    /// The nodes, their state, queue size and last heartbeat.
    Status {
        #[command(flatten)]
        at: NodeAt,
    },
}

/// Runs a `cluster` command.
pub fn run(global: &Global, cmd: ClusterCommand) -> ExitCode {
    finish(run_cmd(global.json, cmd))
}

fn run_cmd(json: bool, cmd: ClusterCommand) -> CmdResult {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    match cmd {
        ClusterCommand::Init { shared, at } => {
            let node = NodeFile::read(&at.config, at.data_dir)?;
            let text = std::fs::read_to_string(&shared)
                .map_err(|e| format!("cannot read {}: {e}", shared.display()))?;
            let name = shared.display().to_string();
            let stored = runtime.block_on(setup::init(&node, &text, &name))?;
            emit(json, &stored.version, || {
                format!(
                    "cluster initialised: {name} is the shared configuration (version {}); node {} can start with `portcullis run --config {}`; set up the others with `portcullis cluster join`",
                    stored.version,
                    node.cluster.node,
                    node.path.display()
                )
            })
        }
        ClusterCommand::Join { at } => {
            let node = NodeFile::read(&at.config, at.data_dir)?;
            let shared = runtime.block_on(setup::join(&node))?;
            emit(json, &shared.version, || {
                format!(
                    "node {} joined: shared configuration version {} (stored by {}) copied to {}; start it with `portcullis run --config {}`",
                    node.cluster.node,
                    shared.version,
                    shared.imported_by,
                    node.data_dir.display(),
                    node.path.display()
                )
            })
        }
        ClusterCommand::Status { at } => {
            let node = NodeFile::read(&at.config, at.data_dir)?;
            let (rows, version) = runtime.block_on(setup::status(&node))?;
            if json {
                return emit(
                    true,
                    &serde_json::json!({ "config_version": version, "nodes": rows }),
                    String::new,
                );
            }
            out(format_args!("{}", table(&rows, version)));
            Ok(())
        }
    }
}

pub(crate) fn table(rows: &[NodeRow], version: i64) -> String {
    let mut text = format!("shared configuration version {version}\n");
    text.push_str(&format!(
        "{:<20} {:<8} {:>8} {:>12} {:>7} {:<20} {:>5}\n",
        "NODE", "STATE", "QUEUED", "BYTES", "CONFIG", "LAST HEARTBEAT", "AGO"
    ));
    for r in rows {
        text.push_str(&format!(
            "{:<20} {:<8} {:>8} {:>12} {:>7} {:<20} {:>4}s\n",
            r.name,
            r.state,
            r.queue_messages,
            r.queue_bytes,
            r.config_version.map_or("-".into(), |v| v.to_string()),
            r.last_heartbeat,
            r.seconds_since_heartbeat
        ));
    }
    if rows.is_empty() {
        text.push_str("(no node has started yet)\n");
    }
    text
}
