#!/usr/bin/env python3
"""Seeds of mta_tlsrpt_mail (run by make.sh): TLS-RPT report mails as
Python's email package writes them (RFC 8460 section 5.3), around the
report in REPORT-JSON:

  report_mail.py OUT-DIR REPORT-JSON
"""

import gzip
import os
import sys
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email import encoders

out_dir, report_path = sys.argv[1:]
report = open(report_path, "rb").read()


def mail(part, report_type=True):
    m = MIMEMultipart("report", **({"report-type": "tlsrpt"} if report_type else {}))
    m["From"] = "tlsrpt@sender.example"
    m["To"] = "tls-reports@example.com"
    m["Subject"] = "Report Domain: example.com Submitter: sender.example Report-ID: <2016.04.01T00.00.00Z+example.com@sender.example>"
    m["TLS-Report-Domain"] = "example.com"
    m["TLS-Report-Submitter"] = "sender.example"
    m.attach(MIMEText("This is an aggregate TLS report from sender.example\n"))
    m.attach(part)
    return m.as_bytes()


def app(subtype, data, encoder=encoders.encode_base64, filename=None):
    p = MIMEApplication(data, subtype, encoder)
    if filename:
        p.add_header("Content-Disposition", "attachment", filename=filename)
    return p


seeds = {
    "tlsrpt-gzip-base64": mail(app("tlsrpt+gzip", gzip.compress(report), filename="sender.example!example.com!1459468800!1459555199.json.gz")),
    "tlsrpt-json-base64": mail(app("tlsrpt+json", report, filename="report.json")),
    "tlsrpt-json-quoted-printable": mail(app("tlsrpt+json", report, encoders.encode_quopri)),
    "tlsrpt-json-7bit": mail(app("tlsrpt+json", report, encoders.encode_7or8bit)),
    "gzip-with-file-name": mail(app("gzip", gzip.compress(report), filename="report.json.gz"), report_type=False),
    "octet-stream-with-file-name": mail(app("octet-stream", report, filename="report.json")),
    "gzip-without-file-name": mail(app("gzip", gzip.compress(report))),
    "no-report-part": mail(MIMEText("no report attached\n")),
}
for name, data in seeds.items():
    with open(os.path.join(out_dir, name), "wb") as f:
        f.write(data.replace(b"\n", b"\r\n"))
