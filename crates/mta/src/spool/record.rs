//! The on-disk format of the spool log: the segment header and the framed,
//! checksummed records.
//!
//! ```text
//! segment = header | frame*
//! header  = "PCSPOOL" | version (u8 = 2) | key (u64) | CRC-32 of the 16 bytes before
//! frame   = key (u64) | payload length (u32) | CRC-32 of key, length and payload | payload
//! payload = kind (u8) | fields
//! message = kind 1 | id | received_at | flags | sender | recipients | finished
//!           | schedule | held | DSN block if flags bit 3 (`dsn_record.rs`) | body
//! ```
//!
//! The key is a random number chosen when the spool is created; every
//! segment and every frame of one spool carries the same key. It is what
//! recovery searches for to find the next frame after damage, and because it
//! is secret, a message body cannot contain bytes that pass for a frame of
//! this spool (a sender could otherwise plant records that resynchronisation
//! would then trust). Integers are little-endian; strings and byte strings
//! are prefixed by a `u32` length. The body is the last field of a message
//! record, so its position in the file is known without decoding it again.
//!
//! Bytes read back from disk are untrusted input after damage: every decoder
//! here checks lengths before it allocates and never panics (fuzzed by
//! `fuzz/fuzz_targets/spool_segment.rs`).

use super::dsn_record::{self, HAS_DSN};
use super::{DsnRequest, Envelope, EnvelopeFlags, Schedule};

/// Length of the segment header.
pub(super) const HEADER_LEN: usize = 20;

/// Bytes before the payload in every frame.
pub(super) const FRAME_HEADER: usize = 16;

/// No legitimate record comes near this; a larger length is corruption.
pub(super) const MAX_PAYLOAD: u32 = 1 << 30;

const MAGIC: &[u8; 7] = b"PCSPOOL";
const VERSION: u8 = 2;

const KIND_MESSAGE: u8 = 1;
const KIND_FINISHED: u8 = 2;
const KIND_SCHEDULE: u8 = 3;
const KIND_HOLD: u8 = 4;
const KIND_SEAL: u8 = 5;

/// The state of a message that travels with each copy of its record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct StoredState {
    /// Recipients (indices) already finished.
    pub finished: Vec<u32>,
    pub schedule: Schedule,
    pub held: bool,
}

/// One decoded record.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Record {
    /// A message accepted into the queue, or a copy carried forward by
    /// compaction with the state it had then.
    Message {
        id: u64,
        envelope: Envelope,
        state: StoredState,
        /// Offset of the body within the payload, and its length.
        body_at: usize,
        body_len: usize,
    },
    /// These recipients of message `id` reached a final state (delivered or
    /// bounced): they are never attempted again.
    Finished { id: u64, recipients: Vec<u32> },
    /// Attempts so far, when to try next and why the last attempt failed.
    Schedule { id: u64, schedule: Schedule },
    /// The operator held (or released) the message.
    Hold { id: u64, held: bool },
    /// The last record of a segment the writer has moved on from: a sealed
    /// segment that does not end with it was cut short.
    Seal,
}

impl Record {
    /// The message the record is about (none for a seal).
    pub(super) fn id(&self) -> Option<u64> {
        match self {
            Record::Message { id, .. }
            | Record::Finished { id, .. }
            | Record::Schedule { id, .. }
            | Record::Hold { id, .. } => Some(*id),
            Record::Seal => None,
        }
    }
}

/// Why a frame could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FrameError {
    /// The input ends inside the frame.
    Truncated,
    /// The frame does not start with this spool's key.
    NotAFrame,
    /// The length field is beyond any record the spool writes.
    BadLength(u32),
    /// The frame does not match its checksum.
    Checksum,
    /// The checksum matched but the payload does not decode.
    Malformed(&'static str),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Truncated => f.write_str("the record is cut short"),
            FrameError::NotAFrame => f.write_str("no record starts here"),
            FrameError::BadLength(n) => write!(f, "impossible record length {n}"),
            FrameError::Checksum => f.write_str("checksum mismatch"),
            FrameError::Malformed(why) => write!(f, "undecodable record: {why}"),
        }
    }
}

/// Why a segment header could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HeaderError {
    Truncated,
    NotASegment,
    Checksum,
    Version(u8),
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderError::Truncated => f.write_str("the segment header is cut short"),
            HeaderError::NotASegment => f.write_str("not a Portcullis spool segment"),
            HeaderError::Checksum => f.write_str("the segment header fails its checksum"),
            HeaderError::Version(v) => write!(
                f,
                "spool format version {v}; this Portcullis reads version {VERSION}"
            ),
        }
    }
}

/// The segment (and key file) header for `key`.
pub(super) fn encode_header(key: u64) -> [u8; HEADER_LEN] {
    let mut h = [0; HEADER_LEN];
    h[..7].copy_from_slice(MAGIC);
    h[7] = VERSION;
    h[8..16].copy_from_slice(&key.to_le_bytes());
    let crc = crc32fast::hash(&h[..16]);
    h[16..].copy_from_slice(&crc.to_le_bytes());
    h
}

/// The key a segment header carries.
pub(super) fn decode_header(input: &[u8]) -> Result<u64, HeaderError> {
    let h = input.get(..HEADER_LEN).ok_or(HeaderError::Truncated)?;
    if &h[..7] != MAGIC {
        return Err(HeaderError::NotASegment);
    }
    if crc32fast::hash(&h[..16]) != le32(&h[16..20]) {
        return Err(HeaderError::Checksum);
    }
    if h[7] != VERSION {
        return Err(HeaderError::Version(h[7]));
    }
    Ok(le64(&h[8..16]))
}

/// Appends a framed message record to `out`.
pub(super) fn encode_message(
    out: &mut Vec<u8>,
    key: u64,
    id: u64,
    envelope: &Envelope,
    state: &StoredState,
    body: &[u8],
) {
    frame(out, key, |p| {
        p.push(KIND_MESSAGE);
        p.extend_from_slice(&id.to_le_bytes());
        p.extend_from_slice(&envelope.received_at.to_le_bytes());
        let dsn = !envelope.dsn.is_empty();
        p.push(envelope.flags.to_bits() | if dsn { HAS_DSN } else { 0 });
        put_bytes(p, envelope.sender.as_bytes());
        put_u32(p, envelope.recipients.len() as u32);
        for rcpt in &envelope.recipients {
            put_bytes(p, rcpt.as_bytes());
        }
        put_u32(p, state.finished.len() as u32);
        for r in &state.finished {
            put_u32(p, *r);
        }
        put_schedule(p, &state.schedule);
        p.push(u8::from(state.held));
        if dsn {
            dsn_record::encode(p, &envelope.dsn);
        }
        put_bytes(p, body);
    });
}

/// Appends a framed "recipients finished" record to `out`.
pub(super) fn encode_finished(out: &mut Vec<u8>, key: u64, id: u64, recipients: &[u32]) {
    frame(out, key, |p| {
        p.push(KIND_FINISHED);
        p.extend_from_slice(&id.to_le_bytes());
        put_u32(p, recipients.len() as u32);
        for r in recipients {
            put_u32(p, *r);
        }
    });
}

/// Appends a framed schedule record to `out`.
pub(super) fn encode_schedule(out: &mut Vec<u8>, key: u64, id: u64, schedule: &Schedule) {
    frame(out, key, |p| {
        p.push(KIND_SCHEDULE);
        p.extend_from_slice(&id.to_le_bytes());
        put_schedule(p, schedule);
    });
}

/// Appends a framed hold record to `out`.
pub(super) fn encode_hold(out: &mut Vec<u8>, key: u64, id: u64, held: bool) {
    frame(out, key, |p| {
        p.push(KIND_HOLD);
        p.extend_from_slice(&id.to_le_bytes());
        p.push(u8::from(held));
    });
}

/// Appends a framed seal record to `out`.
pub(super) fn encode_seal(out: &mut Vec<u8>, key: u64) {
    frame(out, key, |p| p.push(KIND_SEAL));
}

/// Reads the frame at the start of `input`: the record and the frame's total
/// length.
pub(super) fn decode_frame(key: u64, input: &[u8]) -> Result<(Record, usize), FrameError> {
    let header = input.get(..FRAME_HEADER).ok_or(FrameError::Truncated)?;
    if le64(&header[..8]) != key {
        return Err(FrameError::NotAFrame);
    }
    let len = le32(&header[8..12]);
    if len == 0 || len > MAX_PAYLOAD {
        return Err(FrameError::BadLength(len));
    }
    let total = FRAME_HEADER + len as usize;
    let payload = input
        .get(FRAME_HEADER..total)
        .ok_or(FrameError::Truncated)?;
    if checksum(&header[..12], payload) != le32(&header[12..16]) {
        return Err(FrameError::Checksum);
    }
    let record = decode_payload(payload).map_err(FrameError::Malformed)?;
    Ok((record, total))
}

fn checksum(key_and_len: &[u8], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(key_and_len);
    h.update(payload);
    h.finalize()
}

fn frame(out: &mut Vec<u8>, key: u64, fill: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&key.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    fill(out);
    let len = (out.len() - start - FRAME_HEADER) as u32;
    out[start + 8..start + 12].copy_from_slice(&len.to_le_bytes());
    let crc = checksum(&out[start..start + 12], &out[start + FRAME_HEADER..]);
    out[start + 12..start + 16].copy_from_slice(&crc.to_le_bytes());
}

fn le32(b: &[u8]) -> u32 {
    let mut a = [0; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

fn le64(b: &[u8]) -> u64 {
    let mut a = [0; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

pub(super) fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub(super) fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u32(out, bytes.len() as u32);
    out.extend_from_slice(bytes);
}

fn put_schedule(out: &mut Vec<u8>, s: &Schedule) {
    put_u32(out, s.attempts);
    out.extend_from_slice(&s.next_attempt.to_le_bytes());
    put_bytes(out, s.last_error.as_bytes());
}

fn decode_payload(payload: &[u8]) -> Result<Record, &'static str> {
    let mut r = Reader {
        buf: payload,
        at: 0,
    };
    let record = match r.u8()? {
        KIND_MESSAGE => {
            let id = r.u64()?;
            let received_at = r.u64()?;
            let bits = r.u8()?;
            let flags = EnvelopeFlags::from_bits(bits);
            let sender = r.string()?;
            let count = r.u32()?;
            let mut recipients = Vec::new();
            for _ in 0..count {
                recipients.push(r.string()?);
            }
            let finished = r.u32_list()?;
            if finished.iter().any(|&i| i as usize >= recipients.len()) {
                return Err("finished recipient out of range");
            }
            let schedule = r.schedule()?;
            let held = r.flag()?;
            let dsn = if bits & HAS_DSN != 0 {
                dsn_record::decode(&mut r)?
            } else {
                DsnRequest::default()
            };
            let body_len = r.u32()? as usize;
            let body_at = r.at;
            r.take(body_len)?;
            Record::Message {
                id,
                envelope: Envelope {
                    sender,
                    recipients,
                    received_at,
                    flags,
                    dsn,
                },
                state: StoredState {
                    finished,
                    schedule,
                    held,
                },
                body_at,
                body_len,
            }
        }
        KIND_FINISHED => Record::Finished {
            id: r.u64()?,
            recipients: r.u32_list()?,
        },
        KIND_SCHEDULE => Record::Schedule {
            id: r.u64()?,
            schedule: r.schedule()?,
        },
        KIND_HOLD => Record::Hold {
            id: r.u64()?,
            held: r.flag()?,
        },
        KIND_SEAL => Record::Seal,
        _ => return Err("unknown record kind"),
    };
    r.end()?;
    Ok(record)
}

pub(super) struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn remaining(&self) -> usize {
        self.buf.len() - self.at
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        let end = self.at.checked_add(n).ok_or("field length overflows")?;
        let bytes = self
            .buf
            .get(self.at..end)
            .ok_or("field runs past the record")?;
        self.at = end;
        Ok(bytes)
    }

    pub(super) fn u8(&mut self) -> Result<u8, &'static str> {
        Ok(self.take(1)?[0])
    }

    fn flag(&mut self) -> Result<bool, &'static str> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err("flag is neither 0 nor 1"),
        }
    }

    pub(super) fn u32(&mut self) -> Result<u32, &'static str> {
        Ok(le32(self.take(4)?))
    }

    fn u64(&mut self) -> Result<u64, &'static str> {
        Ok(le64(self.take(8)?))
    }

    pub(super) fn string(&mut self) -> Result<String, &'static str> {
        let len = self.u32()? as usize;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| "text is not UTF-8")
    }

    fn u32_list(&mut self) -> Result<Vec<u32>, &'static str> {
        let count = self.u32()? as usize;
        // Each entry needs four bytes: refuse a count the record cannot hold
        // before allocating for it.
        if count > (self.buf.len() - self.at) / 4 {
            return Err("list runs past the record");
        }
        (0..count).map(|_| self.u32()).collect()
    }

    fn schedule(&mut self) -> Result<Schedule, &'static str> {
        Ok(Schedule {
            attempts: self.u32()?,
            next_attempt: self.u64()?,
            last_error: self.string()?,
        })
    }

    fn end(&self) -> Result<(), &'static str> {
        if self.at == self.buf.len() {
            Ok(())
        } else {
            Err("trailing bytes after the record")
        }
    }
}

/// Frames `payload` as a record of the spool with `key`, whatever the
/// payload holds (fuzzing reaches the payload decoder through this).
pub(super) fn frame_raw(key: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + FRAME_HEADER);
    frame(&mut out, key, |p| p.extend_from_slice(payload));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY: u64 = 0x05ee_d0f5_b001_c0de;

    fn envelope() -> Envelope {
        Envelope {
            sender: "alice@example.org".into(),
            recipients: vec!["bob@example.com".into(), "dörte@bücher.example".into()],
            received_at: 1_790_000_000,
            flags: EnvelopeFlags {
                requiretls: true,
                smtputf8: true,
                eight_bit: false,
            },
            dsn: DsnRequest::default(),
        }
    }

    #[test]
    fn dsn_parameters_round_trip() {
        use portcullis_smtp_tls::{Notify, OriginalRecipient, RcptParams, Ret};
        let mut env = envelope();
        env.dsn = DsnRequest {
            ret: Some(Ret::Headers),
            envid: Some("QQ+2B1".into()),
            recipients: vec![
                RcptParams {
                    notify: Some(Notify::NEVER),
                    orcpt: None,
                },
                RcptParams {
                    notify: Some(Notify {
                        success: true,
                        failure: true,
                        delay: false,
                    }),
                    orcpt: Some(OriginalRecipient {
                        addr_type: "rfc822".into(),
                        xtext: "bob+40example.com".into(),
                    }),
                },
            ],
        };
        let mut out = Vec::new();
        encode_message(&mut out, KEY, 3, &env, &state(), b"body");
        let (
            Record::Message {
                envelope,
                state: s,
                body_at,
                body_len,
                ..
            },
            _,
        ) = decode_frame(KEY, &out).unwrap()
        else {
            panic!("not a message record");
        };
        assert_eq!((envelope, s), (env, state()));
        assert_eq!(&out[FRAME_HEADER + body_at..][..body_len], b"body");
        // Without DSN parameters no DSN block is written.
        let mut plain = Vec::new();
        encode_message(&mut plain, KEY, 3, &self::envelope(), &state(), b"body");
        assert_eq!(plain[FRAME_HEADER + 17] & HAS_DSN, 0);
        assert!(plain.len() < out.len());
    }

    fn state() -> StoredState {
        StoredState {
            finished: vec![1],
            schedule: Schedule {
                attempts: 3,
                next_attempt: 1_790_000_600,
                last_error: "451 4.3.0 try later".into(),
            },
            held: true,
        }
    }

    #[test]
    fn message_round_trips_and_locates_its_body() {
        let mut out = Vec::new();
        let body = b"Subject: hi\r\n\r\nbody\r\n";
        encode_message(&mut out, KEY, 7, &envelope(), &state(), body);
        let (record, len) = decode_frame(KEY, &out).unwrap();
        assert_eq!(len, out.len());
        let Record::Message {
            id,
            envelope: env,
            state: s,
            body_at,
            body_len,
        } = record
        else {
            panic!("not a message record");
        };
        assert_eq!((id, env, s), (7, envelope(), state()));
        assert_eq!(
            &out[FRAME_HEADER + body_at..FRAME_HEADER + body_at + body_len],
            body
        );
    }

    #[test]
    fn small_records_round_trip() {
        let mut out = Vec::new();
        encode_finished(&mut out, KEY, 9, &[0, 2]);
        encode_schedule(&mut out, KEY, 9, &state().schedule);
        encode_hold(&mut out, KEY, 9, true);
        encode_seal(&mut out, KEY);
        let (a, n) = decode_frame(KEY, &out).unwrap();
        let (b, m) = decode_frame(KEY, &out[n..]).unwrap();
        let (c, k) = decode_frame(KEY, &out[n + m..]).unwrap();
        let (d, _) = decode_frame(KEY, &out[n + m + k..]).unwrap();
        assert_eq!(d, Record::Seal);
        assert_eq!(
            a,
            Record::Finished {
                id: 9,
                recipients: vec![0, 2]
            }
        );
        assert_eq!(
            b,
            Record::Schedule {
                id: 9,
                schedule: state().schedule
            }
        );
        assert_eq!(c, Record::Hold { id: 9, held: true });
    }

    #[test]
    fn every_truncation_is_reported_as_truncated() {
        let mut out = Vec::new();
        encode_message(&mut out, KEY, 1, &envelope(), &state(), b"body");
        for cut in 0..out.len() {
            let got = decode_frame(KEY, &out[..cut]);
            assert!(
                got == Err(FrameError::Truncated) || (cut < 8 && got.is_err()),
                "cut {cut}: {got:?}"
            );
        }
    }

    #[test]
    fn a_flipped_bit_anywhere_is_detected() {
        let mut out = Vec::new();
        encode_finished(&mut out, KEY, 3, &[4]);
        for i in 0..out.len() {
            let mut bad = out.clone();
            bad[i] ^= 0x10;
            assert!(
                decode_frame(KEY, &bad).is_err(),
                "flip at {i} went unnoticed"
            );
        }
    }

    #[test]
    fn another_spools_frames_are_not_frames_here() {
        let mut out = Vec::new();
        encode_finished(&mut out, KEY, 3, &[4]);
        assert_eq!(decode_frame(KEY ^ 1, &out), Err(FrameError::NotAFrame));
    }

    #[test]
    fn zero_and_huge_lengths_are_refused() {
        let mut zero = KEY.to_le_bytes().to_vec();
        zero.extend_from_slice(&[0; 12]);
        assert_eq!(decode_frame(KEY, &zero), Err(FrameError::BadLength(0)));
        let mut huge = KEY.to_le_bytes().to_vec();
        huge.extend_from_slice(&[0xff; 12]);
        assert!(matches!(
            decode_frame(KEY, &huge),
            Err(FrameError::BadLength(_))
        ));
    }

    #[test]
    fn header_round_trips_and_damage_is_named() {
        let h = encode_header(KEY);
        assert_eq!(decode_header(&h), Ok(KEY));
        assert_eq!(decode_header(&h[..19]), Err(HeaderError::Truncated));
        let mut bad = h;
        bad[10] ^= 1;
        assert_eq!(decode_header(&bad), Err(HeaderError::Checksum));
        let mut other = h;
        other[0] = b'X';
        assert_eq!(decode_header(&other), Err(HeaderError::NotASegment));
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_frame(KEY, &bytes);
            let _ = decode_header(&bytes);
        }

        #[test]
        fn arbitrary_payload_with_valid_checksum_never_panics(payload in proptest::collection::vec(any::<u8>(), 1..256)) {
            let _ = decode_frame(KEY, &frame_raw(KEY, &payload));
        }
    }
}
