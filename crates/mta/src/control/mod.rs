//! Queue commands for operators (`portcullis queue ...`, SPEC §6 "Queue"),
//! in the spirit of Postfix's `postqueue`/`postsuper`: list, show, retry,
//! hold, release, delete (no bounce), bounce (DSN to the sender).
//!
//! One request type, [`QueueRequest`], and one reply type, [`QueueReply`],
//! reach the queue by two paths:
//!
//! - **online**, while the gateway runs: [`QueueService::handle`] acts on
//!   the running scheduler and spool. The control socket (`socket.rs`, a
//!   Unix socket `control.sock` in the data directory, owner-only, one JSON
//!   line each way) calls it; the HTTPS admin API is meant to call the same
//!   function;
//! - **offline**, while it is stopped: [`offline::handle`] opens the spool
//!   itself (taking its lock, so there is still only one writer) and stores
//!   the same changes for the next start.
//!
//! Both build their rows with `rows.rs`, so the two paths print the same.

pub mod offline;
mod rows;
mod service;
pub mod socket;

use serde::{Deserialize, Serialize};

pub use rows::{span, utc};
pub use service::QueueService;

/// The name of the control socket in the data directory.
pub const SOCKET_NAME: &str = "control.sock";

/// What an operator asks of the queue. Message ids are the hexadecimal form
/// the mail log shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case")]
pub enum QueueRequest {
    /// Every queued message.
    List,
    /// One message: envelope, headers, per-recipient status.
    Show {
        id: String,
    },
    /// Attempt now.
    Retry {
        target: RetryWhat,
    },
    /// Do not deliver until released.
    Hold {
        id: String,
    },
    Release {
        id: String,
    },
    /// Remove without a bounce.
    Delete {
        id: String,
    },
    /// Return to the sender with a DSN and remove.
    Bounce {
        id: String,
    },
}

/// Which messages `retry` means.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RetryWhat {
    Id(String),
    Domain(String),
    All,
}

/// The answer to a [`QueueRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "kebab-case")]
pub enum QueueReply {
    List(Vec<QueueRow>),
    Show(Box<MessageDetail>),
    /// What was done, in one line.
    Done(String),
}

/// One queued message as `queue list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueRow {
    pub id: String,
    /// Seconds since the Unix epoch, and as UTC text.
    pub received_at: u64,
    pub received: String,
    pub age_seconds: u64,
    pub size: u64,
    pub sender: String,
    /// Recipients still to deliver.
    pub recipients: Vec<String>,
    pub attempts: u32,
    /// Seconds since the Unix epoch; 0 when due at once.
    pub next_attempt: u64,
    /// `now`, `in 4m 10s`, `held`, `delivering now`.
    pub next: String,
    pub last_error: String,
    pub held: bool,
    pub delivering: bool,
    pub requiretls: bool,
    pub smtputf8: bool,
}

/// One message as `queue show` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageDetail {
    #[serde(flatten)]
    pub row: QueueRow,
    /// Every recipient of the message, with `pending` or `done`.
    pub recipient_status: Vec<RecipientStatus>,
    pub eight_bit: bool,
    /// The header section as received (the gateway's `Received` first).
    pub headers: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipientStatus {
    pub address: String,
    /// `pending` or `done` (delivered, or bounced with a DSN).
    pub status: String,
}

/// Parses a message id from a request.
fn message_id(id: &str) -> Result<crate::spool::MessageId, String> {
    id.parse()
}
