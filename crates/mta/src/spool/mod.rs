//! The durable spool: the queue of accepted messages.
//!
//! A message is answered `250` only once [`Spool::enqueue`]'s [`Commit`]
//! resolves, and it resolves only after the record is written and
//! `fdatasync`ed. A crash, `kill -9` or power cut after that loses nothing:
//! [`Spool::open`] replays the log and hands back every message with the
//! recipients still to do, its retry schedule and whether it is held.
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
//! sequence number (`0000000000000001.log`), a `key` file and a `lock` file.
//! Records are framed and checksummed (`record.rs`). Delivery outcomes,
//! retry times and holds are small records of their own; a message whose
//! recipients are all finished is gone.
//!
//! # Bounded space
//!
//! A background thread (`reclaim.rs`) deletes a segment as soon as nothing
//! live remains in it and compacts mostly dead segments, so the segment
//! files stay under twice the live records plus one segment
//! ([`SpoolOptions::segment_bytes`]). Before accepting, callers ask
//! [`Spool::admit`]; delivery asks [`Spool::outcomes_storable`] (`space.rs`).
//! A write that fails is undone, so nothing whose client was told "failed"
//! is ever replayed, and the spool goes on once space is free.
//!
//! # Damage
//!
//! Recovery reads past damage to the next valid record and keeps every
//! valid record (`scan.rs`). It cuts a torn write at the end of the newest
//! segment, shrugs off a damaged header, and refuses to open on any other
//! damage, naming the file, the offset and the command that repairs it
//! (`replay.rs`): [`Spool::check`] reports, [`Spool::salvage`] rebuilds
//! the spool from every valid record and moves the damaged files aside.

mod check;
mod damaged_files;
mod dsn_record;
#[doc(hidden)]
pub mod fuzzing;
mod index;
mod lanes;
mod reclaim;
mod record;
mod replay;
mod salvage;
mod scan;
mod space;
mod types;
mod writer;

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::oneshot;

pub use check::Check;
pub use damaged_files::Retention;
pub use replay::{Damage, DamageKind};
pub use salvage::SalvageReport;
pub use space::{FreeSpace, Shortage, mib};
pub use types::{
    Commit, DsnRequest, Envelope, EnvelopeFlags, MessageId, QueueSize, QueuedMessage, Schedule,
    SpoolError, SpoolOptions, Usage,
};

use index::Index;
use replay::Mode;
use types::writer_gone;

/// The durable queue. Cheap to share behind an `Arc`; all methods take
/// `&self`.
#[derive(Debug)]
pub struct Spool {
    shared: Arc<Shared>,
    writer: Option<JoinHandle<()>>,
    reclaimer: Option<JoinHandle<()>>,
    _lock: File,
}

#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    /// Damage found and repaired (or harmless) when the spool was opened.
    damage_at_open: Vec<Damage>,
    key: u64,
    options: SpoolOptions,
    index: Mutex<Index>,
    next_id: AtomicU64,
    inbox: lanes::Inbox,
    reclaim: reclaim::Signal,
    reclaiming: Mutex<()>,
    /// The segment the writer appends to.
    active: AtomicU64,
    /// A failed write could not be undone yet.
    writer_dirty: AtomicBool,
    gauge: space::Gauge,
    /// How long each group commit took to reach the disk (`/metrics`).
    sync_latency: crate::metrics::LatencyHistogram,
}

impl Shared {
    fn index(&self) -> MutexGuard<'_, Index> {
        // A panic while holding the lock cannot leave the index half-updated
        // in a way that matters more than losing the process: keep going.
        self.index
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn active_segment(&self) -> u64 {
        self.active.load(Ordering::Acquire)
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

/// Takes the spool's lock: one writer at a time.
fn lock(dir: &Path) -> Result<File, SpoolError> {
    let lock_path = dir.join("lock");
    let lock = File::create(&lock_path).map_err(|e| SpoolError::io(&lock_path, e))?;
    lock.try_lock()
        .map_err(|_| SpoolError::Locked(dir.to_path_buf()))?;
    Ok(lock)
}

impl Spool {
    /// Opens (creating if needed) the spool in `dir`, recovers it, and starts
    /// the writer and reclaim threads. Returns the spool and every message
    /// still queued.
    pub fn open(
        dir: impl AsRef<Path>,
        options: SpoolOptions,
    ) -> Result<(Spool, Vec<QueuedMessage>), SpoolError> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(|e| SpoolError::io(&dir, e))?;
        let lock = lock(&dir)?;
        let recovered = replay::replay(&dir, Mode::Open, options.keep_damaged)?;
        for d in &recovered.damage {
            if d.kind == DamageKind::Header {
                tracing::warn!(file = %d.file.display(), reason = %d.reason, "spool header damaged; no message was lost (the key is kept in several places)");
            }
        }
        damaged_files::trim(&dir, options.keep_damaged, None);
        let queued = recovered.index.queued();
        let next_id = recovered.max_id.saturating_add(1).max(unix_micros());
        let shared = Arc::new(Shared {
            damage_at_open: recovered.damage.clone(),
            gauge: space::Gauge::new(&dir, options.min_free_bytes, options.min_free_percent),
            dir,
            key: recovered.key,
            options: options.clone(),
            index: Mutex::new(recovered.index),
            next_id: AtomicU64::new(next_id),
            inbox: lanes::Inbox::default(),
            reclaim: reclaim::Signal::default(),
            reclaiming: Mutex::new(()),
            active: AtomicU64::new(0),
            writer_dirty: AtomicBool::new(false),
            sync_latency: Default::default(),
        });
        let writer = writer::start(
            shared.clone(),
            recovered.max_segment + 1,
            recovered.newest,
            options.clone(),
        )?;
        let mut spool = Spool {
            shared: shared.clone(),
            writer: Some(writer),
            reclaimer: None,
            _lock: lock,
        };
        spool.reclaimer = Some(reclaim::start(shared.clone(), options)?);
        shared.reclaim.notify();
        Ok((spool, queued))
    }

    /// The damage [`Spool::open`] found and got past: torn tails cut off,
    /// damaged headers (damage that loses messages stops the open instead).
    pub fn damage_at_open(&self) -> &[Damage] {
        &self.shared.damage_at_open
    }

    /// What is queued in `dir`, read without locking or changing anything,
    /// for tools such as `portcullis queue list` that run beside a live
    /// gateway. Fails, like [`Spool::open`], on damage that would stop the
    /// gateway; [`Spool::check`] reports it instead.
    pub fn inspect(dir: impl AsRef<Path>) -> Result<Vec<QueuedMessage>, SpoolError> {
        let rec = replay::replay(dir.as_ref(), Mode::Inspect, Retention::default())?;
        match rec.damage.iter().find(|d| d.is_fatal()) {
            Some(d) => Err(SpoolError::Corrupt {
                path: d.file.clone(),
                offset: d.start,
                reason: d.reason.clone(),
                more: rec.damage.iter().filter(|d| d.is_fatal()).count() - 1,
            }),
            None => Ok(rec.index.queued()),
        }
    }

    /// Reads the spool in `dir` without changing it: every damaged range and
    /// every message readable despite the damage.
    pub fn check(dir: impl AsRef<Path>) -> Result<Check, SpoolError> {
        let dir = dir.as_ref();
        let rec = replay::replay(dir, Mode::Inspect, Retention::default())?;
        let (disk_bytes, live_bytes) = rec.index.usage();
        let bodies = rec
            .index
            .live
            .iter()
            .map(|(id, e)| {
                let path = segment_path(dir, e.segment);
                (*id, (path, e.body_offset, e.body_len))
            })
            .collect();
        Ok(Check {
            messages: rec.index.queued(),
            damage: rec.damage,
            usage: Usage {
                disk_bytes,
                live_bytes,
                segments: rec.index.segments.len(),
            },
            in_use: check::in_use(dir),
            bodies,
        })
    }

    /// Rebuilds a damaged spool from every valid record (see `salvage.rs`).
    /// Needs the spool's lock: the gateway must be stopped.
    pub fn salvage(
        dir: impl AsRef<Path>,
        options: &SpoolOptions,
    ) -> Result<SalvageReport, SpoolError> {
        let dir = dir.as_ref();
        let _lock = lock(dir)?;
        salvage::salvage(dir, options)
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
        let state = record::StoredState::default();
        record::encode_message(&mut bytes, self.shared.key, id, &envelope, &state, body);
        let job = lanes::Job::Message {
            id,
            envelope: Arc::new(envelope),
            body_len: body.len() as u64,
        };
        (MessageId(id), self.submit(job, bytes))
    }

    /// Records that these recipients of `id` reached a final state (delivered,
    /// or bounced with a DSN already queued). Once every recipient is finished
    /// the message leaves the queue.
    pub fn finish(&self, id: MessageId, recipients: &[u32]) -> Commit<()> {
        self.outcome(id, |bytes, key| {
            record::encode_finished(bytes, key, id.0, recipients);
            lanes::Job::Finished {
                id: id.0,
                recipients: recipients.to_vec(),
            }
        })
    }

    /// Stores the retry schedule of `id`.
    pub fn set_schedule(&self, id: MessageId, schedule: Schedule) -> Commit<()> {
        self.outcome(id, |bytes, key| {
            record::encode_schedule(bytes, key, id.0, &schedule);
            lanes::Job::Schedule { id: id.0, schedule }
        })
    }

    /// Holds (`true`) or releases `id`.
    pub fn set_held(&self, id: MessageId, held: bool) -> Commit<()> {
        self.outcome(id, |bytes, key| {
            record::encode_hold(bytes, key, id.0, held);
            lanes::Job::Hold { id: id.0, held }
        })
    }

    fn outcome(
        &self,
        id: MessageId,
        encode: impl FnOnce(&mut Vec<u8>, u64) -> lanes::Job,
    ) -> Commit<()> {
        if !self.shared.index().live.contains_key(&id.0) {
            return Commit::failed(SpoolError::UnknownMessage(id));
        }
        let mut bytes = Vec::with_capacity(64);
        let job = encode(&mut bytes, self.shared.key);
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

    /// How many messages are queued and when the oldest arrived: one pass
    /// over the index, nothing copied (the health sampler reads it).
    pub fn queue_size(&self) -> QueueSize {
        let index = self.shared.index();
        QueueSize {
            messages: index.live.len(),
            oldest_received_at: index.live.values().map(|e| e.envelope.received_at).min(),
        }
    }

    /// One queued message.
    pub fn message(&self, id: MessageId) -> Option<QueuedMessage> {
        self.shared.index().live.get(&id.0).map(|e| e.queued(id.0))
    }

    /// How many segment files the spool holds.
    pub fn segment_count(&self) -> usize {
        self.shared.index().segments.len()
    }

    /// Bytes on disk and bytes live.
    pub fn usage(&self) -> Usage {
        let index = self.shared.index();
        let (disk_bytes, live_bytes) = index.usage();
        Usage {
            disk_bytes,
            live_bytes,
            segments: index.segments.len(),
        }
    }

    /// The durations of the group commits so far, for `/metrics`.
    pub(crate) fn sync_latency(&self) -> &crate::metrics::LatencyHistogram {
        &self.shared.sync_latency
    }

    /// The spool directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Whether a new transaction declaring `size` (the `SIZE=` parameter)
    /// may start: free space above the threshold, and the size fits.
    pub fn admit(&self, size: Option<u64>) -> Result<(), Shortage> {
        self.shared.gauge.admit(size)
    }

    /// Whether a delivery's outcome can be stored now. When not, delivery
    /// must wait: a delivery whose outcome is lost is repeated after a
    /// restart.
    pub fn outcomes_storable(&self) -> Result<(), String> {
        if self.shared.writer_dirty.load(Ordering::Acquire) {
            return Err("the last spool write failed and could not be undone yet".into());
        }
        match self.shared.gauge.free() {
            Ok(space) if space.available < space::PAUSE_BELOW => Err(format!(
                "the spool's filesystem has only {} free",
                mib(space.available)
            )),
            _ => Ok(()),
        }
    }

    /// Free space on the spool's filesystem.
    pub fn free_space(&self) -> std::io::Result<FreeSpace> {
        self.shared.gauge.free()
    }

    /// Runs a reclaim pass now, in the calling thread (the background
    /// thread does the same after every change): deletes segments with
    /// nothing live and compacts while it pays.
    pub fn reclaim_now(&self) {
        reclaim::reclaim(&self.shared, &self.shared.options);
    }

    fn submit(&self, job: lanes::Job, bytes: Vec<u8>) -> Commit<()> {
        let (reply, rx) = oneshot::channel();
        let request = lanes::Request { job, bytes, reply };
        match self.shared.inbox.push(request) {
            Ok(()) => Commit(rx),
            Err(_) => Commit::failed(writer_gone()),
        }
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        // The reclaim thread first (it may be waiting on the writer), then
        // the writer finishes what it has and stops.
        self.shared.reclaim.stop();
        if let Some(r) = self.reclaimer.take() {
            let _ = r.join();
        }
        self.shared.inbox.close();
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
