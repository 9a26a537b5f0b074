//! The TLS report inbox of the real binary: RFC 8460 Appendix B's example
//! report and malformed variants (corrupt gzip, truncated JSON, a gzip bomb
//! expanding to 100 MB) sent in by mail — a `multipart/report` built and
//! sent by Python's `email` and `smtplib`, not by our code — and posted by
//! curl to `POST /tlsrpt` on the admin listener. Good reports are stored
//! (250 / 200), bad ones refused with their reason (550 / 4xx) and kept
//! aside; then `portcullis tls-report list|show`, `GET /api/tls-reports`
//! and the status page show what the reports say.

mod ops_support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use flate2::Compression;
use flate2::write::GzEncoder;
use ops_support::{READ_TOKEN, Rig};
use portcullis_testkit::gateway::route;
use portcullis_testkit::runner::{free_tcp_port, portcullis_binary};

fn appendix_b() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../policy/tests/fixtures/rfc8460-appendix-b.json");
    std::fs::read_to_string(path).unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// 100 MB of JSON whitespace, gzipped (about 100 kB).
fn bomb() -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::best());
    let block = vec![b' '; 1 << 20];
    for _ in 0..100 {
        e.write_all(&block).unwrap();
    }
    e.finish().unwrap()
}

fn corrupt(gz: &[u8]) -> Vec<u8> {
    let mut bad = gz.to_vec();
    // Past the 10-byte header, inside the deflate stream.
    for b in &mut bad[12..40] {
        *b ^= 0x5a;
    }
    bad
}

/// Sends `report` (its file at `file`) as the `application/SUBTYPE` part
/// of an RFC 8460 report mail with Python's smtplib; the DATA reply as
/// "CODE TEXT".
fn mail_report(rig: &Rig, file: &Path, subtype: &str, to: &[&str]) -> String {
    let script = r#"
import email.policy, smtplib, sys
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
port, path, subtype = int(sys.argv[1]), sys.argv[2], sys.argv[3]
to = sys.argv[4:]
msg = MIMEMultipart("report", report_type="tlsrpt")
msg["From"] = "tlsrpt-noreply@company-x.example"
msg["To"] = ", ".join(to)
msg["Subject"] = "Report Domain: company-y.example Submitter: company-x.example Report-ID: <5065427c>"
msg["TLS-Report-Domain"] = "company-y.example"
msg["TLS-Report-Submitter"] = "company-x.example"
msg.attach(MIMEText("This is an aggregate TLS report from company-x.example"))
part = MIMEApplication(open(path, "rb").read(), _subtype=subtype)
part.add_header("Content-Disposition", "attachment", filename="company-x.example!company-y.example!1459468800!1459555199.json.gz")
msg.attach(part)
s = smtplib.SMTP("127.0.0.1", port, timeout=60)
s.ehlo("reporter.company-x.example")
code, text = s.mail("tlsrpt-noreply@company-x.example")
assert code == 250, (code, text)
for t in to:
    code, text = s.rcpt(t)
    assert code == 250, (code, text)
code, text = s.data(msg.as_bytes(policy=email.policy.SMTP))
print(code, text.decode())
s.quit()
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(rig.fx.listen.port().to_string())
        .arg(file)
        .arg(subtype)
        .args(to)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python smtplib: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// curl POSTs `file` to /tlsrpt with `content_type`; (status, body).
fn post_report(rig: &Rig, file: &Path, content_type: &str) -> (u16, String) {
    let port = rig.admin.port();
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "60", "--cacert"])
        .arg(&rig.root_pem)
        .args(["--resolve", &format!("admin.test:{port}:127.0.0.1")])
        .args(["-X", "POST", "-w", "\n%{http_code}"])
        .args(["-H", &format!("Content-Type: {content_type}")])
        .arg("--data-binary")
        .arg(format!("@{}", file.display()))
        .arg(format!("https://admin.test:{port}/tlsrpt"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "curl: {}{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (body, status) = text.rsplit_once('\n').unwrap();
    (status.trim().parse().unwrap(), body.to_owned())
}

fn cli(rig: &Rig, args: &[&str]) -> String {
    let out = Command::new(portcullis_binary().unwrap())
        .args(args)
        .arg("--data-dir")
        .arg(rig.fx.data_dir())
        .env_remove("PORTCULLIS_CONFIG")
        .env_remove("PORTCULLIS_DATA_DIR")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "portcullis {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn reports_by_mail_and_https_are_stored_or_refused_and_summarised() {
    let mut rig = Rig::new();
    rig.fx.extra.push_str(
        "[tls-report-inbox]\naddress = [\"TLSRPT@local.test\"]\nmax-report-bytes = 1048576\nmax-json-bytes = 1048576\n",
    );
    let mut gw = rig.start();
    let dir = rig.fx.dir().to_path_buf();
    let report = appendix_b();
    let good_gz = write(&dir, "good.json.gz", &gzip(report.as_bytes()));
    let bad_gz = write(&dir, "bad.json.gz", &corrupt(&gzip(report.as_bytes())));
    let truncated = write(
        &dir,
        "truncated.json",
        &report.as_bytes()[..report.len() * 2 / 3],
    );
    let bomb = write(&dir, "bomb.json.gz", &bomb());
    let oversized = write(&dir, "oversized.json", &vec![b' '; 1_100_000]);
    // A second organisation's report, posted as plain JSON.
    let other = report
        .replace("Company-X", "Company-Z")
        .replace("2016-04-01T", "2016-04-02T")
        .replace(
            "\"failed-session-count\": 100",
            "\"failed-session-count\": 7",
        );
    let other_json = write(&dir, "other.json", other.as_bytes());

    // By mail.
    let reply = mail_report(&rig, &good_gz, "tlsrpt+gzip", &["tlsrpt@local.test"]);
    assert!(
        reply.starts_with("250 2.0.0 Ok: TLS report stored as "),
        "{reply}"
    );
    let mailed_id = reply.rsplit(' ').next().unwrap().to_owned();
    let reply = mail_report(&rig, &bad_gz, "tlsrpt+gzip", &["tlsrpt@local.test"]);
    assert!(
        reply.starts_with("550 5.6.0 TLS report refused: bad gzip"),
        "{reply}"
    );
    let reply = mail_report(&rig, &truncated, "tlsrpt+json", &["tlsrpt@local.test"]);
    assert!(
        reply.starts_with("550 5.6.0 TLS report refused: truncated JSON"),
        "{reply}"
    );
    let reply = mail_report(&rig, &bomb, "tlsrpt+gzip", &["tlsrpt@local.test"]);
    assert!(
        reply.starts_with("550 5.6.0 TLS report refused: report too large: the gzip data expands to more than 1048576 bytes"),
        "{reply}"
    );
    let reply = mail_report(&rig, &oversized, "tlsrpt+json", &["tlsrpt@local.test"]);
    assert!(
        reply.starts_with("550 5.6.0 TLS report refused: report too large: 1100000 bytes received, the limit is 1048576"),
        "{reply}"
    );
    // The same report again (a retried mail) is stored once.
    let reply = mail_report(&rig, &good_gz, "tlsrpt+gzip", &["tlsrpt@local.test"]);
    assert!(reply.ends_with(&mailed_id), "{reply}");

    // By POST.
    let (status, body) = post_report(&rig, &other_json, "application/tlsrpt+json");
    assert_eq!(status, 200, "{body}");
    let posted_id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(posted_id, mailed_id);
    let (status, body) = post_report(&rig, &bad_gz, "application/tlsrpt+gzip");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("TLS report refused: bad gzip"), "{body}");
    let (status, body) = post_report(&rig, &truncated, "application/tlsrpt+json");
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("truncated JSON: the report ends early at line"),
        "{body}"
    );
    let (status, body) = post_report(&rig, &bomb, "application/tlsrpt+gzip");
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("report too large"), "{body}");
    let (status, body) = post_report(&rig, &good_gz, "application/json");
    assert_eq!(status, 415, "{body}");
    // Past the received cap: reading stops there, nothing is kept.
    let (status, body) = post_report(&rig, &oversized, "application/tlsrpt+json");
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("more than 1048576 bytes posted"), "{body}");

    // Nothing was queued for relay.
    let queue = rig.fx.queue(&["list"]).unwrap();
    let queue = String::from_utf8_lossy(&queue.stdout);
    assert!(!queue.contains("tlsrpt@local.test"), "{queue}");

    // list: the operator's view.
    let list = cli(&rig, &["tls-report", "list"]);
    println!("{list}");
    for needle in [
        "2016-04-02  Company-Z",
        "2016-04-01  Company-X",
        "mx1.mail.company-y.example",
        "certificate-expired",
        "starttls-not-supported",
        "203.0.113.58",
        "validation-failure",
        "Refused reports (8;",
        "bad gzip",
        "truncated JSON",
        "report too large",
        &mailed_id,
        &posted_id,
    ] {
        assert!(list.contains(needle), "list lacks {needle:?}:\n{list}");
    }
    let summary: serde_json::Value = serde_json::from_str(&cli(
        &rig,
        &["--json", "tls-report", "list", "--day", "2016-04-01"],
    ))
    .unwrap();
    let failures: Vec<(String, String, String, u64)> = summary["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["organization"].as_str().unwrap().to_owned(),
                f["our-mx"].as_str().unwrap().to_owned(),
                f["result-type"].as_str().unwrap().to_owned(),
                f["sessions"].as_u64().unwrap(),
            )
        })
        .collect();
    let expect =
        |o: &str, mx: &str, r: &str, n: u64| (o.to_owned(), mx.to_owned(), r.to_owned(), n);
    assert_eq!(
        failures,
        [
            expect("Company-X", "203.0.113.58", "validation-failure", 3),
            expect(
                "Company-X",
                "mx1.mail.company-y.example",
                "certificate-expired",
                100
            ),
            expect(
                "Company-X",
                "mx2.mail.company-y.example",
                "starttls-not-supported",
                200
            ),
        ]
    );
    assert_eq!(summary["reports"][0]["successful"], 5326);
    assert_eq!(summary["reports"][0]["failed"], 303);
    assert_eq!(summary["reports"][0]["via"], "smtp");

    // show: the report as the sender wrote it (its own field names too).
    let show = cli(&rig, &["tls-report", "show", &mailed_id]);
    assert!(show.contains("organisation:  Company-X"), "{show}");
    assert!(show.contains("5326 successful, 303 failed"), "{show}");
    assert!(show.contains("via smtp from 127.0.0.1"), "{show}");
    assert!(
        show.contains("\"failure-error-code\": \"X509_V_ERR_PROOF_OF_POSSESSION\""),
        "{show}"
    );

    // The refused bytes are kept aside as received.
    let refused = rig.fx.data_dir().join("tls-reports").join("refused");
    let kept: Vec<Vec<u8>> = std::fs::read_dir(&refused)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "data"))
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    let bad_bytes = std::fs::read(&bad_gz).unwrap();
    assert_eq!(
        kept.iter().filter(|k| **k == bad_bytes).count(),
        2,
        "mail and POST"
    );
    assert!(
        kept.iter().all(|k| k.len() <= 1_048_576),
        "nothing past the cap is kept"
    );

    // The API and the status page.
    let api = rig.curl(
        "GET",
        "/api/tls-reports?organization=company-z",
        Some(READ_TOKEN),
        None,
    );
    assert_eq!(api.status, 200, "{}", api.body);
    let v = api.json();
    assert_eq!(v["reports"].as_array().unwrap().len(), 1, "{v}");
    let expired = v["failures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["result-type"] == "certificate-expired")
        .unwrap();
    assert_eq!(expired["sessions"], 7, "{v}");
    assert_eq!(expired["organization"], "Company-Z", "{v}");
    let page = rig.curl("GET", "/", Some(READ_TOKEN), None);
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("<section id=\"tls-reports\">"),
        "{}",
        page.body
    );
    assert!(page.body.contains("starttls-not-supported"));
    let api = rig.curl(
        "GET",
        &format!("/api/tls-reports/{posted_id}"),
        Some(READ_TOKEN),
        None,
    );
    assert_eq!(api.json()["report"]["organization-name"], "Company-Z");

    // Across a restart the store is still there.
    rig.restart(&mut gw);
    let list = cli(&rig, &["tls-report", "list", "--organization", "Company-Z"]);
    assert!(
        list.contains(&posted_id) && !list.contains(&mailed_id),
        "{list}"
    );
    gw.terminate(std::time::Duration::from_secs(10));
}

#[test]
fn a_report_mail_with_other_recipients_is_relayed_to_them_only() {
    let mut rig = Rig::new();
    // Mail for the other recipient stays queued: its route goes nowhere.
    let nowhere = format!("127.0.0.1:{}", free_tcp_port().unwrap());
    rig.fx.extra.push_str(&route("local.test", &[nowhere]));
    rig.fx
        .extra
        .push_str("[tls-report-inbox]\naddress = [\"tlsrpt@local.test\"]\n");
    let mut gw = rig.start();
    let dir = rig.fx.dir().to_path_buf();
    let good = write(&dir, "good.json.gz", &gzip(appendix_b().as_bytes()));
    let reply = mail_report(
        &rig,
        &good,
        "tlsrpt+gzip",
        &["tlsrpt@local.test", "postmaster@local.test"],
    );
    assert!(reply.starts_with("250 2.0.0 Ok: queued as"), "{reply}");
    let queue = rig.fx.queue(&["list"]).unwrap();
    let queue = String::from_utf8_lossy(&queue.stdout);
    assert!(queue.contains("postmaster@local.test"), "{queue}");
    assert!(!queue.contains("tlsrpt@local.test"), "{queue}");
    let list = cli(&rig, &["tls-report", "list"]);
    assert!(list.contains("Company-X"), "{list}");
    gw.terminate(std::time::Duration::from_secs(10));
}
