//! Idle outbound connections kept for the next message to the same hop
//! under the same decision, so a burst to one destination pays one TCP
//! connection and one TLS handshake, not one per message.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::connect::Open;
use crate::maillog::Dcid;

/// The idle connections, keyed by the hop plan's pool key (address, host,
/// STARTTLS and authentication demands). An idle connection is closed with
/// QUIT after [`IDLE`].
#[derive(Debug, Default)]
pub(crate) struct Pool {
    next: AtomicU64,
    idle: Mutex<HashMap<String, Vec<IdleConnection>>>,
}

/// Pool entry: its id (for the idle timer), the connection id, the connection.
type IdleConnection = (u64, Dcid, Open);

const IDLE: Duration = Duration::from_secs(2);

impl Pool {
    pub(crate) fn take(&self, key: &str) -> Option<(Dcid, Open)> {
        let mut g = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = g.get_mut(key)?;
        let (_, dcid, open) = list.pop()?;
        if list.is_empty() {
            g.remove(key);
        }
        Some((dcid, open))
    }

    fn take_id(&self, key: &str, id: u64) -> Option<Open> {
        let mut g = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = g.get_mut(key)?;
        let pos = list.iter().position(|(i, _, _)| *i == id)?;
        let (_, _, open) = list.swap_remove(pos);
        if list.is_empty() {
            g.remove(key);
        }
        Some(open)
    }

    pub(crate) fn put(self: &Arc<Self>, key: String, dcid: Dcid, open: Open) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.clone())
            .or_default()
            .push((id, dcid, open));
        let pool = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(IDLE).await;
            if let Some(open) = pool.take_id(&key, id) {
                open.close().await;
            }
        });
    }
}
