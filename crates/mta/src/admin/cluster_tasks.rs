//! A cluster node's own background work: its heartbeat row (state, queue
//! size, configuration version) and the watch for a new shared
//! configuration, which it copies to the data directory and applies like
//! a reload. Neither waits on the mail path, and both ride out a database
//! that is away (the cluster link logs and alerts once).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::control::Control;
use crate::cluster::Cluster;
use crate::cluster::nodes::{self, Heartbeat};
use crate::cluster::shared_config;

/// How long the last heartbeat (`stopped`) may take at shutdown.
const LAST_BEAT_WAIT: Duration = Duration::from_secs(3);

/// The running tasks; [`ClusterTasks::stop`] ends them.
#[derive(Debug)]
pub(crate) struct ClusterTasks {
    cluster: Cluster,
    control: Arc<Control>,
    started_at: i64,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl ClusterTasks {
    /// Starts them for `control`'s node; imports from now on go to the
    /// cluster.
    pub(crate) fn start_for(cluster: Cluster, control: &Arc<Control>) -> ClusterTasks {
        control.attach_cluster(cluster.clone());
        let control = control.clone();
        let started_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let (stop, stopped) = watch::channel(false);
        let tasks = vec![
            tokio::spawn(heartbeats(
                cluster.clone(),
                control.clone(),
                started_at,
                stopped.clone(),
            )),
            tokio::spawn(configuration_watch(
                cluster.clone(),
                control.clone(),
                stopped.clone(),
            )),
            tokio::spawn(crate::cluster::tlsrpt::received::mirror(
                cluster.clone(),
                stopped,
            )),
        ];
        ClusterTasks {
            cluster,
            control,
            started_at,
            stop,
            tasks,
        }
    }

    /// Ends both tasks and tells the cluster this node stopped.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        let beat = heartbeat(&self.control, "stopped").await;
        let _ = tokio::time::timeout(
            LAST_BEAT_WAIT,
            nodes::beat(&self.cluster, self.started_at, &beat),
        )
        .await;
    }
}

async fn heartbeat(control: &Control, state: &'static str) -> Heartbeat {
    let queue = control.engine().queue_summary();
    let data_dir = control.running().await.config.data_dir;
    Heartbeat {
        state,
        queue_messages: queue.messages as u64,
        queue_bytes: queue.bytes,
        config_version: shared_config::read_copy(&data_dir)
            .ok()
            .flatten()
            .map(|c| c.version),
    }
}

async fn heartbeats(
    cluster: Cluster,
    control: Arc<Control>,
    started_at: i64,
    mut stopped: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(cluster.settings().heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.changed() => return,
        }
        let beat = heartbeat(&control, "running").await;
        // A failure is the link's to report (once per outage).
        let _ = nodes::beat(&cluster, started_at, &beat).await;
    }
}

async fn configuration_watch(
    cluster: Cluster,
    control: Arc<Control>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(cluster.settings().poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The newest version tried here, applied or refused: a version this
    // node refused is not retried every poll.
    let mut tried = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.changed() => return,
        }
        if let Err(e) = apply_newer(&cluster, &control, &mut tried).await {
            control
                .engine()
                .mail_log()
                .warn(format_args!("cluster: {e}"));
        }
    }
}

/// Applies the newest shared configuration if this node runs an older one.
async fn apply_newer(cluster: &Cluster, control: &Control, tried: &mut i64) -> Result<(), String> {
    let data_dir = control.running().await.config.data_dir;
    let running = shared_config::read_copy(&data_dir)?.map_or(0, |c| c.version);
    let newest = match shared_config::newest_version(cluster).await {
        Ok(v) => v,
        // Unreachable: the link said so once; keep the configuration.
        Err(e) if e.is_unreachable() => return Ok(()),
        Err(e) => return Err(e.to_string()),
    };
    if newest <= running || newest <= *tried {
        return Ok(());
    }
    let Some(shared) = shared_config::newest(cluster)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(());
    };
    *tried = shared.version;
    let previous = shared_config::read_copy(&data_dir)?;
    shared_config::write_copy(&data_dir, &shared)?;
    let log = control.engine().mail_log().clone();
    match control.reload().await {
        Ok(_) => {
            log.line(format_args!(
                "cluster: configuration version {} (stored by {}) applied on node {}",
                shared.version,
                shared.imported_by,
                cluster.node()
            ));
            Ok(())
        }
        Err(failure) => {
            // Keep the copy this node runs, so a restart runs it too.
            if let Some(p) = previous {
                shared_config::write_copy(&data_dir, &p)?;
            }
            Err(format!(
                "configuration version {} (stored by {}) refused on node {}: {}; it keeps version {running}",
                shared.version,
                shared.imported_by,
                cluster.node(),
                failure.error
            ))
        }
    }
}
