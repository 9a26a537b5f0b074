//! Reading one segment's bytes: every valid frame, and every damaged byte
//! range between them.
//!
//! After a frame that does not read (bad checksum, impossible length, cut
//! short), the scanner looks for the next place where this spool's key
//! starts a frame that reads, and carries on from there: one damaged record
//! never hides the valid records after it. What lies between is reported as
//! a damaged range. A range that runs to the end of the file with no valid
//! frame after it is marked `at_end`: at the end of the newest segment that
//! is a write the machine did not finish (the torn-tail rule); anywhere else
//! it is damage like any other.

use super::record::{self, HEADER_LEN, Record};

/// A byte range of a segment that holds no readable record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedRange {
    /// First damaged byte.
    pub start: u64,
    /// One past the last damaged byte.
    pub end: u64,
    /// What was wrong at `start`.
    pub reason: String,
    /// No valid record follows the range.
    pub at_end: bool,
}

/// The header of a segment, as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HeaderState {
    /// Valid, with this key.
    Valid(u64),
    /// Unreadable for this reason.
    Damaged(record::HeaderError),
}

/// The header of `data`.
pub(super) fn header(data: &[u8]) -> HeaderState {
    match record::decode_header(data) {
        Ok(key) => HeaderState::Valid(key),
        Err(e) => HeaderState::Damaged(e),
    }
}

/// Reads every frame of `data` after the header with `key`, calling
/// `found(offset, record, frame_len)` for each valid one in order. Returns
/// the damaged ranges.
pub(super) fn frames(
    data: &[u8],
    key: u64,
    mut found: impl FnMut(u64, Record, u64),
) -> Vec<DamagedRange> {
    let mut damage = Vec::new();
    let mut at = HEADER_LEN.min(data.len());
    while at < data.len() {
        match record::decode_frame(key, &data[at..]) {
            Ok((record, len)) => {
                found(at as u64, record, len as u64);
                at += len;
            }
            Err(err) => {
                let next = next_frame(data, key, at + 1);
                damage.push(DamagedRange {
                    start: at as u64,
                    end: next.unwrap_or(data.len()) as u64,
                    reason: err.to_string(),
                    at_end: next.is_none(),
                });
                match next {
                    Some(n) => at = n,
                    None => break,
                }
            }
        }
    }
    damage
}

/// The first offset at or after `from` where a valid frame of `key` starts.
fn next_frame(data: &[u8], key: u64, from: usize) -> Option<usize> {
    let sync = key.to_le_bytes();
    let mut at = from;
    while at + sync.len() <= data.len() {
        let rest = &data[at..];
        let hop = rest.iter().position(|b| *b == sync[0])?;
        at += hop;
        if data[at..].starts_with(&sync) && record::decode_frame(key, &data[at..]).is_ok() {
            return Some(at);
        }
        at += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::Envelope;
    use super::super::record::{StoredState, encode_finished, encode_header, encode_message};
    use super::*;

    const KEY: u64 = 0x0123_4567_89ab_cdef;

    fn segment(records: usize) -> (Vec<u8>, Vec<(usize, usize)>) {
        let mut out = encode_header(KEY).to_vec();
        let mut spans = Vec::new();
        for n in 0..records {
            let start = out.len();
            if n % 3 == 2 {
                encode_finished(&mut out, KEY, n as u64, &[0]);
            } else {
                let env = Envelope {
                    sender: "s@example.org".into(),
                    recipients: vec!["r@example.com".into()],
                    received_at: 1,
                    flags: Default::default(),
                    dsn: Default::default(),
                };
                encode_message(
                    &mut out,
                    KEY,
                    n as u64,
                    &env,
                    &StoredState::default(),
                    b"hello",
                );
            }
            spans.push((start, out.len()));
        }
        (out, spans)
    }

    fn ids(data: &[u8]) -> (Vec<u64>, Vec<DamagedRange>) {
        let mut ids = Vec::new();
        let damage = frames(data, KEY, |_, r, _| ids.extend(r.id()));
        (ids, damage)
    }

    #[test]
    fn a_clean_segment_has_no_damage() {
        let (data, _) = segment(6);
        let (got, damage) = ids(&data);
        assert_eq!(got, (0..6).collect::<Vec<_>>());
        assert!(damage.is_empty());
    }

    #[test]
    fn damage_in_the_middle_keeps_every_record_after_it() {
        let (mut data, spans) = segment(6);
        let (start, end) = spans[2];
        data[start + 9] ^= 0x40; // the length field of record 2
        let (got, damage) = ids(&data);
        assert_eq!(got, vec![0, 1, 3, 4, 5]);
        assert_eq!(damage.len(), 1);
        assert_eq!((damage[0].start, damage[0].end), (start as u64, end as u64));
        assert!(!damage[0].at_end);
    }

    #[test]
    fn a_cut_last_record_is_damage_at_the_end() {
        let (data, spans) = segment(4);
        let cut = &data[..spans[3].1 - 3];
        let (got, damage) = ids(cut);
        assert_eq!(got, vec![0, 1, 2]);
        assert!(damage[0].at_end);
        assert_eq!(damage[0].start, spans[3].0 as u64);
    }

    #[test]
    fn a_frame_of_another_key_inside_a_body_is_never_taken() {
        let mut data = encode_header(KEY).to_vec();
        let mut planted = Vec::new();
        encode_finished(&mut planted, KEY ^ 0xff, 99, &[0]);
        let env = Envelope {
            sender: String::new(),
            recipients: vec!["r@example.com".into()],
            received_at: 1,
            flags: Default::default(),
            dsn: Default::default(),
        };
        encode_message(&mut data, KEY, 1, &env, &StoredState::default(), &planted);
        data[HEADER_LEN + 20] ^= 1;
        let (got, damage) = ids(&data);
        assert!(got.is_empty(), "{got:?}");
        assert!(damage[0].at_end);
    }
}
