//! `GET /api/cluster` (`portcullis ctl cluster status`): this node's name,
//! whether the cluster database answers, the newest shared configuration
//! version and every node's heartbeat row.

use axum::http::{HeaderMap, StatusCode};
use serde_json::json;

use super::api::{ApiError, ApiResult, Peer, St, caller, ok};
use super::tokens::Role;
use crate::cluster::{nodes, shared_config};

pub(super) async fn status(
    axum::extract::State(s): St,
    peer: axum::Extension<Peer>,
    h: HeaderMap,
) -> ApiResult {
    caller(&s, peer.0.0, &h, Role::Read, "GET /api/cluster")?;
    let Some(cluster) = s.control.engine().cluster() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "this gateway is not a cluster node (no [cluster] in its file)",
        ));
    };
    let unavailable = |e: crate::cluster::ClusterError| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("node {}: {e}", cluster.node()),
        )
    };
    let version = shared_config::newest_version(cluster)
        .await
        .map_err(unavailable)?;
    let rows = nodes::list(cluster, cluster.settings().heartbeat)
        .await
        .map_err(unavailable)?;
    ok(json!({ "node": cluster.node(), "config_version": version, "nodes": rows }))
}
