"""Parses one alert mail (RFC 5322 on stdin) with Python's email package and
prints what the alert tests check, as JSON: the headers and the text body."""
import email
import email.policy
import json
import sys

msg = email.message_from_binary_file(sys.stdin.buffer, policy=email.policy.default)
body = msg.get_body(preferencelist=("plain",))
print(json.dumps({
    "from": str(msg["From"]),
    "to": str(msg["To"]),
    "subject": str(msg["Subject"]),
    "date": str(msg["Date"]),
    "message_id": str(msg["Message-ID"]),
    "x_alert": str(msg["X-Portcullis-Alert"]),
    "auto_submitted": str(msg["Auto-Submitted"]),
    "content_type": msg.get_content_type(),
    "charset": msg.get_content_charset(),
    "body": body.get_content() if body is not None else None,
}))
