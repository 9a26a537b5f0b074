//! The durable spool: the queue of accepted messages.
//!
//! A message is answered `250` only once [`Spool::enqueue`]'s [`Commit`]
//! resolves, and it resolves only after the record is written and
//! `fdatasync`ed. A crash, `kill -9` or power cut after that loses nothing:
//! [`Spool::open`] replays the log and hands back every message with the
//! recipients still to do.
//!
//! # Why a log, not a file per message
//!
//! A file-per-message queue (Postfix's) pays for each message: create, write,
//! fsync the file, rename, fsync the directory. Here every message is a record
//! appended to one segment file, and one writer thread commits whole batches:
//! all the messages that arrived while the previous `fdatasync` ran share the
//! next one (group commit). Under load the cost of durability is one sync per
//! batch, not several per message.
//!
//! # On disk
//!
//! The spool directory holds segment files named by a 16-digit hexadecimal
//! sequence number (`0000000000000001.log`) and a `lock` file. Records are
//! framed and checksummed (see `record.rs`). A delivery outcome is another
//! record, "these recipients are finished"; a message whose recipients are
//! all finished is gone. Segments are deleted oldest first once none of their
//! messages is live; a long-deferred message that pins an old segment is
//! copied forward (compaction) so the log does not grow without bound.
//!
//! Recovery truncates a torn record at the end of the newest segment (it was
//! never acknowledged) after saving the torn bytes beside it as
//! `<segment>.torn-<offset>`. Damage anywhere else is reported and the spool
//! refuses to open: nothing is silently dropped.
//!
//! Retry times are not stored: after a restart every queued message is due at
//! once. The time a message was received is stored, so queue lifetimes hold
//! across restarts.

mod dsn_record;
mod record;
mod replay;
mod writer;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::{self, File};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::oneshot;

/// A queued message's identifier, unique across restarts. Shown in the mail
/// log as hexadecimal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(u64);

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
    fn to_bits(self) -> u8 {
        u8::from(self.requiretls) | u8::from(self.smtputf8) << 1 | u8::from(self.eight_bit) << 2
    }

    fn from_bits(bits: u8) -> Self {
        EnvelopeFlags {
            requiretls: bits & 1 != 0,
            smtputf8: bits & 2 != 0,
            eight_bit: bits & 4 != 0,
        }
    }
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
}

/// Tuning knobs. The defaults suit a gateway.
#[derive(Debug, Clone)]
pub struct SpoolOptions {
    /// A segment file is closed and a new one started past this size.
    pub segment_bytes: u64,
    /// When more segments than this exist and the oldest still holds live
    /// messages, those messages are copied forward so it can be deleted.
    pub compact_after_segments: usize,
}

impl Default for SpoolOptions {
    fn default() -> Self {
        SpoolOptions {
            segment_bytes: 64 << 20,
            compact_after_segments: 8,
        }
    }
}

/// Spool failures, written for the operator who has to act on them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path}: {reason}")]
    Io { path: PathBuf, reason: String },
    #[error(
        "spool segment {path} is damaged at byte {offset} ({reason}); move it aside to start \
         without the messages it holds, or restore it from backup"
    )]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("spool {0} is in use by another Portcullis process")]
    Locked(PathBuf),
    #[error(
        "the spool stopped accepting messages after a write failure ({0}); restart the gateway \
         once the disk is healthy"
    )]
    Failed(String),
    #[error("message {0} is not in the queue")]
    UnknownMessage(MessageId),
    #[error("message of {0} bytes is larger than the spool accepts")]
    TooLarge(usize),
}

impl SpoolError {
    fn io(path: &Path, err: std::io::Error) -> Self {
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
pub struct Commit<T>(oneshot::Receiver<Result<T, SpoolError>>);

impl<T> Commit<T> {
    fn failed(err: SpoolError) -> Self {
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

fn writer_gone() -> SpoolError {
    SpoolError::Failed("the spool writer thread has stopped".into())
}

/// The durable queue. Cheap to share behind an `Arc`; all methods take
/// `&self`.
#[derive(Debug)]
pub struct Spool {
    shared: Arc<Shared>,
    requests: Option<mpsc::Sender<writer::Request>>,
    writer: Option<JoinHandle<()>>,
    _lock: File,
}

#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    index: Mutex<Index>,
    next_id: AtomicU64,
}

impl Shared {
    fn index(&self) -> MutexGuard<'_, Index> {
        // A panic while holding the lock cannot leave the index half-updated
        // in a way that matters more than losing the process: keep going.
        self.index
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Where each live message is, and which segments still matter.
#[derive(Debug, Default)]
struct Index {
    live: HashMap<u64, Entry>,
    /// Live messages per segment, for every segment file that exists.
    segments: BTreeMap<u64, usize>,
}

#[derive(Debug, Clone)]
struct Entry {
    envelope: Arc<Envelope>,
    finished: Vec<bool>,
    segment: u64,
    body_offset: u64,
    body_len: u64,
}

impl Entry {
    fn finished_list(&self) -> Vec<u32> {
        (0u32..)
            .zip(&self.finished)
            .filter_map(|(i, done)| done.then_some(i))
            .collect()
    }

    fn queued(&self, id: u64) -> QueuedMessage {
        QueuedMessage {
            id: MessageId(id),
            envelope: self.envelope.clone(),
            pending: (0u32..)
                .zip(&self.finished)
                .filter_map(|(i, done)| (!done).then_some(i))
                .collect(),
            size: self.body_len,
        }
    }
}

impl Index {
    /// Records a message (new, or a compaction copy replacing an older one).
    fn insert(&mut self, id: u64, entry: Entry) {
        *self.segments.entry(entry.segment).or_default() += 1;
        let replaced = if entry.finished.iter().all(|done| *done) {
            self.release(entry.segment);
            self.live.remove(&id)
        } else {
            self.live.insert(id, entry)
        };
        if let Some(old) = replaced {
            self.release(old.segment);
        }
    }

    fn finish(&mut self, id: u64, recipients: &[u32]) {
        let Some(entry) = self.live.get_mut(&id) else {
            return;
        };
        for r in recipients {
            if let Some(done) = entry.finished.get_mut(*r as usize) {
                *done = true;
            }
        }
        if entry.finished.iter().all(|done| *done) {
            let segment = entry.segment;
            self.live.remove(&id);
            self.release(segment);
        }
    }

    fn release(&mut self, segment: u64) {
        if let Some(count) = self.segments.get_mut(&segment) {
            *count = count.saturating_sub(1);
        }
    }

    fn queued(&self) -> Vec<QueuedMessage> {
        let mut all: Vec<_> = self.live.iter().map(|(id, e)| e.queued(*id)).collect();
        all.sort_by_key(|m| m.id);
        all
    }
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016x}.log"))
}

fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

impl Spool {
    /// Opens (creating if needed) the spool in `dir`, recovers it, and starts
    /// the writer thread. Returns the spool and every message still queued.
    pub fn open(
        dir: impl AsRef<Path>,
        options: SpoolOptions,
    ) -> Result<(Spool, Vec<QueuedMessage>), SpoolError> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(|e| SpoolError::io(&dir, e))?;
        let lock_path = dir.join("lock");
        let lock = File::create(&lock_path).map_err(|e| SpoolError::io(&lock_path, e))?;
        lock.try_lock()
            .map_err(|_| SpoolError::Locked(dir.clone()))?;

        let recovered = replay::replay(&dir, true)?;
        let queued = recovered.index.queued();
        let next_id = recovered.max_id.saturating_add(1).max(unix_micros());
        let shared = Arc::new(Shared {
            dir: dir.clone(),
            index: Mutex::new(recovered.index),
            next_id: AtomicU64::new(next_id),
        });
        let (requests, writer) = writer::start(shared.clone(), recovered.max_segment + 1, options)?;
        Ok((
            Spool {
                shared,
                requests: Some(requests),
                writer: Some(writer),
                _lock: lock,
            },
            queued,
        ))
    }

    /// Reads what is queued in `dir` without changing anything, for tools such
    /// as `portcullis queue list` that run beside a live gateway.
    pub fn inspect(dir: impl AsRef<Path>) -> Result<Vec<QueuedMessage>, SpoolError> {
        Ok(replay::replay(dir.as_ref(), false)?.index.queued())
    }

    /// Queues a message. The id is known at once; the commit resolves once
    /// the message is on stable storage, and only then may the client be told
    /// `250`.
    pub fn enqueue(&self, envelope: Envelope, body: &[u8]) -> (MessageId, Commit<()>) {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        if body.len() > (record::MAX_PAYLOAD as usize) / 2 {
            return (
                MessageId(id),
                Commit::failed(SpoolError::TooLarge(body.len())),
            );
        }
        let mut bytes = Vec::with_capacity(body.len() + 256);
        record::encode_message(&mut bytes, id, &envelope, &[], body);
        let finished = vec![false; envelope.recipients.len()];
        let job = writer::Job::Message {
            id,
            envelope: Arc::new(envelope),
            finished,
            body_len: body.len() as u64,
        };
        (MessageId(id), self.submit(job, bytes))
    }

    /// Records that these recipients of `id` reached a final state (delivered,
    /// or bounced with a DSN already queued). Once every recipient is finished
    /// the message leaves the queue.
    pub fn finish(&self, id: MessageId, recipients: &[u32]) -> Commit<()> {
        if !self.shared.index().live.contains_key(&id.0) {
            return Commit::failed(SpoolError::UnknownMessage(id));
        }
        let mut bytes = Vec::with_capacity(16 + 4 * recipients.len());
        record::encode_finished(&mut bytes, id.0, recipients);
        let job = writer::Job::Finished {
            id: id.0,
            recipients: recipients.to_vec(),
        };
        self.submit(job, bytes)
    }

    /// The body of a queued message, as received.
    pub fn body(&self, id: MessageId) -> Result<Vec<u8>, SpoolError> {
        let place = self.locate(id)?;
        match read_at(&place) {
            // Compaction may have moved the message to a newer segment and
            // deleted the old one between the look-up and the read.
            Err(err) => match self.locate(id)? {
                moved if moved != place => read_at(&moved),
                _ => Err(err),
            },
            body => body,
        }
    }

    fn locate(&self, id: MessageId) -> Result<(PathBuf, u64, u64), SpoolError> {
        let index = self.shared.index();
        let entry = index
            .live
            .get(&id.0)
            .ok_or(SpoolError::UnknownMessage(id))?;
        Ok((
            segment_path(&self.shared.dir, entry.segment),
            entry.body_offset,
            entry.body_len,
        ))
    }

    /// Every message still queued, oldest first.
    pub fn messages(&self) -> Vec<QueuedMessage> {
        self.shared.index().queued()
    }

    /// How many segment files the spool holds.
    pub fn segment_count(&self) -> usize {
        self.shared.index().segments.len()
    }

    fn submit(&self, job: writer::Job, bytes: Vec<u8>) -> Commit<()> {
        let (reply, rx) = oneshot::channel();
        let request = writer::Request { job, bytes, reply };
        match &self.requests {
            Some(tx) if tx.send(request).is_ok() => Commit(rx),
            _ => Commit::failed(writer_gone()),
        }
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        // Closing the channel lets the writer finish what it has and stop.
        self.requests.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

fn read_at((path, offset, len): &(PathBuf, u64, u64)) -> Result<Vec<u8>, SpoolError> {
    use std::os::unix::fs::FileExt;
    let (offset, len) = (*offset, *len);
    let file = File::open(path).map_err(|e| SpoolError::io(path, e))?;
    let mut body = vec![0; len as usize];
    file.read_exact_at(&mut body, offset)
        .map_err(|e| SpoolError::io(path, e))?;
    Ok(body)
}

/// Makes a directory entry change (create, rename, unlink) durable.
fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| SpoolError::io(dir, e))
}
