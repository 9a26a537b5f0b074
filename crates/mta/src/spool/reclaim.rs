//! Reclaiming disk space in the background: deleting segments with nothing
//! live left, and compacting (copying the few live messages of a mostly
//! dead segment forward so it can go).
//!
//! The bound it keeps: the segment files hold at most twice the bytes of
//! the live records plus one segment. Over the bound, the sealed segments
//! hold more dead bytes than live ones, so some segment is less than half
//! live and reclaiming it (with the older segments it depends on, see
//! `index.rs`) frees more than it copies. The thread picks the group that
//! frees the most for what it copies. Under the bound it still reclaims a
//! group that frees a whole segment for at most a quarter of that in
//! copying, so one long-deferred message does not keep dead traffic on disk
//! until the bound is reached.
//!
//! Copies go through the writer's compaction lane, which puts at most
//! `COPY_BUDGET` bytes into each batch: compaction shares the group commit
//! (no extra sync per message) and never holds receipt up by more than that.
//! Reading the old copies happens here, off the writer thread.

use std::fs;
use std::io::ErrorKind;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::oneshot;

use super::lanes::{COPY_BUDGET, Copy, CopyOutcome};
use super::record::{HEADER_LEN, encode_message};
use super::{Shared, SpoolError, SpoolOptions, read_at, segment_path, sync_dir};

/// A wake-up flag for the reclaim thread.
#[derive(Debug, Default)]
pub(super) struct Signal {
    state: Mutex<(bool, bool)>,
    cv: Condvar,
}

impl Signal {
    /// Something changed: look again.
    pub(super) fn notify(&self) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).0 = true;
        self.cv.notify_one();
    }

    pub(super) fn stop(&self) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).1 = true;
        self.cv.notify_one();
    }

    fn stopping(&self) -> bool {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).1
    }

    /// Waits for a notification or `timeout`; true when told to stop.
    fn wait(&self, timeout: Duration) -> bool {
        let guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (mut guard, _) = self
            .cv
            .wait_timeout_while(guard, timeout, |(pending, stop)| !*pending && !*stop)
            .unwrap_or_else(|p| p.into_inner());
        guard.0 = false;
        guard.1
    }
}

pub(super) fn start(
    shared: Arc<Shared>,
    options: SpoolOptions,
) -> Result<JoinHandle<()>, SpoolError> {
    std::thread::Builder::new()
        .name("spool-reclaim".into())
        .spawn(move || {
            // A failed step (full disk) is retried at the next change or
            // after this long.
            while !shared.reclaim.wait(Duration::from_secs(2)) {
                reclaim(&shared, &options);
            }
        })
        .map_err(|e| SpoolError::Failed(format!("cannot start the spool reclaim thread: {e}")))
}

/// Deletes what can go, then compacts while it pays. One pass at a time.
pub(super) fn reclaim(shared: &Shared, options: &SpoolOptions) {
    let _one = shared.reclaiming.lock().unwrap_or_else(|p| p.into_inner());
    while !shared.reclaim.stopping() {
        if delete_dead(shared).is_err() {
            return;
        }
        let Some(group) = choose(shared, options) else {
            return;
        };
        let before = shared.index().usage().0;
        for seq in group {
            if copy_forward(shared, seq).is_err() || delete_if_dead(shared, seq).is_err() {
                return;
            }
        }
        if shared.index().usage().0 >= before {
            // Messages kept changing under the copies: try again later
            // rather than spin.
            return;
        }
    }
}

/// Deletes every sealed segment with nothing live and no dependency left.
fn delete_dead(shared: &Shared) -> Result<(), SpoolError> {
    loop {
        let next = {
            let index = shared.index();
            let active = shared.active_segment();
            index
                .segments
                .keys()
                .copied()
                .find(|s| *s != active && index.deletable(*s))
        };
        match next {
            Some(seq) => delete_if_dead(shared, seq)?,
            None => return Ok(()),
        }
    }
}

fn delete_if_dead(shared: &Shared, seq: u64) -> Result<(), SpoolError> {
    if seq == shared.active_segment() || !shared.index().deletable(seq) {
        return Ok(());
    }
    // Nothing is ever added to a sealed segment, so it stays deletable
    // while the file goes. It leaves the index only once the removal is
    // durable: segments that depend on it must not go first.
    let path = segment_path(&shared.dir, seq);
    match fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => {
            let err = SpoolError::io(&path, e);
            tracing::warn!(%err, "could not delete a spool segment with nothing live in it");
            return Err(err);
        }
    }
    sync_dir(&shared.dir)?;
    shared.index().segments.remove(&seq);
    Ok(())
}

/// The segments to reclaim next, oldest first, if any group pays.
fn choose(shared: &Shared, options: &SpoolOptions) -> Option<Vec<u64>> {
    let index = shared.index();
    let active = shared.active_segment();
    let (disk, live) = index.usage();
    // The key file counts too: the bound is on everything in the directory.
    let budget = live.saturating_mul(2).saturating_add(options.segment_bytes);
    let over = disk + HEADER_LEN as u64 > budget;
    let mut best: Option<(u64, u64, Vec<u64>)> = None;
    for (&seq, info) in &index.segments {
        if seq == active || info.bytes.saturating_sub(info.live_bytes) <= HEADER_LEN as u64 {
            continue;
        }
        let group = index.closure(seq);
        let (gain, cost) = group.iter().fold((0, 0), |(g, c), s| {
            let i = &index.segments[s];
            (g + i.bytes, c + i.live_bytes)
        });
        let net = gain.saturating_sub(cost);
        if best.as_ref().is_none_or(|b| net > b.0) {
            best = Some((net, cost, group));
        }
    }
    let (net, cost, group) = best?;
    let gain = net + cost;
    let pays =
        (over && net > 0) || (gain >= options.segment_bytes && cost.saturating_mul(4) <= gain);
    pays.then_some(group)
}

/// Copies every live message of `seq` forward, in chunks.
fn copy_forward(shared: &Shared, seq: u64) -> Result<(), SpoolError> {
    let path = segment_path(&shared.dir, seq);
    // A message that changes while its copy waits is copied again; give up
    // on a segment after a few rounds and come back later.
    for _ in 0..8 {
        let pinned: Vec<_> = {
            let index = shared.index();
            index
                .live
                .iter()
                .filter(|(_, e)| e.segment == seq)
                .map(|(id, e)| (*id, e.clone()))
                .collect()
        };
        if pinned.is_empty() {
            return Ok(());
        }
        tracing::debug!(segment = %path.display(), messages = pinned.len(), "compacting spool segment");
        let mut waiting = Vec::new();
        let mut in_flight = 0;
        for (id, entry) in pinned {
            if shared.reclaim.stopping() {
                return Err(SpoolError::Failed("stopping".into()));
            }
            let body = read_at(&(path.clone(), entry.body_offset, entry.body_len))?;
            let state = entry.state();
            let mut bytes = Vec::with_capacity(body.len() + 256);
            encode_message(&mut bytes, shared.key, id, &entry.envelope, &state, &body);
            in_flight += bytes.len();
            let (reply, rx) = oneshot::channel();
            let copy = Copy {
                id,
                from: seq,
                version: entry.version,
                envelope: entry.envelope,
                state,
                body_len: entry.body_len,
                bytes,
                reply,
            };
            if !shared.inbox.push_copy(copy) {
                return Err(SpoolError::Failed("the spool writer has stopped".into()));
            }
            waiting.push(rx);
            if in_flight >= COPY_BUDGET {
                settle(std::mem::take(&mut waiting))?;
                in_flight = 0;
            }
        }
        settle(waiting)?;
    }
    Ok(())
}

fn settle(waiting: Vec<oneshot::Receiver<CopyOutcome>>) -> Result<(), SpoolError> {
    for rx in waiting {
        match rx.blocking_recv() {
            Ok(CopyOutcome::Written | CopyOutcome::Stale) => {}
            Ok(CopyOutcome::Failed(err)) => {
                tracing::warn!(%err, "spool compaction paused: could not copy a message forward");
                return Err(err);
            }
            Err(_) => return Err(SpoolError::Failed("the spool writer has stopped".into())),
        }
    }
    Ok(())
}
