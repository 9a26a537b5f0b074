//! Why the engine could not start.

use std::net::SocketAddr;

use crate::spool::SpoolError;

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The spool could not be opened.
    #[error("cannot open the queue: {0}")]
    Spool(#[from] SpoolError),
    /// A listener could not bind.
    #[error("listener {name:?} cannot listen on {address}: {reason}")]
    Bind {
        /// Listener name.
        name: String,
        /// Address.
        address: SocketAddr,
        /// OS error.
        reason: String,
    },
    /// The data directory or another start-up resource failed.
    #[error("{0}")]
    Setup(String),
}
