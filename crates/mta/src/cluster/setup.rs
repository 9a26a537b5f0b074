//! Setting a node up, for `portcullis cluster init|join|status`: read the
//! node's own file, connect, and store or fetch the shared configuration
//! after checking that this node can run it.

use std::path::{Path, PathBuf};

use super::nodes::{self, NodeRow};
use super::shared_config::{self, SharedConfig};
use super::{Cluster, ClusterSettings};
use crate::config::{ClusterConfig, ConfigOrigin};

/// A node's file: its `[cluster]` and where its data directory is.
#[derive(Debug, Clone)]
pub struct NodeFile {
    pub path: PathBuf,
    pub text: String,
    pub cluster: ClusterConfig,
    pub data_dir: PathBuf,
}

impl NodeFile {
    /// Reads `path`; `data_dir` replaces the file's `data-dir`.
    pub fn read(path: &Path, data_dir: Option<PathBuf>) -> Result<NodeFile, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let table: toml::Table = toml::from_str(&text)
            .map_err(|e| format!("{}: not TOML: {}", path.display(), e.message()))?;
        let cluster = table
            .get("cluster")
            .ok_or_else(|| {
                format!(
                    "{} has no [cluster] section: a node's file names the database (database = \"postgres://…\") and the node (node = \"…\")",
                    path.display()
                )
            })?
            .clone()
            .try_into::<ClusterConfig>()
            .map_err(|e| format!("{}: [cluster]: {}", path.display(), e.message()))?;
        let data_dir = data_dir
            .or_else(|| {
                table
                    .get("data-dir")
                    .and_then(|v| v.as_str())
                    .map(PathBuf::from)
            })
            .unwrap_or_else(crate::config::schema::default_data_dir);
        Ok(NodeFile {
            path: path.to_owned(),
            text,
            cluster,
            data_dir,
        })
    }

    /// A handle on the cluster database.
    pub fn connect(&self) -> Result<Cluster, String> {
        let settings = ClusterSettings::for_node(&self.cluster, &self.data_dir)?;
        Cluster::new(settings).map_err(|e| e.to_string())
    }

    /// Every check `portcullis run` would make of `shared` under this file.
    fn check(&self, shared: &str, name: &str) -> Result<(), String> {
        let merged = shared_config::merge(shared, &self.text)?;
        let origin = ConfigOrigin {
            data_dir: Some(self.data_dir.clone()),
            ..ConfigOrigin::default()
        };
        origin
            .parse(name, &merged)
            .map(|_| ())
            .map_err(|r| r.to_string())
    }
}

/// `cluster init`: stores `shared` as the cluster's first configuration.
pub async fn init(node: &NodeFile, shared: &str, name: &str) -> Result<SharedConfig, String> {
    node.check(shared, name)?;
    let cluster = node.connect()?;
    let current = shared_config::newest_version(&cluster)
        .await
        .map_err(|e| e.to_string())?;
    if current > 0 {
        return Err(format!(
            "the cluster at {} has a configuration already (version {current}): join it with `portcullis cluster join`, change it with `portcullis ctl config import`",
            cluster.settings().database_shown
        ));
    }
    let stored = shared_config::publish(&cluster, shared, cluster.node())
        .await
        .map_err(|e| e.to_string())?;
    shared_config::write_copy(&node.data_dir, &stored)?;
    Ok(stored)
}

/// `cluster join`: fetches the newest configuration into the node's data
/// directory after checking this node can run it.
pub async fn join(node: &NodeFile) -> Result<SharedConfig, String> {
    let cluster = node.connect()?;
    let shared = shared_config::newest(&cluster)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| {
            format!(
                "the cluster at {} has no configuration yet: run `portcullis cluster init` on the first node",
                cluster.settings().database_shown
            )
        })?;
    node.check(
        &shared.document,
        &format!(
            "{} over the cluster configuration version {}",
            node.path.display(),
            shared.version
        ),
    )?;
    shared_config::write_copy(&node.data_dir, &shared)?;
    Ok(shared)
}

/// `cluster status`: the nodes and the newest configuration version.
pub async fn status(node: &NodeFile) -> Result<(Vec<NodeRow>, i64), String> {
    let cluster = node.connect()?;
    let version = shared_config::newest_version(&cluster)
        .await
        .map_err(|e| e.to_string())?;
    let rows = nodes::list(&cluster, cluster.settings().heartbeat)
        .await
        .map_err(|e| e.to_string())?;
    Ok((rows, version))
}
