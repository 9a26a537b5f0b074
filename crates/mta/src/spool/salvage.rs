//! `portcullis queue salvage`: rebuilding a damaged spool from every record
//! that still reads, so the gateway can start again.
//!
//! Every segment is read past its damage (resynchronising to the next valid
//! frame). The live messages, with the state their records give them, are
//! written into one new segment and synced; only then are the old segments
//! removed, the damaged ones moved aside as `<segment>.damaged-<time>` for
//! the operator (within the keep-damaged limits). A crash half-way leaves
//! the damaged files in place, so the gateway still refuses to start and
//! salvage can simply run again. What the damaged bytes held is lost: a
//! message whose only record was damaged, or an outcome (its recipients are
//! then delivered again). The report says where the damage was.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::damaged_files;
use super::record::{encode_header, encode_message};
use super::replay::{self, Damage, Mode};
use super::{SpoolError, SpoolOptions, read_at, segment_path, sync_dir};

/// What salvage did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SalvageReport {
    /// The damage found (empty: the spool was fine and nothing changed).
    pub damage: Vec<Damage>,
    /// Messages kept.
    pub messages: usize,
    /// The segment they were written to.
    pub new_segment: Option<PathBuf>,
    /// Damaged segments moved aside (removed again if over the keep limits).
    pub moved_aside: Vec<PathBuf>,
    /// Undamaged segments removed (their live messages are in the new one).
    pub removed: Vec<PathBuf>,
}

pub(super) fn salvage(dir: &Path, options: &SpoolOptions) -> Result<SalvageReport, SpoolError> {
    let rec = replay::replay(dir, Mode::Salvage, options.keep_damaged)?;
    let mut report = SalvageReport {
        messages: rec.index.live.len(),
        damage: rec.damage,
        new_segment: None,
        moved_aside: Vec::new(),
        removed: Vec::new(),
    };
    if report.damage.is_empty() {
        return Ok(report);
    }

    let seq = rec.max_segment + 1;
    let path = segment_path(dir, seq);
    let mut out = encode_header(rec.key).to_vec();
    let mut ids: Vec<_> = rec.index.live.keys().copied().collect();
    ids.sort_unstable();
    for id in ids {
        let Some(e) = rec.index.live.get(&id) else {
            continue;
        };
        let body = read_at(&(segment_path(dir, e.segment), e.body_offset, e.body_len))?;
        encode_message(&mut out, rec.key, id, &e.envelope, &e.state(), &body);
    }
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .and_then(|mut f| {
            f.write_all(&out)?;
            f.sync_all()
        })
        .map_err(|e| SpoolError::io(&path, e))?;
    sync_dir(dir)?;
    replay::write_key_file(dir, rec.key)?;
    report.new_segment = Some(path);

    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for (_, old) in &rec.files {
        let damaged = report.damage.iter().any(|d| &d.file == old);
        if damaged {
            let mut aside = old.as_os_str().to_owned();
            aside.push(format!(".damaged-{stamp}"));
            let aside = PathBuf::from(aside);
            fs::rename(old, &aside).map_err(|e| SpoolError::io(old, e))?;
            report.moved_aside.push(aside);
        } else {
            fs::remove_file(old).map_err(|e| SpoolError::io(old, e))?;
            report.removed.push(old.clone());
        }
    }
    sync_dir(dir)?;
    let newest = report.moved_aside.last().cloned();
    damaged_files::trim(dir, options.keep_damaged, newest.as_deref());
    tracing::warn!(
        spool = %dir.display(), messages = report.messages, damaged = report.damage.len(),
        "spool salvaged: every readable message kept, damaged files moved aside"
    );
    Ok(report)
}
