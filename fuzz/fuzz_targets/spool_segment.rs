//! Fuzzes what recovery reads from a spool segment after damage: the
//! header, the frames and their payloads, and the resynchronisation that
//! looks for the next valid frame. Bytes from disk are untrusted input once
//! a disk has failed: nothing here may panic, loop or allocate without
//! bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_mta::spool::fuzzing::{decode_payload, frame, scan_segment, segment_header};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        // The raw bytes as a segment file.
        scan_segment(rest);
        return;
    }
    // A segment assembled from the input: chunks either framed with a valid
    // checksum (so the payload decoder sees arbitrary contents) or copied
    // raw (damage the scanner must resynchronise past). A control byte's low
    // 7 bits are the chunk's length; 127 means a u16 length follows, for
    // message records, which are longer.
    let key = 0x0123_4567_89ab_cdef;
    let mut segment = segment_header(key);
    let mut input = rest;
    while let Some((&ctl, mut tail)) = input.split_first() {
        let mut n = usize::from(ctl & 0x7f);
        if n == 0x7f {
            let Some((len, after)) = tail.split_first_chunk::<2>() else {
                break;
            };
            n = usize::from(u16::from_le_bytes(*len));
            tail = after;
        }
        let (chunk, after) = tail.split_at(n.min(tail.len()));
        if ctl & 0x80 != 0 {
            segment.extend_from_slice(&frame(key, chunk));
        } else {
            segment.extend_from_slice(chunk);
        }
        input = after;
    }
    scan_segment(&segment);
    decode_payload(rest);
});
