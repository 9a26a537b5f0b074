//! Entry points for the cargo-fuzz target `spool_segment` (not a stable
//! API): after damage, the bytes of a segment file are untrusted input, and
//! these run them through the same decoders recovery uses.

use super::record;
use super::scan;

/// Reads `data` as a segment file: its header, then every frame with
/// resynchronisation after damage. Returns how many records decoded and
/// how many damaged ranges were found; checks the ranges are ordered and
/// inside the input.
pub fn scan_segment(data: &[u8]) -> (usize, usize) {
    let key = match scan::header(data) {
        scan::HeaderState::Valid(key) => key,
        scan::HeaderState::Damaged(_) => data
            .get(8..16)
            .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8]))),
    };
    let mut records = 0;
    let mut last_end = 0;
    let damage = scan::frames(data, key, |at, _, len| {
        assert!(at >= last_end && at + len <= data.len() as u64);
        last_end = at + len;
        records += 1;
    });
    for d in &damage {
        assert!(d.start < d.end && d.end <= data.len() as u64);
    }
    (records, damage.len())
}

/// Frames `payload` with a valid checksum and decodes it: reaches the
/// payload decoder with arbitrary contents.
pub fn decode_payload(payload: &[u8]) -> bool {
    let key = 0x5eed;
    let framed = record::frame_raw(key, payload);
    record::decode_frame(key, &framed).is_ok()
}

/// The records of a segment file, as `(start, end, message id)` byte
/// ranges (for tests that damage chosen records and check what survives);
/// a seal has id 0. Empty when the header does not read.
pub fn record_spans(data: &[u8]) -> Vec<(u64, u64, u64)> {
    let scan::HeaderState::Valid(key) = scan::header(data) else {
        return Vec::new();
    };
    let mut spans = Vec::new();
    scan::frames(data, key, |at, record, len| {
        spans.push((at, at + len, record.id().unwrap_or(0)));
    });
    spans
}

/// Length of the segment header.
pub const SEGMENT_HEADER: u64 = record::HEADER_LEN as u64;

/// A valid segment header for `key`.
pub fn segment_header(key: u64) -> Vec<u8> {
    record::encode_header(key).to_vec()
}

/// `payload` framed as a record of the spool with `key` (valid checksum,
/// whatever the payload holds).
pub fn frame(key: u64, payload: &[u8]) -> Vec<u8> {
    record::frame_raw(key, payload)
}
