//! The configuration every node shares: one TOML document per version in
//! the database (`cluster_config`), the newest in force. A node's local
//! file holds `[cluster]` and whatever must differ per node (listener
//! addresses, the admin listener, the data directory); its top-level keys
//! replace the shared document's. Each node keeps a copy of the newest
//! document it applied in its data directory, so it starts, and reloads,
//! with the database unreachable.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Cluster, ClusterError, Columns};
use crate::durable::write_atomically;

/// Where the copy is kept, under the data directory.
pub const COPY_FILE: &str = "cluster/shared-config.json";

/// One version of the shared configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedConfig {
    pub version: i64,
    pub document: String,
    /// The node (or `cluster init`) that imported it.
    pub imported_by: String,
}

/// The node's copy, `None` before the first one arrived.
pub fn read_copy(data_dir: &Path) -> Result<Option<SharedConfig>, String> {
    let path = data_dir.join(COPY_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            format!(
                "{}: not a copy of the shared configuration: {e}",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Replaces the node's copy.
pub fn write_copy(data_dir: &Path, shared: &SharedConfig) -> Result<(), String> {
    let path = data_dir.join(COPY_FILE);
    let fail = |e: &dyn std::fmt::Display| format!("cannot write {}: {e}", path.display());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| fail(&e))?;
    }
    let bytes = serde_json::to_vec_pretty(shared).map_err(|e| fail(&e))?;
    write_atomically(&path, &bytes, 0o600).map_err(|e| fail(&e))
}

/// Whether `local` (a node's file) joins a cluster, and if so its data
/// directory as written (`None`: the default). Text that is not TOML is
/// not a node file here; the normal load reports its syntax.
pub fn node_file(local: &str) -> Option<Option<PathBuf>> {
    let table: toml::Table = toml::from_str(local).ok()?;
    table.get("cluster")?;
    Some(
        table
            .get("data-dir")
            .and_then(|v| v.as_str())
            .map(PathBuf::from),
    )
}

/// The configuration a node runs: the shared document with the local
/// file's top-level keys in place of the shared ones.
pub fn merge(shared: &str, local: &str) -> Result<String, String> {
    let mut table: toml::Table = toml::from_str(shared)
        .map_err(|e| format!("the shared configuration is not TOML: {}", e.message()))?;
    let local: toml::Table = toml::from_str(local)
        .map_err(|e| format!("the node's file is not TOML: {}", e.message()))?;
    table.extend(local);
    toml::to_string(&table).map_err(|e| format!("cannot write the merged configuration: {e}"))
}

/// `document` without what only a node's own file may say (`[cluster]`).
pub fn shareable(document: &str) -> Result<String, String> {
    let mut table: toml::Table =
        toml::from_str(document).map_err(|e| format!("not TOML: {}", e.message()))?;
    if table.remove("cluster").is_none() {
        return Ok(document.to_owned());
    }
    toml::to_string(&table).map_err(|e| format!("cannot write the configuration: {e}"))
}

/// The newest shared configuration in the database.
pub async fn newest(cluster: &Cluster) -> Result<Option<SharedConfig>, ClusterError> {
    cluster
        .with(|client| async move {
            let row = client
                .query_opt(
                    "SELECT version, document, imported_by FROM cluster_config ORDER BY version DESC LIMIT 1",
                    &[],
                )
                .await?;
            row.map(|r| {
                Ok(SharedConfig {
                    version: r.col(0)?,
                    document: r.col(1)?,
                    imported_by: r.col(2)?,
                })
            })
            .transpose()
        })
        .await
}

/// Only the version number of the newest (what nodes poll for).
pub async fn newest_version(cluster: &Cluster) -> Result<i64, ClusterError> {
    cluster
        .with(|client| async move {
            let row = client
                .query_one(
                    "SELECT coalesce(max(version), 0)::bigint FROM cluster_config",
                    &[],
                )
                .await?;
            row.col(0)
        })
        .await
}

/// Stores `document` as the next version; returns it.
pub async fn publish(
    cluster: &Cluster,
    document: &str,
    imported_by: &str,
) -> Result<SharedConfig, ClusterError> {
    let document = shareable(document).map_err(ClusterError::Invalid)?;
    let by = imported_by.to_owned();
    cluster
        .with(|mut client| async move {
            let tx = client.transaction().await?;
            tx.execute("LOCK TABLE cluster_config IN EXCLUSIVE MODE", &[])
                .await?;
            let version: i64 = tx
                .query_one(
                    "SELECT coalesce(max(version), 0)::bigint + 1 FROM cluster_config",
                    &[],
                )
                .await?
                .col(0)?;
            tx.execute(
                "INSERT INTO cluster_config (version, document, imported_by) VALUES ($1, $2, $3)",
                &[&version, &document, &by],
            )
            .await?;
            tx.commit().await?;
            Ok(SharedConfig {
                version,
                document,
                imported_by: by,
            })
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_keys_replace_shared_ones() {
        let shared = "hostname = \"mx.example\"\n[[listener]]\nname = \"in\"\naddress = \"0.0.0.0:25\"\n[queue]\nlifetime-seconds = 60\n";
        let local = "data-dir = \"/var/lib/p1\"\n[[listener]]\nname = \"in\"\naddress = \"10.0.0.1:25\"\n[cluster]\ndatabase = \"postgres://u@db/p\"\nnode = \"n1\"\n";
        let merged: toml::Table = toml::from_str(&merge(shared, local).unwrap()).unwrap();
        assert_eq!(merged["hostname"].as_str(), Some("mx.example"));
        assert_eq!(
            merged["listener"][0]["address"].as_str(),
            Some("10.0.0.1:25")
        );
        assert_eq!(merged["queue"]["lifetime-seconds"].as_integer(), Some(60));
        assert_eq!(merged["cluster"]["node"].as_str(), Some("n1"));
        assert_eq!(node_file(local), Some(Some(PathBuf::from("/var/lib/p1"))));
        assert_eq!(node_file(shared), None);
    }

    #[test]
    fn cluster_section_is_never_shared() {
        let doc = shareable("hostname = \"a\"\n[cluster]\nnode = \"n1\"\n").unwrap();
        assert!(!doc.contains("cluster"), "{doc}");
    }

    #[test]
    fn copy_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_copy(dir.path()).unwrap(), None);
        let c = SharedConfig {
            version: 3,
            document: "hostname = \"a\"\n".into(),
            imported_by: "n1".into(),
        };
        write_copy(dir.path(), &c).unwrap();
        assert_eq!(read_copy(dir.path()).unwrap(), Some(c));
    }
}
