//! Recovery: rebuilding the index of live messages from the segment files,
//! and telling apart the damage recovery may repair from the damage it must
//! not.
//!
//! Segments are read oldest first. A message record adds a message (or, when
//! it is a compaction copy, replaces the older copy); the other records
//! change its state. Damage never stops the reading: the scanner
//! resynchronises to the next valid frame and every valid record is applied.
//! What happens next depends on what the damage could have held:
//!
//! - bytes at the end of the newest segment with no valid record after them
//!   are a write the machine did not finish, never acknowledged: cut off
//!   (kept beside the segment as `<segment>.torn-<offset>`);
//! - a damaged segment header loses nothing (the key is in every header and
//!   in the `key` file): reported, and the records are read with the key
//!   from elsewhere;
//! - anything else may have held an acknowledged message, and the spool
//!   cannot tell which: opening fails with [`SpoolError::Corrupt`], naming
//!   the file and offset and the command that repairs it
//!   (`portcullis queue salvage`).

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::damaged_files::{self, Retention};
use super::index::{Index, Placement};
use super::record::{FRAME_HEADER, HEADER_LEN, Record, decode_header, encode_header};
use super::scan::{self, DamagedRange, HeaderState};
use super::{SpoolError, sync_dir};

/// The file that keeps a copy of the spool key.
pub(super) const KEY_FILE: &str = "key";

/// What kind of damage a range is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DamageKind {
    /// The end of the newest segment: a write that never completed, so never
    /// acknowledged. Cut off when the gateway starts.
    TornTail,
    /// A segment header or the key file: no message is lost.
    Header,
    /// Records: acknowledged messages or outcomes may be lost. The gateway
    /// does not start until `portcullis queue salvage` has run.
    Records,
}

/// One damaged range of one file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Damage {
    pub file: PathBuf,
    pub start: u64,
    pub end: u64,
    pub reason: String,
    pub kind: DamageKind,
}

impl Damage {
    /// Whether the gateway refuses to start because of it.
    pub fn is_fatal(&self) -> bool {
        self.kind == DamageKind::Records
    }
}

/// How to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// The gateway starts: cut torn tails, repair the key file, refuse on
    /// fatal damage.
    Open,
    /// Read only, beside a running gateway or for `queue check`: change
    /// nothing, skip segments that vanish while being read.
    Inspect,
    /// Read every valid record whatever the damage (`queue salvage`).
    Salvage,
}

pub(super) struct Recovered {
    pub(super) index: Index,
    /// The highest message id seen in any record, so new ids never repeat.
    pub(super) max_id: u64,
    /// The highest segment number present (0 if none).
    pub(super) max_segment: u64,
    pub(super) key: u64,
    pub(super) damage: Vec<Damage>,
    /// The segment files read, oldest first.
    pub(super) files: Vec<(u64, PathBuf)>,
    /// The newest segment, for the writer to seal (or, on a full disk, to
    /// go on writing in).
    pub(super) newest: Option<Newest>,
}

/// The newest segment after recovery.
#[derive(Debug, Clone, Copy)]
pub(super) struct Newest {
    pub(super) seq: u64,
    /// It already ends with a seal.
    pub(super) sealed: bool,
    /// Its header is this spool's and nothing in it is damaged: records
    /// may be appended.
    pub(super) usable: bool,
}

/// Replays every segment in `dir`.
pub(super) fn replay(
    dir: &Path,
    mode: Mode,
    retention: Retention,
) -> Result<Recovered, SpoolError> {
    let files = list_segments(dir)?;
    let mut damage = Vec::new();
    let key = find_key(dir, &files, mode, &mut damage)?;
    let mut rec = Recovered {
        index: Index::default(),
        max_id: 0,
        max_segment: files.last().map_or(0, |(seq, _)| *seq),
        key,
        damage,
        files: Vec::new(),
        newest: None,
    };
    for (n, (seq, path)) in files.iter().enumerate() {
        let newest = n + 1 == files.len();
        let data = match fs::read(path) {
            Ok(data) => data,
            Err(e) if mode == Mode::Inspect && e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(SpoolError::io(path, e)),
        };
        let header = scan::header(&data);
        // Frames of a segment written with another key cannot be read here:
        // that is not a torn write, whatever the position.
        let foreign = matches!(header, HeaderState::Valid(other) if other != key);
        if let HeaderState::Damaged(why) = header {
            if newest && mode == Mode::Open && data.len() <= HEADER_LEN {
                // Created but never written: the machine stopped inside
                // `create_segment`. Nothing in it was ever acknowledged.
                fs::remove_file(path).map_err(|e| SpoolError::io(path, e))?;
                sync_dir(dir)?;
                tracing::warn!(segment = %path.display(), "removed a spool segment whose creation did not complete");
                continue;
            }
            rec.damage.push(Damage {
                file: path.clone(),
                start: 0,
                end: HEADER_LEN.min(data.len()) as u64,
                reason: why.to_string(),
                kind: if data.len() <= HEADER_LEN && newest {
                    DamageKind::TornTail
                } else {
                    DamageKind::Header
                },
            });
        } else if foreign {
            rec.damage.push(Damage {
                file: path.clone(),
                start: 0,
                end: HEADER_LEN as u64,
                reason: "the segment belongs to another spool (different key)".into(),
                kind: DamageKind::Header,
            });
        }
        rec.index.add_segment(*seq, data.len() as u64);
        rec.files.push((*seq, path.clone()));
        let mut last = None;
        let ranges = scan::frames(&data, key, |at, record, len| {
            last = Some((at + len, matches!(record, Record::Seal)));
            apply(&mut rec, *seq, at, record, len);
        });
        let damaged_before = rec.damage.len();
        let mut len = data.len() as u64;
        let cut_at_end = ranges.iter().any(|r| r.at_end);
        for range in ranges {
            let torn = range.at_end && newest && !foreign;
            if torn && mode == Mode::Open {
                cut_torn_tail(path, &data, &range, retention)?;
                len = range.start;
                if let Some(s) = rec.index.segments.get_mut(seq) {
                    s.bytes = len;
                }
            }
            rec.damage.push(damage_of(path, range, torn));
        }
        let sealed = last.is_some_and(|(end, seal)| seal && end == data.len() as u64);
        if !newest && !sealed && !cut_at_end {
            // The writer seals a segment before it starts the next: one
            // that ends without its seal lost its end, and what was there
            // is unknown.
            rec.damage.push(Damage {
                file: path.clone(),
                start: last.map_or(HEADER_LEN as u64, |(end, _)| end).min(len),
                end: len,
                reason: "the segment ends without the record that closes it: it was cut short"
                    .into(),
                kind: DamageKind::Records,
            });
        }
        if newest {
            let clean = rec.damage[damaged_before..]
                .iter()
                .all(|d| d.kind == DamageKind::TornTail);
            rec.newest = Some(Newest {
                seq: *seq,
                sealed: sealed && len == data.len() as u64,
                usable: clean && !foreign && matches!(header, HeaderState::Valid(_)),
            });
        }
    }
    if mode == Mode::Open
        && let Some(fatal) = rec.damage.iter().find(|d| d.is_fatal())
    {
        let more = rec.damage.iter().filter(|d| d.is_fatal()).count() - 1;
        return Err(SpoolError::Corrupt {
            path: fatal.file.clone(),
            offset: fatal.start,
            reason: fatal.reason.clone(),
            more,
        });
    }
    Ok(rec)
}

fn damage_of(path: &Path, range: DamagedRange, torn: bool) -> Damage {
    Damage {
        file: path.to_path_buf(),
        start: range.start,
        end: range.end,
        reason: range.reason,
        kind: if torn {
            DamageKind::TornTail
        } else {
            DamageKind::Records
        },
    }
}

fn apply(rec: &mut Recovered, segment: u64, frame_at: u64, record: Record, len: u64) {
    rec.max_id = rec.max_id.max(record.id().unwrap_or(0));
    let (body_at, body_len) = match &record {
        Record::Message {
            body_at, body_len, ..
        } => (*body_at as u64, *body_len as u64),
        _ => (0, 0),
    };
    rec.index.apply(
        record,
        Placement {
            segment,
            record_len: len,
            body_offset: frame_at + FRAME_HEADER as u64 + body_at,
            body_len,
        },
    );
}

/// The spool key: from the key file, else from any readable segment header;
/// a new one for a spool with no data yet. In `Open` mode a missing or
/// damaged key file is rewritten.
fn find_key(
    dir: &Path,
    files: &[(u64, PathBuf)],
    mode: Mode,
    damage: &mut Vec<Damage>,
) -> Result<u64, SpoolError> {
    let key_path = dir.join(KEY_FILE);
    let from_file = match fs::read(&key_path) {
        Ok(bytes) => match decode_header(&bytes) {
            Ok(key) => Some(key),
            Err(why) => {
                damage.push(Damage {
                    file: key_path.clone(),
                    start: 0,
                    end: bytes.len() as u64,
                    reason: why.to_string(),
                    kind: DamageKind::Header,
                });
                None
            }
        },
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => return Err(SpoolError::io(&key_path, e)),
    };
    if let Some(key) = from_file {
        return Ok(key);
    }
    let mut any_data = false;
    let mut from_headers = None;
    for (_, path) in files {
        let head = match read_head(path) {
            Ok(h) => h,
            Err(e) if mode == Mode::Inspect && e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(SpoolError::io(path, e)),
        };
        any_data |= head.len() > HEADER_LEN;
        if let Ok(key) = decode_header(&head) {
            from_headers = Some(key);
            break;
        }
    }
    let key = match from_headers {
        Some(key) => key,
        None if !any_data => new_key(),
        None => {
            let file = files.first().map_or(key_path.clone(), |(_, p)| p.clone());
            return Err(SpoolError::Corrupt {
                path: file,
                offset: 0,
                reason: "neither the key file nor any segment header is readable, so no record \
                         can be verified"
                    .into(),
                more: 0,
            });
        }
    };
    if mode == Mode::Open {
        write_key_file(dir, key)?;
    }
    Ok(key)
}

fn read_head(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut head = Vec::with_capacity(HEADER_LEN + 1);
    fs::File::open(path)?
        .take(HEADER_LEN as u64 + 1)
        .read_to_end(&mut head)?;
    Ok(head)
}

/// A random key: the standard library's hasher keys come from the operating
/// system's random source.
fn new_key() -> u64 {
    use std::hash::BuildHasher;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    std::collections::hash_map::RandomState::new().hash_one((nanos, std::process::id()))
}

/// Writes the key file atomically (temporary file, fsync, rename).
pub(super) fn write_key_file(dir: &Path, key: u64) -> Result<(), SpoolError> {
    use std::io::Write;
    let tmp = dir.join("key.tmp");
    fs::File::create(&tmp)
        .and_then(|mut f| {
            f.write_all(&encode_header(key))?;
            f.sync_all()
        })
        .map_err(|e| SpoolError::io(&tmp, e))?;
    let path = dir.join(KEY_FILE);
    fs::rename(&tmp, &path).map_err(|e| SpoolError::io(&path, e))?;
    sync_dir(dir)
}

/// Keeps the bytes of a torn tail beside the segment (when the retention
/// allows and the disk has room), then truncates the segment there.
fn cut_torn_tail(
    path: &Path,
    data: &[u8],
    range: &DamagedRange,
    retention: Retention,
) -> Result<(), SpoolError> {
    let at = range.start as usize;
    let torn = data.get(at..).unwrap_or_default();
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".torn-{at}"));
    let kept = damaged_files::keep(&PathBuf::from(name), torn, retention);
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| {
            f.set_len(at as u64)?;
            f.sync_all()
        })
        .map_err(|e| SpoolError::io(path, e))?;
    tracing::warn!(
        segment = %path.display(), offset = at, bytes = torn.len(), reason = %range.reason,
        kept = %kept.as_deref().map_or("not kept".into(), |p| p.display().to_string()),
        "cut an unacknowledged partial write from the end of the spool"
    );
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Segment files, sorted by sequence number.
pub(super) fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, SpoolError> {
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
