#!/usr/bin/env python3
"""SMTP recorder for fuzz seeds (run by make.sh, loopback only).

Two jobs, both recording the bytes one peer sends to the other:

  server PORT CERT KEY OUTDIR   a small ESMTP server on 127.0.0.1:PORT that
      answers like Postfix (multiline EHLO, STARTTLS with a real TLS
      handshake, DATA, BDAT) and writes what each client sent, decrypted
      after STARTTLS, to OUTDIR/session-N. Those are the client sessions
      the server-side target parses.

  client PORT OUT [SCRIPT]      connects to a server (Postfix's smtp-sink),
      speaks the session the client-side fuzz target drives (EHLO, two
      messages of MAIL + two RCPT + DATA, QUIT) and writes the server's
      replies to OUT.
"""

import os
import socket
import ssl
import sys
import threading

EHLO = (
    b"250-mx.recorder.test\r\n"
    b"250-PIPELINING\r\n"
    b"250-SIZE 10240000\r\n"
    b"250-VRFY\r\n"
    b"250-ETRN\r\n"
    b"250-STARTTLS\r\n"
    b"250-ENHANCEDSTATUSCODES\r\n"
    b"250-8BITMIME\r\n"
    b"250-DSN\r\n"
    b"250-SMTPUTF8\r\n"
    b"250-REQUIRETLS\r\n"
    b"250 CHUNKING\r\n"
)


class Conn:
    def __init__(self, sock, record):
        self.sock = sock
        self.buf = b""
        self.record = record

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        self.record.extend(data)
        self.buf += data

    def line(self):
        while b"\r\n" not in self.buf and b"\n" not in self.buf:
            self._fill()
        i = self.buf.find(b"\n")
        out, self.buf = self.buf[: i + 1], self.buf[i + 1 :]
        return out

    def exactly(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send(self, b):
        self.sock.sendall(b)


def serve_one(sock, ctx, path):
    record = bytearray()
    c = Conn(sock, record)
    try:
        c.send(b"220 mx.recorder.test ESMTP\r\n")
        while True:
            line = c.line().rstrip(b"\r\n")
            verb = line.split(b" ", 1)[0].upper()
            if verb in (b"EHLO",):
                c.send(EHLO)
            elif verb == b"HELO":
                c.send(b"250 mx.recorder.test\r\n")
            elif verb == b"STARTTLS":
                c.send(b"220 2.0.0 Ready to start TLS\r\n")
                tls = ctx.wrap_socket(sock, server_side=True)
                c.sock = tls
                c.buf = b""
            elif verb == b"MAIL":
                c.send(b"250 2.1.0 Ok\r\n")
            elif verb == b"RCPT":
                c.send(b"250 2.1.5 Ok\r\n")
            elif verb == b"DATA":
                c.send(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                while c.line() not in (b".\r\n", b".\n"):
                    pass
                c.send(b"250 2.0.0 Ok: queued as 4XyZ1\r\n")
            elif verb == b"BDAT":
                parts = line.split()
                c.exactly(int(parts[1]))
                c.send(b"250 2.0.0 Ok\r\n")
            elif verb == b"QUIT":
                c.send(b"221 2.0.0 Bye\r\n")
                break
            elif verb in (b"RSET", b"NOOP"):
                c.send(b"250 2.0.0 Ok\r\n")
            elif verb == b"VRFY":
                c.send(b"252 2.0.0 Send some mail, I'll try my best\r\n")
            else:
                c.send(b"502 5.5.2 Error: command not recognized\r\n")
    except (EOFError, ConnectionError, ssl.SSLError, OSError):
        pass
    finally:
        with open(path, "wb") as f:
            f.write(bytes(record))
        try:
            sock.close()
        except OSError:
            pass


def server(port, cert, key, outdir):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(8)
    ls.settimeout(60)
    n = 0
    while True:
        try:
            s, _ = ls.accept()
        except socket.timeout:
            return
        s.settimeout(10)
        n += 1
        path = os.path.join(outdir, "session-%d" % n)
        threading.Thread(target=serve_one, args=(s, ctx, path), daemon=True).start()


# The session the client-side target drives, one command per entry; None
# marks where the client waits for the reply to the DATA end.
CLIENT_SCRIPT = [
    b"EHLO client.fuzz\r\n",
    b"MAIL FROM:<a@client.fuzz>\r\n",
    b"RCPT TO:<b@mx.fuzz>\r\n",
    b"RCPT TO:<c@mx.fuzz>\r\n",
    b"DATA\r\n",
    b"Subject: x\r\n\r\n..\r\n.\r\n",
    b"MAIL FROM:<a@client.fuzz> BODY=8BITMIME\r\n",
    b"RCPT TO:<b@mx.fuzz>\r\n",
    b"RCPT TO:<c@mx.fuzz>\r\n",
    b"DATA\r\n",
    b"Subject: y\r\n\r\nbody\r\n.\r\n",
    b"QUIT\r\n",
]


def client(port, out):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    got = bytearray()

    def reply():
        # Read one whole (possibly multiline) reply.
        buf = b""
        while True:
            while b"\n" not in buf:
                d = s.recv(65536)
                if not d:
                    raise EOFError
                buf += d
                got.extend(d)
            lines = buf.split(b"\n")
            complete = lines[:-1]
            if any(len(l) >= 4 and l[3:4] == b" " for l in complete):
                return
            # keep reading: multiline reply not finished

    try:
        reply()
        for cmd in CLIENT_SCRIPT:
            s.sendall(cmd)
            reply()
    except (EOFError, OSError):
        pass
    with open(out, "wb") as f:
        f.write(bytes(got))


if __name__ == "__main__":
    if sys.argv[1] == "server":
        server(int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5])
    else:
        client(int(sys.argv[2]), sys.argv[3])
