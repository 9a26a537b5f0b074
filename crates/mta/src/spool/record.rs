//! The on-disk record format of the spool log.
//!
//! A segment file is a sequence of frames:
//!
//! ```text
//! u32 LE payload length | u32 LE CRC-32 of the payload | payload
//! payload = kind (u8) | fields
//! ```
//!
//! The checksum lets recovery tell a torn write at the end of the log (the
//! machine died while appending) from a complete record. Integers are
//! little-endian; strings and byte strings are prefixed by a `u32` length. The
//! message body is the last field of a message record, so its position in the
//! file is known without decoding it again.

use super::dsn_record::{self, HAS_DSN};
use super::{DsnRequest, Envelope, EnvelopeFlags};

/// Bytes before the payload in every frame.
pub(super) const FRAME_HEADER: usize = 8;

/// No legitimate record comes near this; a larger length is corruption.
pub(super) const MAX_PAYLOAD: u32 = 1 << 30;

const KIND_MESSAGE: u8 = 1;
const KIND_FINISHED: u8 = 2;

/// One decoded record.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Record {
    /// A message accepted into the queue (or copied forward by compaction,
    /// carrying the recipients already finished).
    Message {
        id: u64,
        envelope: Envelope,
        finished: Vec<u32>,
        /// Offset of the body within the payload, and its length.
        body_at: usize,
        body_len: usize,
    },
    /// These recipients of message `id` reached a final state (delivered or
    /// bounced): they are never attempted again.
    Finished { id: u64, recipients: Vec<u32> },
}

/// Why a frame could not be read.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum FrameError {
    /// The input ends inside the frame.
    Truncated,
    /// The length field is beyond any record the spool writes.
    BadLength(u32),
    /// The payload does not match its checksum.
    Checksum,
    /// The checksum matched but the payload does not decode.
    Malformed(&'static str),
}

/// Appends a framed message record to `out`.
pub(super) fn encode_message(
    out: &mut Vec<u8>,
    id: u64,
    envelope: &Envelope,
    finished: &[u32],
    body: &[u8],
) {
    frame(out, |p| {
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
        put_u32(p, finished.len() as u32);
        for r in finished {
            put_u32(p, *r);
        }
        if dsn {
            dsn_record::encode(p, &envelope.dsn);
        }
        put_bytes(p, body);
    });
}

/// Appends a framed "recipients finished" record to `out`.
pub(super) fn encode_finished(out: &mut Vec<u8>, id: u64, recipients: &[u32]) {
    frame(out, |p| {
        p.push(KIND_FINISHED);
        p.extend_from_slice(&id.to_le_bytes());
        put_u32(p, recipients.len() as u32);
        for r in recipients {
            put_u32(p, *r);
        }
    });
}

/// Reads the frame at the start of `input`: the record and the frame's total
/// length.
pub(super) fn decode_frame(input: &[u8]) -> Result<(Record, usize), FrameError> {
    let header = input.get(..FRAME_HEADER).ok_or(FrameError::Truncated)?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len == 0 || len > MAX_PAYLOAD {
        return Err(FrameError::BadLength(len));
    }
    let total = FRAME_HEADER + len as usize;
    let payload = input
        .get(FRAME_HEADER..total)
        .ok_or(FrameError::Truncated)?;
    if crc32fast::hash(payload) != crc {
        return Err(FrameError::Checksum);
    }
    let record = decode_payload(payload).map_err(FrameError::Malformed)?;
    Ok((record, total))
}

fn frame(out: &mut Vec<u8>, fill: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_HEADER]);
    fill(out);
    let payload = &out[start + FRAME_HEADER..];
    let len = payload.len() as u32;
    let crc = crc32fast::hash(payload);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

pub(super) fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub(super) fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u32(out, bytes.len() as u32);
    out.extend_from_slice(bytes);
}

fn decode_payload(payload: &[u8]) -> Result<Record, &'static str> {
    let mut r = Reader {
        buf: payload,
        at: 0,
    };
    match r.u8()? {
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
            let dsn = if bits & HAS_DSN != 0 {
                dsn_record::decode(&mut r)?
            } else {
                DsnRequest::default()
            };
            let body_len = r.u32()? as usize;
            let body_at = r.at;
            r.take(body_len)?;
            r.end()?;
            Ok(Record::Message {
                id,
                envelope: Envelope {
                    sender,
                    recipients,
                    received_at,
                    flags,
                    dsn,
                },
                finished,
                body_at,
                body_len,
            })
        }
        KIND_FINISHED => {
            let id = r.u64()?;
            let recipients = r.u32_list()?;
            r.end()?;
            Ok(Record::Finished { id, recipients })
        }
        _ => Err("unknown record kind"),
    }
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

    pub(super) fn u32(&mut self) -> Result<u32, &'static str> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, &'static str> {
        let b = self.take(8)?;
        let mut a = [0; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    pub(super) fn string(&mut self) -> Result<String, &'static str> {
        let len = self.u32()? as usize;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| "address is not UTF-8")
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

    fn end(&self) -> Result<(), &'static str> {
        if self.at == self.buf.len() {
            Ok(())
        } else {
            Err("trailing bytes after the record")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
        encode_message(&mut out, 3, &env, &[], b"body");
        let (
            Record::Message {
                envelope,
                body_at,
                body_len,
                ..
            },
            _,
        ) = decode_frame(&out).unwrap()
        else {
            panic!("not a message record");
        };
        assert_eq!(envelope, env);
        assert_eq!(&out[FRAME_HEADER + body_at..][..body_len], b"body");
        // Without DSN parameters the record is laid out as before.
        let mut plain = Vec::new();
        encode_message(&mut plain, 3, &envelope_without_dsn(), &[], b"body");
        assert_eq!(plain[FRAME_HEADER + 17] & HAS_DSN, 0);
    }

    fn envelope_without_dsn() -> Envelope {
        envelope()
    }

    #[test]
    fn message_round_trips_and_locates_its_body() {
        let mut out = Vec::new();
        encode_message(
            &mut out,
            7,
            &envelope(),
            &[1],
            b"Subject: hi\r\n\r\nbody\r\n",
        );
        let (record, len) = decode_frame(&out).unwrap();
        assert_eq!(len, out.len());
        let Record::Message {
            id,
            envelope: env,
            finished,
            body_at,
            body_len,
        } = record
        else {
            panic!("not a message record");
        };
        assert_eq!((id, env, finished), (7, envelope(), vec![1]));
        let body = &out[FRAME_HEADER + body_at..FRAME_HEADER + body_at + body_len];
        assert_eq!(body, b"Subject: hi\r\n\r\nbody\r\n");
    }

    #[test]
    fn finished_round_trips() {
        let mut out = Vec::new();
        encode_finished(&mut out, 9, &[0, 2]);
        let (record, _) = decode_frame(&out).unwrap();
        assert_eq!(
            record,
            Record::Finished {
                id: 9,
                recipients: vec![0, 2]
            }
        );
    }

    #[test]
    fn every_truncation_is_reported_as_truncated() {
        let mut out = Vec::new();
        encode_message(&mut out, 1, &envelope(), &[], b"body");
        for cut in 0..out.len() {
            assert_eq!(
                decode_frame(&out[..cut]),
                Err(FrameError::Truncated),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn a_flipped_bit_fails_the_checksum() {
        let mut out = Vec::new();
        encode_finished(&mut out, 3, &[4]);
        let last = out.len() - 1;
        out[last] ^= 0x10;
        assert_eq!(decode_frame(&out), Err(FrameError::Checksum));
    }

    #[test]
    fn zero_and_huge_lengths_are_refused() {
        assert_eq!(decode_frame(&[0; 16]), Err(FrameError::BadLength(0)));
        let mut huge = vec![0xff; 16];
        huge[4..8].copy_from_slice(&[0; 4]);
        assert!(matches!(decode_frame(&huge), Err(FrameError::BadLength(_))));
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_frame(&bytes);
        }

        #[test]
        fn arbitrary_payload_with_valid_checksum_never_panics(payload in proptest::collection::vec(any::<u8>(), 1..256)) {
            let mut framed = Vec::new();
            frame(&mut framed, |p| p.extend_from_slice(&payload));
            let _ = decode_frame(&framed);
        }
    }
}
