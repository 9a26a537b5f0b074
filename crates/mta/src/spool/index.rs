//! The in-memory index of the spool: where each live message's current
//! record is, its state, and for every segment file how many bytes it holds,
//! how many of them are live, and which older segments must be deleted
//! before it may be.
//!
//! The last point is what makes deleting a segment out of order safe. A
//! record about message M (finished, schedule, hold) in segment S only means
//! something next to M's message record in an older segment T. Delete S
//! while T is still there and the next recovery brings M's old state back:
//! a delivered recipient is delivered again, a held message is released.
//! So S depends on every older segment that held a record of M when the
//! record was written, and may go only once they are gone. Dependencies
//! only ever point to older segments, so there are no cycles, and deleting
//! (or compacting) oldest first always makes progress. Recovery rebuilds the
//! same dependencies from the files, in the same order.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use super::record::{Record, StoredState};
use super::{Envelope, MessageId, QueuedMessage, Schedule};

/// Where each live message is, and what each segment holds.
#[derive(Debug, Default)]
pub(super) struct Index {
    pub(super) live: HashMap<u64, Entry>,
    /// Every segment file that exists, by sequence number.
    pub(super) segments: BTreeMap<u64, SegmentInfo>,
}

#[derive(Debug, Default, Clone)]
pub(super) struct SegmentInfo {
    /// The file's length.
    pub(super) bytes: u64,
    /// Live messages whose current record is here.
    pub(super) live: usize,
    /// Bytes of those records.
    pub(super) live_bytes: u64,
    /// Older segments that must be deleted before this one.
    pub(super) deps: BTreeSet<u64>,
}

#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub(super) envelope: Arc<Envelope>,
    pub(super) finished: Vec<bool>,
    pub(super) schedule: Schedule,
    pub(super) held: bool,
    /// The segment of the current record, and where its body is.
    pub(super) segment: u64,
    pub(super) body_offset: u64,
    pub(super) body_len: u64,
    /// Length of the current record (frame included).
    pub(super) record_len: u64,
    /// Segments holding a record of this message (old copies included).
    pub(super) copies: Vec<u64>,
    /// Bumped on every change, so a compaction copy made from an older
    /// state is recognised and dropped.
    pub(super) version: u64,
}

impl Entry {
    pub(super) fn state(&self) -> StoredState {
        StoredState {
            finished: (0u32..)
                .zip(&self.finished)
                .filter_map(|(i, done)| done.then_some(i))
                .collect(),
            schedule: self.schedule.clone(),
            held: self.held,
        }
    }

    pub(super) fn queued(&self, id: u64) -> QueuedMessage {
        QueuedMessage {
            id: MessageId(id),
            envelope: self.envelope.clone(),
            pending: (0u32..)
                .zip(&self.finished)
                .filter_map(|(i, done)| (!done).then_some(i))
                .collect(),
            size: self.body_len,
            schedule: self.schedule.clone(),
            held: self.held,
        }
    }
}

/// Where a message record landed.
#[derive(Debug, Clone, Copy)]
pub(super) struct Placement {
    pub(super) segment: u64,
    pub(super) record_len: u64,
    pub(super) body_offset: u64,
    pub(super) body_len: u64,
}

impl Index {
    /// A new segment file of `bytes` (its header).
    pub(super) fn add_segment(&mut self, seq: u64, bytes: u64) {
        self.segments.entry(seq).or_default().bytes = bytes;
    }

    pub(super) fn grow(&mut self, seq: u64, bytes: u64) {
        if let Some(s) = self.segments.get_mut(&seq) {
            s.bytes += bytes;
        }
    }

    /// Applies one record, written (or read back) at `place.segment`.
    pub(super) fn apply(&mut self, record: Record, place: Placement) {
        let segment = place.segment;
        match record {
            Record::Message {
                id,
                envelope,
                state,
                ..
            } => self.insert(id, Arc::new(envelope), state, place),
            Record::Finished { id, recipients } => self.update(id, segment, |e| {
                for r in recipients {
                    if let Some(done) = e.finished.get_mut(r as usize) {
                        *done = true;
                    }
                }
            }),
            Record::Schedule { id, schedule } => {
                self.update(id, segment, |e| e.schedule = schedule)
            }
            Record::Hold { id, held } => self.update(id, segment, |e| e.held = held),
            Record::Seal => {}
        }
    }

    /// A message record: new, or a copy replacing the current one.
    pub(super) fn insert(
        &mut self,
        id: u64,
        envelope: Arc<Envelope>,
        state: StoredState,
        place: Placement,
    ) {
        let mut finished = vec![false; envelope.recipients.len()];
        for r in &state.finished {
            if let Some(done) = finished.get_mut(*r as usize) {
                *done = true;
            }
        }
        let (mut copies, version) = match self.live.remove(&id) {
            Some(old) => {
                self.release(&old);
                (old.copies, old.version + 1)
            }
            None => (Vec::new(), 0),
        };
        copies.retain(|s| self.segments.contains_key(s));
        if !copies.contains(&place.segment) {
            copies.push(place.segment);
        }
        if finished.iter().all(|d| *d) {
            return;
        }
        let entry = Entry {
            envelope,
            finished,
            schedule: state.schedule,
            held: state.held,
            segment: place.segment,
            body_offset: place.body_offset,
            body_len: place.body_len,
            record_len: place.record_len,
            copies,
            version,
        };
        let s = self.segments.entry(place.segment).or_default();
        s.live += 1;
        s.live_bytes += entry.record_len;
        self.live.insert(id, entry);
    }

    /// A record about a live message written in `segment`: records the
    /// dependency, applies the change, and drops the message once every
    /// recipient is finished.
    fn update(&mut self, id: u64, segment: u64, change: impl FnOnce(&mut Entry)) {
        let Some(entry) = self.live.get_mut(&id) else {
            return;
        };
        change(entry);
        entry.version += 1;
        let older: Vec<u64> = entry
            .copies
            .iter()
            .copied()
            .filter(|s| *s < segment)
            .collect();
        let done = entry.finished.iter().all(|d| *d);
        if let Some(s) = self.segments.get_mut(&segment) {
            s.deps.extend(older);
        }
        if done && let Some(old) = self.live.remove(&id) {
            self.release(&old);
        }
    }

    fn release(&mut self, entry: &Entry) {
        if let Some(s) = self.segments.get_mut(&entry.segment) {
            s.live = s.live.saturating_sub(1);
            s.live_bytes = s.live_bytes.saturating_sub(entry.record_len);
        }
    }

    /// Whether `seq` can be deleted now: nothing live in it and every
    /// segment it depends on gone.
    pub(super) fn deletable(&self, seq: u64) -> bool {
        self.segments
            .get(&seq)
            .is_some_and(|s| s.live == 0 && s.deps.iter().all(|d| !self.segments.contains_key(d)))
    }

    /// `seq` and every existing segment it depends on, directly or not,
    /// oldest first.
    pub(super) fn closure(&self, seq: u64) -> Vec<u64> {
        let mut found = BTreeSet::new();
        let mut todo = vec![seq];
        while let Some(s) = todo.pop() {
            if !found.insert(s) {
                continue;
            }
            if let Some(info) = self.segments.get(&s) {
                todo.extend(
                    info.deps
                        .iter()
                        .filter(|d| self.segments.contains_key(d))
                        .copied(),
                );
            }
        }
        found
            .into_iter()
            .filter(|s| self.segments.contains_key(s))
            .collect()
    }

    /// Bytes in segment files, and bytes of live records.
    pub(super) fn usage(&self) -> (u64, u64) {
        self.segments
            .values()
            .fold((0, 0), |(d, l), s| (d + s.bytes, l + s.live_bytes))
    }

    pub(super) fn queued(&self) -> Vec<QueuedMessage> {
        let mut all: Vec<_> = self.live.iter().map(|(id, e)| e.queued(*id)).collect();
        all.sort_by_key(|m| m.id);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(n: usize) -> Arc<Envelope> {
        Arc::new(Envelope {
            sender: "a@example.org".into(),
            recipients: (0..n).map(|i| format!("r{i}@example.com")).collect(),
            received_at: 0,
            flags: Default::default(),
            dsn: Default::default(),
        })
    }

    fn place(segment: u64) -> Placement {
        Placement {
            segment,
            record_len: 100,
            body_offset: 0,
            body_len: 10,
        }
    }

    #[test]
    fn a_finished_record_pins_the_segment_of_its_message() {
        let mut ix = Index::default();
        ix.add_segment(1, 20);
        ix.add_segment(2, 20);
        ix.insert(7, envelope(1), StoredState::default(), place(1));
        ix.insert(8, envelope(1), StoredState::default(), place(1));
        ix.apply(
            Record::Finished {
                id: 7,
                recipients: vec![0],
            },
            place(2),
        );
        assert!(!ix.deletable(1), "message 8 is still live in 1");
        assert!(!ix.deletable(2), "2 cancels a record in 1");
        assert_eq!(ix.closure(2), vec![1, 2]);
        ix.segments.remove(&1);
        assert!(ix.deletable(2));
    }

    #[test]
    fn a_copy_moves_the_live_bytes_and_keeps_the_old_copy_as_a_dependency() {
        let mut ix = Index::default();
        for s in 1..=3 {
            ix.add_segment(s, 20);
        }
        ix.insert(7, envelope(2), StoredState::default(), place(1));
        ix.insert(
            7,
            envelope(2),
            StoredState {
                finished: vec![0],
                ..Default::default()
            },
            place(2),
        );
        assert_eq!(ix.segments[&1].live, 0);
        assert_eq!(ix.segments[&2].live_bytes, 100);
        ix.apply(
            Record::Finished {
                id: 7,
                recipients: vec![1],
            },
            place(3),
        );
        assert!(ix.live.is_empty());
        assert_eq!(ix.segments[&3].deps, BTreeSet::from([1, 2]));
        assert!(ix.deletable(1) && !ix.deletable(3));
    }
}
