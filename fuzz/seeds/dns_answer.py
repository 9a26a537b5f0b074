#!/usr/bin/env python3
"""DNS response seeds for dane_dns_answer (run by make.sh): standard RFC 1035
messages as a validating resolver returns them, each after the target's
control byte (bits 0-2 pick the asked type A/AAAA/MX/TLSA/TXT/PTR/SOA/CNAME,
bit 7 says the resolver is trusted, bits 3-6 seed the per-record proofs)."""

import os
import struct
import sys

out, spki_sha256 = sys.argv[1], bytes.fromhex(sys.argv[2])
os.makedirs(out, exist_ok=True)
TYPE = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28, "TLSA": 52, "RRSIG": 46}
CTL = {"A": 0, "AAAA": 1, "MX": 2, "TLSA": 3, "TXT": 4, "PTR": 5, "SOA": 6, "CNAME": 7}


def name(n):
    b = b""
    for label in n.rstrip(".").split("."):
        if label:
            b += bytes([len(label)]) + label.encode()
    return b + b"\0"


def rr(owner, rtype, rdata, ttl=300):
    return name(owner) + struct.pack(">HHIH", TYPE[rtype], 1, ttl, len(rdata)) + rdata


def message(qname, qtype, answers=(), authority=(), rcode=0, ad=True):
    flags = 0x8000 | 0x0100 | 0x0080 | (0x0020 if ad else 0) | rcode  # QR RD RA AD
    head = struct.pack(">HHHHHH", 0x1234, flags, 1, len(answers), len(authority), 0)
    q = name(qname) + struct.pack(">HH", TYPE[qtype], 1)
    return head + q + b"".join(answers) + b"".join(authority)


soa = name("ns1.example.com") + name("hostmaster.example.com") + struct.pack(">IIIII", 2026120101, 7200, 3600, 1209600, 300)
rrsig = struct.pack(">HBBIIIH", TYPE["TLSA"], 13, 5, 300, 1800000000, 1700000000, 12345) + name("example.com") + bytes(64)
seeds = {
    "mx-secure": (0x80 | CTL["MX"], message("example.com", "MX", [
        rr("example.com", "MX", struct.pack(">H", 10) + name("mx1.example.com")),
        rr("example.com", "MX", struct.pack(">H", 20) + name("mx2.example.com")),
    ])),
    "mx-null-rfc7505": (0x80 | CTL["MX"], message("example.org", "MX", [
        rr("example.org", "MX", struct.pack(">H", 0) + b"\0")])),
    "tlsa-secure": (0x80 | CTL["TLSA"], message("_25._tcp.mx1.example.com", "TLSA", [
        rr("_25._tcp.mx1.example.com", "TLSA", bytes([3, 1, 1]) + spki_sha256),
        rr("_25._tcp.mx1.example.com", "TLSA", bytes([2, 0, 1]) + bytes(32)),
        rr("_25._tcp.mx1.example.com", "RRSIG", rrsig),
    ])),
    "tlsa-via-cname": (0x80 | 0x08 | CTL["TLSA"], message("_25._tcp.mx1.example.com", "TLSA", [
        rr("_25._tcp.mx1.example.com", "CNAME", name("_tlsa.example.net")),
        rr("_tlsa.example.net", "TLSA", bytes([3, 1, 1]) + spki_sha256),
    ])),
    "tlsa-insecure-no-ad": (CTL["TLSA"], message("_25._tcp.mx1.example.com", "TLSA", [
        rr("_25._tcp.mx1.example.com", "TLSA", bytes([3, 1, 1]) + spki_sha256)], ad=False)),
    "a-cname-chain": (0x80 | CTL["A"], message("mx1.example.com", "A", [
        rr("mx1.example.com", "CNAME", name("host.example.com")),
        rr("host.example.com", "A", bytes([192, 0, 2, 25])),
    ])),
    "aaaa": (0x80 | CTL["AAAA"], message("mx1.example.com", "AAAA", [
        rr("mx1.example.com", "AAAA", bytes.fromhex("20010db8000000000000000000000025"))])),
    "txt-mta-sts": (0x80 | CTL["TXT"], message("_mta-sts.example.com", "TXT", [
        rr("_mta-sts.example.com", "TXT", b"\x1av=STSv1; id=20240101T0000Z" + b"\x04;x=y")])),
    "nxdomain-soa": (0x80 | CTL["TLSA"], message("_25._tcp.mx9.example.com", "TLSA",
        authority=[rr("example.com", "SOA", soa)], rcode=3)),
    "nodata-soa": (0x80 | 0x10 | CTL["MX"], message("example.net", "MX", authority=[rr("example.net", "SOA", soa)])),
    "servfail-bogus": (0x80 | CTL["TLSA"], message("_25._tcp.mx1.example.com", "TLSA", rcode=2, ad=False)),
    "ptr": (CTL["PTR"], message("25.2.0.192.in-addr.arpa", "PTR", [
        rr("25.2.0.192.in-addr.arpa", "PTR", name("mx1.example.com"))], ad=False)),
}
for n, (ctl, wire) in seeds.items():
    with open(os.path.join(out, n), "wb") as f:
        f.write(bytes([ctl]) + wire)
