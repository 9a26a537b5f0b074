"""Turns a recorded SMTP client session into the script smtp_server_bdat reads.

usage: bdat_script.py SELECTOR-HEX < session > seed
       bdat_script.py --cases DIR      (writes RFC 3030's cases as seeds)

The target's script (see fuzz_targets/smtp_server_bdat.rs): a selector byte
(message size limit and split size), then steps, each an opcode byte:
0x00 SIZE PAYLOAD (BDAT chunk), 0x42 SIZE PAYLOAD (BDAT ... LAST), 0x02 LINE
(a raw command line). A chunk size is one byte, so a longer chunk becomes
several, the last keeping LAST. Every other line is passed as a raw line.
"""

import re
import sys

CHUNK, LAST_CHUNK, LINE = 0x00, 0x42, 0x02
BDAT = re.compile(rb"BDAT ([0-9]+)( LAST)?\r?\n", re.IGNORECASE)


def chunks(size, last, payload):
    out = bytearray()
    while True:
        n = min(size, 255)
        final = n == size
        out += bytes([LAST_CHUNK if last and final else CHUNK, n]) + payload[:n]
        payload, size = payload[n:], size - n
        if final:
            return out


def convert(session):
    out = bytearray()
    rest = session
    while rest:
        end = rest.find(b"\n") + 1 or len(rest)
        line, rest = rest[:end], rest[end:]
        bdat = BDAT.fullmatch(line)
        if bdat:
            size = int(bdat.group(1))
            out += chunks(size, bool(bdat.group(2)), rest[:size])
            rest = rest[size:]
        else:
            out += bytes([LINE]) + line
    return bytes(out)


def bdat(payload, last=False):
    return b"BDAT %d%s\r\n" % (len(payload), b" LAST" if last else b"") + payload


NEW = b"MAIL FROM:<a@c.fuzz>\r\nRCPT TO:<b@mx.fuzz>\r\n"
HEADERS = b"To: Susan@Random.com\r\nFrom: Sam@Random.com\r\n"
SUBJECT = b"Subject: Chunked message test\r\n\r\nbody\r\n"

# RFC 3030 section 4's examples, DATA and BDAT mixed in one transaction,
# RSET between chunks, BDAT 0 LAST, a refused recipient, a chunk over the
# size limit (selector 0x00: 64 bytes, 1-byte pieces; 0xff: 1084 bytes,
# 32-byte pieces), and bytes a chunk carries through untouched that DATA
# would not.
CASES = {
    "rfc3030-last": (0xFF, bdat(HEADERS + SUBJECT, True) + b"QUIT\r\n"),
    "rfc3030-pipelined": (0xFF, bdat(HEADERS) + bdat(SUBJECT) + bdat(b"", True) + b"QUIT\r\n"),
    "data-after-bdat": (0xFF, bdat(b"hello") + b"DATA\r\nRSET\r\n" + NEW + b"DATA\r\nx\r\n.\r\n" + bdat(b"abc", True)),
    "rset-between-chunks": (0xFF, bdat(b"abcd") + b"RSET\r\n" + NEW + bdat(b"wxyz\r\n", True)),
    "over-the-limit": (0x00, bdat(b"x" * 200) + bdat(b"y\r\n", True) + b"QUIT\r\n"),
    "bare-lf-cr-nul-dot": (0xFF, bdat(b"a\nb\rc\0d\r\n.\r\n..\r\n", True) + b"QUIT\r\n"),
    "refused-recipient": (
        0xFF,
        b"RSET\r\nMAIL FROM:<a@c.fuzz>\r\nRCPT TO:<reject@mx.fuzz>\r\n" + bdat(b"abc", True) + b"QUIT\r\n",
    ),
}


if __name__ == "__main__":
    if sys.argv[1] == "--cases":
        for name, (selector, session) in CASES.items():
            with open(f"{sys.argv[2]}/{name}", "wb") as f:
                f.write(bytes([selector]) + convert(session))
    else:
        selector = bytes.fromhex(sys.argv[1])
        sys.stdout.buffer.write(selector + convert(sys.stdin.buffer.read()))
