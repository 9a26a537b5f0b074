//! Recovery: rebuilding the index of live messages from the segment files.
//!
//! Segments are read oldest first. A message record adds a message (or, when
//! it is a compaction copy, replaces the older copy); a "finished" record
//! marks recipients done. A record cut short at the end of the newest segment
//! is a write that was never acknowledged: with `repair` it is saved beside the
//! segment and cut off. Anything else unreadable is damage, and recovery stops
//! with an error that names the file and offset rather than drop messages.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::record::{self, FRAME_HEADER, FrameError, Record};
use super::{Entry, Index, SpoolError, sync_dir};

pub(super) struct Recovered {
    pub(super) index: Index,
    /// The highest message id seen in any record, so new ids never repeat.
    pub(super) max_id: u64,
    /// The highest segment number present (0 if none).
    pub(super) max_segment: u64,
}

/// Replays every segment in `dir`. Without `repair` nothing is changed, and a
/// segment that vanishes while being read (the live gateway reclaimed it) is
/// skipped.
pub(super) fn replay(dir: &Path, repair: bool) -> Result<Recovered, SpoolError> {
    let segments = list_segments(dir)?;
    let mut recovered = Recovered {
        index: Index::default(),
        max_id: 0,
        max_segment: segments.last().map_or(0, |(seq, _)| *seq),
    };
    for (n, (seq, path)) in segments.iter().enumerate() {
        let newest = n + 1 == segments.len();
        let data = match fs::read(path) {
            Ok(data) => data,
            Err(e) if !repair && e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(SpoolError::io(path, e)),
        };
        recovered.index.segments.insert(*seq, 0);
        let mut at = 0;
        while at < data.len() {
            match record::decode_frame(&data[at..]) {
                Ok((record, len)) => {
                    apply(&mut recovered, *seq, at as u64, record);
                    at += len;
                }
                Err(FrameError::Malformed(reason)) => {
                    return Err(corrupt(path, at, reason.to_string()));
                }
                Err(torn) if newest => {
                    if repair {
                        cut_torn_tail(path, &data, at)?;
                        tracing::warn!(
                            segment = %path.display(), offset = at, reason = ?torn,
                            "cut an unacknowledged partial write from the end of the spool"
                        );
                    }
                    break;
                }
                Err(err) => return Err(corrupt(path, at, format!("{err:?}"))),
            }
        }
    }
    Ok(recovered)
}

fn apply(recovered: &mut Recovered, segment: u64, frame_at: u64, record: Record) {
    match record {
        Record::Message {
            id,
            envelope,
            finished,
            body_at,
            body_len,
        } => {
            recovered.max_id = recovered.max_id.max(id);
            let mut done = vec![false; envelope.recipients.len()];
            for r in finished {
                if let Some(d) = done.get_mut(r as usize) {
                    *d = true;
                }
            }
            recovered.index.insert(
                id,
                Entry {
                    envelope: envelope.into(),
                    finished: done,
                    segment,
                    body_offset: frame_at + (FRAME_HEADER + body_at) as u64,
                    body_len: body_len as u64,
                },
            );
        }
        Record::Finished { id, recipients } => {
            recovered.max_id = recovered.max_id.max(id);
            recovered.index.finish(id, &recipients);
        }
    }
}

fn corrupt(path: &Path, offset: usize, reason: String) -> SpoolError {
    SpoolError::Corrupt {
        path: path.to_path_buf(),
        offset: offset as u64,
        reason,
    }
}

/// Saves the bytes after `at` beside the segment, then truncates it there.
fn cut_torn_tail(path: &Path, data: &[u8], at: usize) -> Result<(), SpoolError> {
    let mut saved = path.as_os_str().to_owned();
    saved.push(format!(".torn-{at}"));
    let saved = PathBuf::from(saved);
    File::create(&saved)
        .and_then(|mut f| {
            f.write_all(&data[at..])?;
            f.sync_all()
        })
        .map_err(|e| SpoolError::io(&saved, e))?;
    OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| {
            f.set_len(at as u64)?;
            f.sync_all()
        })
        .map_err(|e| SpoolError::io(path, e))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    sync_dir(dir)
}

/// Segment files, sorted by sequence number.
fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, SpoolError> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| SpoolError::io(dir, e))? {
        let entry = entry.map_err(|e| SpoolError::io(dir, e))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".log")) else {
            continue;
        };
        if stem.len() != 16 {
            continue;
        }
        if let Ok(seq) = u64::from_str_radix(stem, 16) {
            segments.push((seq, entry.path()));
        }
    }
    segments.sort();
    Ok(segments)
}
