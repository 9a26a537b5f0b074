//! The spool's public types: message ids, envelopes, the stored schedule,
//! options, errors, and [`Commit`], the handle a caller awaits until a
//! write is durable.

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use super::Retention;

/// A queued message's identifier, unique across restarts. Shown in the mail
/// log as hexadecimal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub(super) u64);

impl MessageId {
    /// The raw value, for storage elsewhere.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}", self.0)
    }
}

impl std::str::FromStr for MessageId {
    type Err = String;

    /// The hexadecimal form the mail log shows.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        u64::from_str_radix(s.trim(), 16)
            .map(MessageId)
            .map_err(|_| format!("{s:?} is not a message id (hexadecimal, as in the mail log)"))
    }
}

/// What the SMTP transaction said about a message, beside its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The reverse-path; empty for the null sender (bounces).
    pub sender: String,
    /// Forward-paths, in the order they were accepted. Delivery outcomes
    /// refer to recipients by their index in this list.
    pub recipients: Vec<String>,
    /// When the message was accepted, in seconds since the Unix epoch.
    pub received_at: u64,
    pub flags: EnvelopeFlags,
    /// What the sender asked of delivery reports (RFC 3461 DSN).
    pub dsn: DsnRequest,
}

/// The DSN parameters of a message (RFC 3461): passed to next hops that
/// take them, honoured in the gateway's own reports otherwise.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DsnRequest {
    /// `RET=`: the whole message or its headers in a failure report.
    pub ret: Option<portcullis_smtp_tls::Ret>,
    /// `ENVID=`, as received (xtext).
    pub envid: Option<String>,
    /// `NOTIFY=` and `ORCPT=` per recipient, in the order of
    /// `Envelope::recipients` (empty: none given).
    pub recipients: Vec<portcullis_smtp_tls::RcptParams>,
}

impl DsnRequest {
    /// Whether nothing was asked (the record then stores no DSN block).
    pub fn is_empty(&self) -> bool {
        self.ret.is_none()
            && self.envid.is_none()
            && self
                .recipients
                .iter()
                .all(portcullis_smtp_tls::RcptParams::is_empty)
    }

    /// The parameters of recipient `i`.
    pub fn recipient(&self, i: usize) -> portcullis_smtp_tls::RcptParams {
        self.recipients.get(i).cloned().unwrap_or_default()
    }
}

/// MAIL parameters that delivery must honour.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EnvelopeFlags {
    /// `REQUIRETLS` (RFC 8689).
    pub requiretls: bool,
    /// `SMTPUTF8` (RFC 6531).
    pub smtputf8: bool,
    /// `BODY=8BITMIME`.
    pub eight_bit: bool,
}

impl EnvelopeFlags {
    pub(super) fn to_bits(self) -> u8 {
        u8::from(self.requiretls) | u8::from(self.smtputf8) << 1 | u8::from(self.eight_bit) << 2
    }

    pub(super) fn from_bits(bits: u8) -> Self {
        EnvelopeFlags {
            requiretls: bits & 1 != 0,
            smtputf8: bits & 2 != 0,
            eight_bit: bits & 4 != 0,
        }
    }
}

/// Where a message stands in its retries. Stored, so it survives restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schedule {
    /// Delivery attempts so far.
    pub attempts: u32,
    /// When to try next, in seconds since the Unix epoch; 0 means at once.
    pub next_attempt: u64,
    /// Why the last attempt did not finish every recipient.
    pub last_error: String,
}

/// A message in the queue and the recipients not yet finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMessage {
    pub id: MessageId,
    pub envelope: Arc<Envelope>,
    /// Indices into `envelope.recipients` still to deliver.
    pub pending: Vec<u32>,
    /// Size of the body in bytes.
    pub size: u64,
    pub schedule: Schedule,
    /// Held by the operator: not delivered until released.
    pub held: bool,
}

/// Tuning knobs. The defaults suit a gateway on a small disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolOptions {
    /// A segment file is closed and a new one started before it would grow
    /// past this size (only a single larger message makes a larger one).
    /// The spool's files stay under twice the live records plus this.
    pub segment_bytes: u64,
    /// New transactions are refused (`452 4.3.1`) when the filesystem has
    /// less than this free...
    pub min_free_bytes: u64,
    /// ...or less than this percentage of its size, whichever is larger.
    pub min_free_percent: u8,
    /// The writer refuses a message that would leave less than this free:
    /// the room is kept for delivery outcomes, retry times and bounces.
    pub outcome_reserve_bytes: u64,
    /// How many torn or damaged files to keep beside the spool.
    pub keep_damaged: Retention,
}

impl Default for SpoolOptions {
    fn default() -> Self {
        SpoolOptions {
            segment_bytes: 8 << 20,
            min_free_bytes: 64 << 20,
            min_free_percent: 2,
            outcome_reserve_bytes: 1 << 20,
            keep_damaged: Retention::default(),
        }
    }
}

/// Spool failures, written for the operator who has to act on them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path}: {reason}")]
    Io { path: PathBuf, reason: String },
    #[error(
        "spool file {path} is damaged at byte {offset} ({reason}){}; the gateway does not start \
         because it cannot tell which messages the damaged bytes held. Run `portcullis queue \
         check` to see every damaged range, then `portcullis queue salvage` to keep every readable \
         message and move the damaged files aside",
        if *more > 0 { format!(" and in {more} more place(s)") } else { String::new() }
    )]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
        more: usize,
    },
    #[error("spool {0} is in use by another Portcullis process")]
    Locked(PathBuf),
    #[error("the spool cannot write: {0}")]
    Failed(String),
    #[error("no space for the spool: {0}")]
    NoSpace(String),
    #[error("message {0} is not in the queue")]
    UnknownMessage(MessageId),
    #[error("message of {0} bytes is larger than the spool accepts")]
    TooLarge(usize),
}

impl SpoolError {
    pub(super) fn io(path: &Path, err: std::io::Error) -> Self {
        use std::io::ErrorKind::{QuotaExceeded, StorageFull};
        if matches!(err.kind(), StorageFull | QuotaExceeded) {
            return SpoolError::NoSpace(format!("{}: {err}", path.display()));
        }
        SpoolError::Io {
            path: path.to_path_buf(),
            reason: err.to_string(),
        }
    }
}

/// A write on its way to stable storage. Await it, or call [`Commit::wait`]
/// from synchronous code; either way the value arrives only after `fdatasync`.
#[derive(Debug)]
#[must_use = "the write is durable only once the commit resolves"]
pub struct Commit<T>(pub(super) oneshot::Receiver<Result<T, SpoolError>>);

impl<T> Commit<T> {
    pub(super) fn failed(err: SpoolError) -> Self {
        let (tx, rx) = oneshot::channel();
        let _ = tx.send(Err(err));
        Commit(rx)
    }

    /// Blocks the calling thread until the write is durable. Do not call it
    /// from inside an async runtime; await the commit there.
    pub fn wait(self) -> Result<T, SpoolError> {
        self.0
            .blocking_recv()
            .unwrap_or_else(|_| Err(writer_gone()))
    }
}

impl<T> Future for Commit<T> {
    type Output = Result<T, SpoolError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or_else(|_| Err(writer_gone())))
    }
}

pub(super) fn writer_gone() -> SpoolError {
    SpoolError::Failed("the spool writer thread has stopped".into())
}

/// Disk use of the spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Bytes in segment files.
    pub disk_bytes: u64,
    /// Bytes of the live messages' records.
    pub live_bytes: u64,
    pub segments: usize,
}

/// The queue's size for the health gauges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueSize {
    pub messages: usize,
    /// Unix seconds the oldest queued message was received.
    pub oldest_received_at: Option<u64>,
}
