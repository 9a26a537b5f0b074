#!/usr/bin/env python3
"""Python smtplib sessions against the recorder (run by make.sh): plain,
STARTTLS, ESMTP parameters (SIZE, BODY, SMTPUTF8, REQUIRETLS, DSN's RET,
ENVID, NOTIFY and ORCPT), dot-stuffing, and BDAT chunks sent raw."""

import smtplib
import socket
import ssl
import sys

port = int(sys.argv[1])
host = "127.0.0.1"
msg = (
    "From: a@client.test\r\nTo: b@example.com\r\nSubject: seed\r\n"
    "TLS-Required: No\r\n\r\n"
    ".a line that needs dot-stuffing\r\n.\r\n..\r\nlast line\r\n"
)
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE

# 1. Plain session with ESMTP parameters and DSN.
with smtplib.SMTP(host, port, local_hostname="client.test") as s:
    s.sendmail(
        "a@client.test",
        ["b@example.com", "c@example.com"],
        msg,
        mail_options=["SIZE=%d" % len(msg), "BODY=8BITMIME", "RET=HDRS", "ENVID=QQ314159"],
        rcpt_options=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;b@example.com"],
    )

# 2. STARTTLS, then a message requiring TLS (RFC 8689) in UTF-8.
with smtplib.SMTP(host, port, local_hostname="client.test") as s:
    s.starttls(context=ctx)
    s.ehlo("client.test")
    s.sendmail(
        "a@client.test",
        ["b@example.com"],
        msg.encode(),
        mail_options=["BODY=8BITMIME", "REQUIRETLS", "SMTPUTF8"],
        rcpt_options=["NOTIFY=NEVER"],
    )

# 3. HELO only, null sender, RSET, NOOP, VRFY.
with smtplib.SMTP(host, port, local_hostname="client.test") as s:
    s.helo("client.test")
    s.noop()
    s.verify("postmaster")
    s.rset()
    s.sendmail("<>", ["postmaster@example.com"], "Subject: bounce\r\n\r\nx\r\n")

# 4. BDAT (RFC 3030) with pipelined chunks: smtplib has no BDAT, so the
# commands go over a raw socket after smtplib's style of EHLO.
s = socket.create_connection((host, port), timeout=10)
f = s.makefile("rb")


def reply():
    while True:
        line = f.readline()
        if not line or line[3:4] == b" ":
            return


reply()
s.sendall(b"EHLO client.test\r\n")
reply()
body = b"Subject: chunked\r\n\r\n.not stuffed in BDAT\r\n"
s.sendall(
    b"MAIL FROM:<a@client.test> BODY=BINARYMIME\r\nRCPT TO:<b@example.com>\r\n"
    + b"BDAT %d\r\n" % len(body[:10])
    + body[:10]
    + b"BDAT %d LAST\r\n" % len(body[10:])
    + body[10:]
)
for _ in range(4):
    reply()
s.sendall(b"QUIT\r\n")
reply()
s.close()
