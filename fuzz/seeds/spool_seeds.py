#!/usr/bin/env python3
"""Seeds for spool_segment made from a real segment file (run by spool.sh):

  spool_seeds.py SEGMENT OUT-DIR NAME

writes, next to the raw segment spool.sh seeds (control byte 0x00):
  NAME-reframed          control byte 0x01: each record of the segment up to
                         1 KB, framed again by the target with its own key,
                         so mutations of the payload keep a valid checksum
                         and reach the record decoders
  NAME-reframed-damaged  the same with damage between the records: a frame
                         whose checksum is wrong, one whose length runs past
                         the end, and zero bytes (the scanner resynchronises)
  NAME-bitflip           the raw segment with one bit flipped in a record
  NAME-version-3         the raw segment with a header of an unknown version
The layout is in crates/mta/src/spool/record.rs; the key of the 0x01 mode is
the one in fuzz/fuzz_targets/spool_segment.rs."""

import os
import struct
import sys
import zlib

HEADER = 20
FRAME_HEADER = 16
TARGET_KEY = 0x0123_4567_89AB_CDEF


def frame(key, payload):
    head = struct.pack("<QI", key, len(payload))
    return head + struct.pack("<I", zlib.crc32(head + payload)) + payload


def payloads(segment):
    """The payload of every frame of a valid segment, in order."""
    key = struct.unpack_from("<Q", segment, 8)[0]
    at = HEADER
    while at + FRAME_HEADER <= len(segment):
        frame_key, length = struct.unpack_from("<QI", segment, at)
        if frame_key != key:
            break
        yield segment[at + FRAME_HEADER : at + FRAME_HEADER + length]
        at += FRAME_HEADER + length


def chunk(framed, data):
    """A chunk of the 0x01 mode: a control byte (bit 7: frame it; low bits:
    the length, 127 meaning a u16 length follows), then the bytes."""
    flag = 0x80 if framed else 0
    if len(data) < 0x7F:
        return bytes([flag | len(data)]) + data
    return bytes([flag | 0x7F]) + struct.pack("<H", len(data)) + data


def structured(records, damage=()):
    out = bytearray([0x01])
    for i, payload in enumerate(records):
        out += chunk(True, payload)
        if damage:
            out += chunk(False, damage[i % len(damage)])
    return bytes(out)


def main():
    path, out_dir, name = sys.argv[1:]
    segment = open(path, "rb").read()
    # A long body adds length, not structure: such records stay out.
    records = [p for p in payloads(segment) if 0 < len(p) <= 1024]
    if not records:
        sys.exit(f"spool_seeds.py: no record in {path}")

    bad_checksum = bytearray(frame(TARGET_KEY, records[0]))
    bad_checksum[12] ^= 0xFF
    past_the_end = struct.pack("<QII", TARGET_KEY, 1 << 20, 0)
    damage = (bytes(bad_checksum), past_the_end, bytes(24))

    flipped = bytearray(segment)
    flipped[HEADER + FRAME_HEADER + 1] ^= 0x01
    version_3 = bytearray(segment[:HEADER])
    version_3[7] = 3
    version_3[16:20] = struct.pack("<I", zlib.crc32(bytes(version_3[:16])))

    seeds = {
        "reframed": structured(records),
        "reframed-damaged": structured(records, damage),
        "bitflip": b"\0" + bytes(flipped),
        "version-3": b"\0" + bytes(version_3) + segment[HEADER:],
    }
    for suffix, data in seeds.items():
        with open(os.path.join(out_dir, f"{name}-{suffix}"), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
