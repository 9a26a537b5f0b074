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
    // raw (damage the scanner must resynchronise past).
    let key = 0x0123_4567_89ab_cdef;
    let mut segment = segment_header(key);
    let mut input = rest;
    while let Some((&ctl, tail)) = input.split_first() {
        let n = usize::from(ctl & 0x7f).min(tail.len());
        let (chunk, after) = tail.split_at(n);
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
