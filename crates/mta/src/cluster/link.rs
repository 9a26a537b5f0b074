//! Whether the cluster database is reachable, as the last exchange found
//! it. A change is one log line and one alert (raised when the database
//! goes away, cleared when it is back), not one per failed query.

use std::sync::Mutex;
use std::time::SystemTime;

use super::{Cluster, ClusterError};
use crate::alerts::{Alert, AlertClass, Severity};

const ALERT_KEY: &str = "cluster:database";

#[derive(Debug, Default)]
pub(super) struct Link {
    state: Mutex<State>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
enum State {
    /// Not tried yet.
    #[default]
    Unknown,
    Online,
    Offline {
        since: SystemTime,
    },
}

impl Link {
    pub(super) fn is_online(&self) -> bool {
        *self.lock() == State::Online
    }

    pub(super) fn up(&self, cluster: &Cluster) {
        let before = std::mem::replace(&mut *self.lock(), State::Online);
        if let State::Offline { since } = before {
            let down = SystemTime::now()
                .duration_since(since)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            cluster.log().line(format_args!(
                "cluster: database reachable again after {down} s; node {} catches up",
                cluster.node()
            ));
            cluster.alerts().raise(Alert::new(
                AlertClass::System,
                Severity::Info,
                ALERT_KEY,
                format!(
                    "Node {}: the cluster database is reachable again after {down} s. What the node counted and learned meanwhile is being sent; nothing to do.",
                    cluster.node()
                ),
            ));
        }
    }

    pub(super) fn down(&self, cluster: &Cluster, error: &ClusterError) {
        let mut state = self.lock();
        if matches!(*state, State::Offline { .. }) {
            return;
        }
        *state = State::Offline {
            since: SystemTime::now(),
        };
        drop(state);
        cluster.log().warn(format_args!(
            "cluster: {error}; node {} goes on with its last known configuration and state, keeps its counts locally and retries",
            cluster.node()
        ));
        cluster.alerts().raise(Alert::new(
            AlertClass::System,
            Severity::Critical,
            ALERT_KEY,
            format!(
                "Node {}: {error}. Mail keeps flowing: the node works from its last known configuration and keeps its TLS report counts locally until the database is back. Check the database server ({}) and the network to it.",
                cluster.node(),
                cluster.settings().database_shown
            ),
        ));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
