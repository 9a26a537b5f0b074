//! What `portcullis queue check` reads: every damaged range and every
//! message readable despite it, without locking or changing the spool.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use super::{Damage, MessageId, QueuedMessage, SpoolError, Usage, read_at};

/// What [`Spool::check`](super::Spool::check) found.
#[derive(Debug)]
pub struct Check {
    /// Every message readable, damage notwithstanding.
    pub messages: Vec<QueuedMessage>,
    /// Every damaged range, in file order.
    pub damage: Vec<Damage>,
    pub usage: Usage,
    /// A gateway holds the spool's lock.
    pub in_use: bool,
    pub(super) bodies: HashMap<u64, (PathBuf, u64, u64)>,
}

impl Check {
    /// Damage that stops the gateway from starting.
    pub fn fatal(&self) -> impl Iterator<Item = &Damage> {
        self.damage.iter().filter(|d| d.is_fatal())
    }

    /// The body of a message found by the check.
    pub fn body(&self, id: MessageId) -> Result<Vec<u8>, SpoolError> {
        let place = self
            .bodies
            .get(&id.0)
            .ok_or(SpoolError::UnknownMessage(id))?;
        read_at(place)
    }
}

/// Whether a gateway holds the spool's lock (read-only probe).
pub(super) fn in_use(dir: &Path) -> bool {
    match File::open(dir.join("lock")) {
        Ok(f) => f.try_lock_shared().is_err(),
        Err(_) => false,
    }
}
