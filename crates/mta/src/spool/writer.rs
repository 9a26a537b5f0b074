//! The spool's single writer thread: group commit, segment rotation, and
//! what happens when a write fails.
//!
//! Every write goes through one thread so appends never interleave and one
//! `fdatasync` covers every request that queued up while the previous one
//! ran. Requests wait in three lanes (`lanes.rs`): compaction copies (a
//! bounded share of each batch, so compaction never holds receipt up for
//! long), outcomes first among the rest (a delivery's outcome should be on
//! disk as soon as possible: until then a crash repeats the delivery), then
//! new messages. The index is updated only here, after the sync, so a
//! reader never sees a message that is not yet durable.
//!
//! A write or sync that fails (a full disk) is undone: the segment is
//! truncated back to where the batch began and synced, every request of the
//! batch gets the error, and the next batch starts clean. So a record whose
//! client was told "failed" is never replayed, and service resumes by itself
//! once space is free. New messages are also refused before the write when
//! they would leave less than the outcome reserve free.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;

use super::index::Placement;
use super::lanes::{Batch, Copy, CopyOutcome, Job, Request};
use super::record::{HEADER_LEN, Record, StoredState, encode_header, encode_seal};
use super::replay::Newest;
use super::space::{self, mib};
use super::{Shared, SpoolError, SpoolOptions, segment_path, sync_dir};

pub(super) fn start(
    shared: Arc<Shared>,
    next_segment: u64,
    newest: Option<Newest>,
    options: SpoolOptions,
) -> Result<JoinHandle<()>, SpoolError> {
    let (seq, path, file, len) = first_segment(&shared, next_segment, newest)?;
    let mut writer = Writer {
        shared,
        options,
        seq,
        path,
        file,
        len,
        dirty: false,
        buf: Vec::new(),
    };
    std::thread::Builder::new()
        .name("spool-writer".into())
        .spawn(move || writer.run())
        .map_err(|e| SpoolError::Failed(format!("cannot start the spool writer: {e}")))
}

/// Where the writer starts: a new segment after sealing the newest one, or,
/// when that cannot be done (a full disk), the newest segment itself, so
/// the gateway still starts and can deliver what it holds.
fn first_segment(
    shared: &Shared,
    next: u64,
    newest: Option<Newest>,
) -> Result<(u64, PathBuf, File, u64), SpoolError> {
    let sealed = match newest {
        Some(n) if !n.sealed => seal(shared, n.seq, &segment_path(&shared.dir, n.seq)),
        _ => Ok(()),
    };
    let err = match sealed.and_then(|()| create_segment(shared, next)) {
        Ok((path, file)) => return Ok((next, path, file, HEADER_LEN as u64)),
        Err(err) => err,
    };
    let Some(n) = newest.filter(|n| n.usable) else {
        return Err(err);
    };
    let path = segment_path(&shared.dir, n.seq);
    let file = OpenOptions::new()
        .append(true)
        .open(&path)
        .map_err(|e| SpoolError::io(&path, e))?;
    let len = file.metadata().map_err(|e| SpoolError::io(&path, e))?.len();
    tracing::warn!(%err, segment = %path.display(), "cannot start a new spool segment; going on in the newest one");
    shared.active.store(n.seq, Ordering::Release);
    Ok((n.seq, path, file, len))
}

/// Appends the seal to segment `seq` (its last record: the writer moves on
/// to the next), durably.
fn seal(shared: &Shared, seq: u64, path: &std::path::Path) -> Result<(), SpoolError> {
    let mut bytes = Vec::with_capacity(24);
    encode_seal(&mut bytes, shared.key);
    OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut f| {
            f.write_all(&bytes)?;
            f.sync_data()
        })
        .map_err(|e| SpoolError::io(path, e))?;
    shared.index().grow(seq, bytes.len() as u64);
    Ok(())
}

/// Creates segment `seq` with its header, durably.
fn create_segment(shared: &Shared, seq: u64) -> Result<(PathBuf, File), SpoolError> {
    let path = segment_path(&shared.dir, seq);
    let mut file = OpenOptions::new()
        .append(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| SpoolError::io(&path, e))?;
    let written = file
        .write_all(&encode_header(shared.key))
        .and_then(|()| file.sync_data())
        .map_err(|e| SpoolError::io(&path, e))
        .and_then(|()| sync_dir(&shared.dir));
    if let Err(e) = written {
        drop(file);
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    shared.index().add_segment(seq, HEADER_LEN as u64);
    shared.active.store(seq, Ordering::Release);
    Ok((path, file))
}

struct Writer {
    shared: Arc<Shared>,
    options: SpoolOptions,
    seq: u64,
    path: PathBuf,
    file: File,
    len: u64,
    /// Bytes past `len` may be on disk (a failed write whose undo failed
    /// too): truncate before writing anything else.
    dirty: bool,
    buf: Vec<u8>,
}

impl Writer {
    fn run(&mut self) {
        let segment_bytes = usize::try_from(self.options.segment_bytes).unwrap_or(usize::MAX);
        while let Some(batch) = self.shared.inbox.take(segment_bytes) {
            self.commit(batch);
        }
    }

    fn commit(&mut self, batch: Batch) {
        let Batch {
            copies,
            outcomes,
            messages,
        } = batch;
        if self.dirty && !self.undo() {
            let err = SpoolError::Failed(format!(
                "{} could not be truncated after a failed write",
                self.path.display()
            ));
            return fail_all(copies, outcomes, messages, &err);
        }
        let copies = self.fresh(copies);
        let mut messages = self.within_reserve(messages);
        let incoming: u64 = copies
            .iter()
            .map(|c| c.bytes.len())
            .chain(outcomes.iter().chain(&messages).map(|r| r.bytes.len()))
            .sum::<usize>() as u64;
        if incoming == 0 {
            return;
        }
        let rotated =
            self.len > HEADER_LEN as u64 && self.len + incoming > self.options.segment_bytes;
        if rotated {
            match self
                .seal()
                .and_then(|()| create_segment(&self.shared, self.seq + 1))
            {
                Ok((path, file)) => {
                    self.seq += 1;
                    (self.path, self.file, self.len) = (path, file, HEADER_LEN as u64);
                }
                Err(err) => {
                    // No new messages into a segment already full; outcomes
                    // still go in (they are tiny, and delivery needs them).
                    tracing::warn!(%err, "cannot start a new spool segment");
                    fail_all(copies, Vec::new(), std::mem::take(&mut messages), &err);
                    if outcomes.is_empty() {
                        return;
                    }
                    return self.write(Vec::new(), outcomes, Vec::new(), false);
                }
            }
        }
        self.write(copies, outcomes, messages, rotated);
    }

    fn write(
        &mut self,
        copies: Vec<Copy>,
        outcomes: Vec<Request>,
        messages: Vec<Request>,
        rotated: bool,
    ) {
        if let Err(err) = self.append(&copies, &outcomes, &messages) {
            return fail_all(copies, outcomes, messages, &err);
        }
        let changed = !outcomes.is_empty() || !copies.is_empty();
        self.apply(copies, outcomes, messages);
        if changed || rotated {
            self.shared.reclaim.notify();
        }
    }

    /// Seals the current segment before the next one is started. The seal
    /// goes in at the end even when a later batch then stays in this
    /// segment (the next segment could not be made): the last seal is the
    /// one that counts.
    fn seal(&mut self) -> Result<(), SpoolError> {
        if self.dirty && !self.undo() {
            return Err(SpoolError::Failed(
                "a failed write is not undone yet".into(),
            ));
        }
        let mut bytes = Vec::with_capacity(24);
        encode_seal(&mut bytes, self.shared.key);
        let written = self
            .file
            .write_all(&bytes)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            self.undo();
            return Err(SpoolError::io(&self.path, e));
        }
        self.shared.index().grow(self.seq, bytes.len() as u64);
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Drops compaction copies of messages that changed since they were
    /// made.
    fn fresh(&self, copies: Vec<Copy>) -> Vec<Copy> {
        let index = self.shared.index();
        let mut keep = Vec::with_capacity(copies.len());
        for c in copies {
            let current = index.live.get(&c.id);
            if current.is_some_and(|e| e.version == c.version && e.segment == c.from) {
                keep.push(c);
            } else {
                let _ = c.reply.send(CopyOutcome::Stale);
            }
        }
        keep
    }

    /// Refuses new messages that would leave less than the outcome reserve
    /// free on the filesystem.
    fn within_reserve(&self, messages: Vec<Request>) -> Vec<Request> {
        let reserve = self.options.outcome_reserve_bytes;
        if messages.is_empty() || reserve == 0 {
            return messages;
        }
        let Ok(space) = space::measure(&self.shared.dir) else {
            return messages;
        };
        let mut room = space.available.saturating_sub(reserve);
        let mut keep = Vec::with_capacity(messages.len());
        for m in messages {
            let need = m.bytes.len() as u64;
            if need <= room {
                room -= need;
                keep.push(m);
            } else {
                let _ = m.reply.send(Err(SpoolError::NoSpace(format!(
                    "storing {} would leave less than the {} kept free for delivery outcomes \
                     ({} free on the spool's filesystem)",
                    mib(need),
                    mib(reserve),
                    mib(space.available)
                ))));
            }
        }
        keep
    }

    /// Writes the batch at the end of the segment and syncs; undoes it all
    /// on failure.
    fn append(
        &mut self,
        copies: &[Copy],
        outcomes: &[Request],
        messages: &[Request],
    ) -> Result<(), SpoolError> {
        self.buf.clear();
        for bytes in copies
            .iter()
            .map(|c| &c.bytes)
            .chain(outcomes.iter().chain(messages).map(|r| &r.bytes))
        {
            self.buf.extend_from_slice(bytes);
        }
        let started = std::time::Instant::now();
        let result = self
            .file
            .write_all(&self.buf)
            .and_then(|()| self.file.sync_data());
        match result {
            Ok(()) => {
                self.shared.sync_latency.observe(started.elapsed());
                Ok(())
            }
            Err(e) => {
                let undone = self.undo();
                let err = SpoolError::io(&self.path, e);
                tracing::error!(
                    %err, undone,
                    "spool write failed; the batch was {} and its {} request(s) refused",
                    if undone { "removed again" } else { "NOT removed yet (retrying before the next write)" },
                    copies.len() + outcomes.len() + messages.len()
                );
                Err(err)
            }
        }
    }

    /// Truncates the segment back to the last good length, durably.
    fn undo(&mut self) -> bool {
        let ok = self
            .file
            .set_len(self.len)
            .and_then(|()| self.file.sync_data())
            .is_ok();
        self.dirty = !ok;
        self.shared
            .writer_dirty
            .store(self.dirty, Ordering::Release);
        ok
    }

    fn apply(&mut self, copies: Vec<Copy>, outcomes: Vec<Request>, messages: Vec<Request>) {
        let mut at = self.len;
        let seq = self.seq;
        let mut place = |len: usize, body_len: u64| {
            let p = Placement {
                segment: seq,
                record_len: len as u64,
                body_offset: at + len as u64 - body_len,
                body_len,
            };
            at += len as u64;
            p
        };
        let mut copy_replies = Vec::with_capacity(copies.len());
        let mut replies = Vec::with_capacity(outcomes.len() + messages.len());
        {
            let mut index = self.shared.index();
            for c in copies {
                let p = place(c.bytes.len(), c.body_len);
                index.insert(c.id, c.envelope, c.state, p);
                copy_replies.push(c.reply);
            }
            for r in outcomes.into_iter().chain(messages) {
                let (len, reply) = (r.bytes.len(), r.reply);
                match r.job {
                    Job::Message {
                        id,
                        envelope,
                        body_len,
                    } => {
                        let p = place(len, body_len);
                        index.insert(id, envelope, StoredState::default(), p);
                    }
                    Job::Finished { id, recipients } => {
                        index.apply(Record::Finished { id, recipients }, place(len, 0))
                    }
                    Job::Schedule { id, schedule } => {
                        index.apply(Record::Schedule { id, schedule }, place(len, 0))
                    }
                    Job::Hold { id, held } => index.apply(Record::Hold { id, held }, place(len, 0)),
                }
                replies.push(reply);
            }
            index.grow(seq, at - self.len);
        }
        self.len = at;
        for r in copy_replies {
            let _ = r.send(CopyOutcome::Written);
        }
        for r in replies {
            let _ = r.send(Ok(()));
        }
    }
}

fn fail_all(copies: Vec<Copy>, outcomes: Vec<Request>, messages: Vec<Request>, err: &SpoolError) {
    for c in copies {
        let _ = c.reply.send(CopyOutcome::Failed(err.clone()));
    }
    for r in outcomes.into_iter().chain(messages) {
        let _ = r.reply.send(Err(err.clone()));
    }
}
