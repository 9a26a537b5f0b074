//! The spool's single writer thread: group commit, segment rotation and
//! reclaiming space.
//!
//! Every write goes through one thread so appends never interleave and one
//! `fdatasync` can cover every request that queued up while the previous one
//! ran. The index is updated only here, after the sync, so a reader never sees
//! a message that is not yet durable. After a write or sync error the writer
//! refuses everything: what reached the disk is unknown until the next
//! recovery, and answering `250` on top of it would be a lie.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use super::{
    Entry, Envelope, Shared, SpoolError, SpoolOptions, read_at, record, segment_path, sync_dir,
};

/// What a request does to the index once it is durable.
#[derive(Debug)]
pub(super) enum Job {
    Message {
        id: u64,
        envelope: Arc<Envelope>,
        finished: Vec<bool>,
        body_len: u64,
    },
    Finished {
        id: u64,
        recipients: Vec<u32>,
    },
}

#[derive(Debug)]
pub(super) struct Request {
    pub(super) job: Job,
    /// The framed record, encoded by the caller's thread.
    pub(super) bytes: Vec<u8>,
    pub(super) reply: oneshot::Sender<Result<(), SpoolError>>,
}

/// A batch stops growing past this many bytes, so one huge burst does not
/// hold every earlier sender behind a single enormous write.
const BATCH_BYTES: usize = 16 << 20;

pub(super) fn start(
    shared: Arc<Shared>,
    first_segment: u64,
    options: SpoolOptions,
) -> Result<(mpsc::Sender<Request>, JoinHandle<()>), SpoolError> {
    let (path, file) = create_segment(&shared, first_segment)?;
    let mut writer = Writer {
        shared,
        options,
        seq: first_segment,
        path,
        file,
        len: 0,
        failed: None,
        batch: Vec::new(),
    };
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::Builder::new()
        .name("spool-writer".into())
        .spawn(move || writer.run(rx))
        .map_err(|e| SpoolError::Failed(format!("cannot start the spool writer: {e}")))?;
    Ok((tx, handle))
}

fn create_segment(shared: &Shared, seq: u64) -> Result<(PathBuf, File), SpoolError> {
    let path = segment_path(&shared.dir, seq);
    let file = OpenOptions::new()
        .append(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| SpoolError::io(&path, e))?;
    sync_dir(&shared.dir)?;
    shared.index().segments.insert(seq, 0);
    Ok((path, file))
}

struct Writer {
    shared: Arc<Shared>,
    options: SpoolOptions,
    seq: u64,
    path: PathBuf,
    file: File,
    len: u64,
    failed: Option<String>,
    batch: Vec<u8>,
}

impl Writer {
    fn run(&mut self, rx: mpsc::Receiver<Request>) {
        while let Ok(first) = rx.recv() {
            let mut bytes = first.bytes.len();
            let mut requests = vec![first];
            while bytes < BATCH_BYTES {
                match rx.try_recv() {
                    Ok(next) => {
                        bytes += next.bytes.len();
                        requests.push(next);
                    }
                    Err(_) => break,
                }
            }
            self.commit(requests);
            self.reclaim();
        }
    }

    fn commit(&mut self, requests: Vec<Request>) {
        if let Err(err) = self.rotate_if_full() {
            self.fail(err.to_string());
        }
        if let Some(reason) = &self.failed {
            for request in requests {
                let _ = request.reply.send(Err(SpoolError::Failed(reason.clone())));
            }
            return;
        }
        let offsets: Vec<u64> = requests
            .iter()
            .scan(self.len, |at, r| {
                let here = *at;
                *at += r.bytes.len() as u64;
                Some(here)
            })
            .collect();
        if let Err(err) = self.append(&requests) {
            self.fail(err.to_string());
            for request in requests {
                let _ = request.reply.send(Err(err.clone()));
            }
            return;
        }
        {
            let mut index = self.shared.index();
            for (request, at) in requests.iter().zip(offsets) {
                match &request.job {
                    Job::Message {
                        id,
                        envelope,
                        finished,
                        body_len,
                    } => index.insert(
                        *id,
                        Entry {
                            envelope: envelope.clone(),
                            finished: finished.clone(),
                            segment: self.seq,
                            body_offset: at + request.bytes.len() as u64 - body_len,
                            body_len: *body_len,
                        },
                    ),
                    Job::Finished { id, recipients } => index.finish(*id, recipients),
                }
            }
        }
        for request in requests {
            let _ = request.reply.send(Ok(()));
        }
    }

    /// Writes the requests' records at the end of the segment and syncs.
    fn append(&mut self, requests: &[Request]) -> Result<(), SpoolError> {
        let written = match requests {
            [one] => self.file.write_all(&one.bytes).map(|()| one.bytes.len()),
            many => {
                self.batch.clear();
                for request in many {
                    self.batch.extend_from_slice(&request.bytes);
                }
                self.file.write_all(&self.batch).map(|()| self.batch.len())
            }
        };
        let written = written
            .and_then(|n| self.file.sync_data().map(|()| n))
            .map_err(|e| SpoolError::io(&self.path, e))?;
        self.len += written as u64;
        Ok(())
    }

    fn rotate_if_full(&mut self) -> Result<(), SpoolError> {
        if self.len < self.options.segment_bytes {
            return Ok(());
        }
        let (path, file) = create_segment(&self.shared, self.seq + 1)?;
        self.seq += 1;
        self.path = path;
        self.file = file;
        self.len = 0;
        Ok(())
    }

    fn fail(&mut self, reason: String) {
        tracing::error!(spool = %self.shared.dir.display(), %reason, "spool write failed; refusing new messages");
        self.failed.get_or_insert(reason);
    }

    /// Deletes segments that no longer hold live messages, oldest first, and
    /// copies forward the few live messages that pin an old segment when too
    /// many segments have piled up. Oldest-first matters: a newer segment may
    /// hold the "finished" records of messages in an older one, and deleting
    /// it first would bring those messages back at the next recovery.
    fn reclaim(&mut self) {
        while self.failed.is_none() {
            let (oldest, live, count) = {
                let index = self.shared.index();
                match index.segments.first_key_value() {
                    Some((seq, live)) => (*seq, *live, index.segments.len()),
                    None => return,
                }
            };
            if oldest == self.seq {
                return;
            }
            let step = if live == 0 {
                self.delete_segment(oldest)
            } else if count > self.options.compact_after_segments {
                self.compact(oldest)
            } else {
                return;
            };
            if let Err(err) = step {
                tracing::warn!(%err, "could not reclaim spool space; will try again later");
                return;
            }
        }
    }

    fn delete_segment(&mut self, seq: u64) -> Result<(), SpoolError> {
        let path = segment_path(&self.shared.dir, seq);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(SpoolError::io(&path, e)),
        }
        sync_dir(&self.shared.dir)?;
        self.shared.index().segments.remove(&seq);
        Ok(())
    }

    /// Re-appends the live messages of segment `seq`, with the recipients
    /// they have finished, so the segment can go.
    fn compact(&mut self, seq: u64) -> Result<(), SpoolError> {
        let path = segment_path(&self.shared.dir, seq);
        let pinned: Vec<(u64, Entry)> = self
            .shared
            .index()
            .live
            .iter()
            .filter(|(_, e)| e.segment == seq)
            .map(|(id, e)| (*id, e.clone()))
            .collect();
        let mut requests = Vec::with_capacity(pinned.len());
        for (id, entry) in pinned {
            let body = read_at(&(path.clone(), entry.body_offset, entry.body_len))?;
            let mut bytes = Vec::with_capacity(body.len() + 256);
            record::encode_message(
                &mut bytes,
                id,
                &entry.envelope,
                &entry.finished_list(),
                &body,
            );
            let (reply, _) = oneshot::channel();
            requests.push(Request {
                job: Job::Message {
                    id,
                    envelope: entry.envelope,
                    finished: entry.finished,
                    body_len: entry.body_len,
                },
                bytes,
                reply,
            });
        }
        tracing::info!(segment = %path.display(), messages = requests.len(), "compacting spool segment");
        self.commit(requests);
        match &self.failed {
            Some(reason) => Err(SpoolError::Failed(reason.clone())),
            None => Ok(()),
        }
    }
}
