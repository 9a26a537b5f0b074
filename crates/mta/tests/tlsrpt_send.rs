//! TLS-RPT sending through the engine: a day of deliveries across the
//! testkit's signed zone — DANE match and mismatch, MTA-STS enforce and
//! testing (MX not in the policy), no policy — counted on a test clock's
//! day, stored when the engine stops, and reported by the next engine: by
//! mail (RFC 8460 §5.3, DKIM-signed) to the sink and by HTTPS POST to a
//! receiver started here. The reports are checked by tools we did not
//! write: Python's gzip and json, python3-jsonschema against a schema
//! written from RFC 8460 §4.4, and dkimpy (dkimverify's library) answering
//! the key's TXT itself — no test asks the host's resolver.

mod engine_support;

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use engine_support::*;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use portcullis_dane::dns::ResolverSettings;
use portcullis_mta::clock::TestClock;
use portcullis_mta::engine::{Engine, EngineSettings};
use portcullis_mta::tlsrpt::mail::DkimSigning;
use portcullis_mta::tlsrpt::{Reporting, TlsReportSettings, UtcDay};
use portcullis_smtp_tls::TlsRequirement;
use portcullis_testkit::dns_zone::ZoneBuilder;
use portcullis_testkit::mta_sts_server::{MtaStsServer, policy_text};
use portcullis_testkit::pki::TestPki;
use serde_json::Value;

const REPORTS_TO: &str = "tlsrpt@reports.test";

/// Each POST's content type and body.
type Posts = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A local HTTPS receiver: every POST's content type and body.
struct Receiver {
    port: u16,
    posts: Posts,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receiver(config: Arc<rustls::ServerConfig>) -> Receiver {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let posts: Posts = Arc::default();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let kept = posts.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, kept) = (acceptor.clone(), kept.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let kept = kept.clone();
                        async move {
                            let ctype = req
                                .headers()
                                .get(hyper::header::CONTENT_TYPE)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_owned();
                            let ok = req.method() == hyper::Method::POST
                                && req.uri().path() == "/tlsrpt";
                            let body = req.into_body().collect().await?.to_bytes().to_vec();
                            if ok {
                                kept.lock().unwrap().push((ctype, body));
                            }
                            let status = if ok { 201 } else { 404 };
                            Ok::<_, hyper::Error>(
                                hyper::Response::builder()
                                    .status(status)
                                    .body(http_body_util::Full::new(hyper::body::Bytes::new()))
                                    .unwrap(),
                            )
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    Receiver { port, posts, task }
}

/// An RSA DKIM key: the PEM for the gateway, the TXT for the checker.
fn dkim_key(dir: &Path) -> (Vec<u8>, String) {
    let pem = dir.join("dkim.pem");
    let out = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&pem)
        .output()
        .expect("openssl is part of the test machine");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new("openssl")
        .args(["pkey", "-pubout", "-outform", "DER", "-in"])
        .arg(&pem)
        .output()
        .unwrap();
    assert!(out.status.success());
    let txt = format!(
        "v=DKIM1; k=rsa; p={}",
        base64::engine::general_purpose::STANDARD.encode(&out.stdout)
    );
    (std::fs::read(&pem).unwrap(), txt)
}

/// Runs the Python checker; the report it read.
fn python_check(dir: &Path, args: &[&str], file: &[u8], name: &str) -> Value {
    let path = dir.join(name);
    std::fs::write(&path, file).unwrap();
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tlsrpt/check_report.py");
    // Debian's interpreter: python3-jsonschema and python3-dkim are
    // installed for it (scripts/install-test-deps.sh), not for another
    // python3 earlier on PATH.
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.arg(script).arg(args[0]).arg(&path);
    for a in &args[1..] {
        cmd.arg(a);
    }
    let out = cmd.output().expect("python3 is part of the test machine");
    assert!(
        out.status.success(),
        "{name}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn report_settings(dir: &Path, clock: &TestClock, pem: &[u8]) -> TlsReportSettings {
    TlsReportSettings {
        reporting: Reporting {
            organization_name: "Portcullis Test Gateway".into(),
            contact_info: "mailto:postmaster@gw.test".into(),
            submitter: "gw.test".into(),
        },
        from: "tls-reports@gw.test".into(),
        dkim: Some(DkimSigning::from_pem("gw.test", "tlsrpt", pem).unwrap()),
        flush_interval: Duration::from_secs(3600),
        max_delay: Duration::ZERO,
        store_dir: dir.join("data/tls-report"),
        clock: clock.shared(),
    }
}

fn policy_of<'a>(report: &'a Value, kind: &str) -> &'a Value {
    report["policies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["policy"]["policy-type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} policy in {report:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_of_deliveries_is_reported_by_mail_and_https() {
    let pki = TestPki::new().unwrap();
    let mx_names = [
        "mx.dane-ok.test",
        "mx.dane-bad.test",
        "mx.sts-enforce.test",
        "mx.sts-testing.test",
        "mx.plain.test",
        "mx.silent.test",
        "mx.reports.test",
    ];
    let leaf = pki.leaf(&mx_names).unwrap();
    let stranger = pki.leaf(&["mx.dane-bad.test"]).unwrap();
    let sink_tls = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(leaf.chain().to_vec(), leaf.key())
        .unwrap();
    let sink = Sink::start(SinkOptions {
        tls: Some(Arc::new(sink_tls)),
        ..Default::default()
    })
    .await;
    let port = sink.addr.port();
    let https_leaf = pki.leaf(&["reports.test"]).unwrap();
    let https = receiver(Arc::new(
        rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(https_leaf.chain().to_vec(), https_leaf.key())
            .unwrap(),
    ))
    .await;
    let enforce = MtaStsServer::start(
        &pki.leaf(&["mta-sts.sts-enforce.test"]).unwrap(),
        &policy_text("enforce", &["mx.sts-enforce.test"], 86400),
    )
    .await
    .unwrap();
    let testing = MtaStsServer::start(
        &pki.leaf(&["mta-sts.sts-testing.test"]).unwrap(),
        &policy_text("testing", &["*.elsewhere.test"], 86400),
    )
    .await
    .unwrap();

    let ip = Ipv4Addr::LOCALHOST;
    let mail_rua = format!("v=TLSRPTv1; rua=mailto:{REPORTS_TO}");
    let https_rua = format!("https://reports.test:{}/tlsrpt", https.port);
    let mut z = ZoneBuilder::new();
    for d in [
        "dane-ok.test",
        "dane-bad.test",
        "sts-enforce.test",
        "sts-testing.test",
        "plain.test",
        "silent.test",
        "reports.test",
    ] {
        z = z.mx(d, 10, &format!("mx.{d}")).a(&format!("mx.{d}"), ip);
    }
    let zone = z
        .a("reports.test", ip)
        .tlsa_for("mx.dane-ok.test", port, leaf.chain(), 0, [3, 1, 1])
        .unwrap()
        .tlsa_for("mx.dane-bad.test", port, stranger.chain(), 0, [3, 1, 1])
        .unwrap()
        .txt("_mta-sts.sts-enforce.test", "v=STSv1; id=20261130;")
        .txt("_mta-sts.sts-testing.test", "v=STSv1; id=20261130;")
        .txt("_smtp._tls.dane-ok.test", &mail_rua)
        .txt(
            "_smtp._tls.dane-bad.test",
            &format!("v=TLSRPTv1; rua=mailto:{REPORTS_TO},{https_rua}"),
        )
        .txt(
            "_smtp._tls.sts-enforce.test",
            &format!("v=TLSRPTv1; rua={https_rua}"),
        )
        .txt("_smtp._tls.sts-testing.test", &mail_rua)
        .txt("_smtp._tls.plain.test", &mail_rua)
        .start()
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let (pem, dkim_txt) = dkim_key(dir.path());
    let gw = pki.leaf(&["gw.test"]).unwrap();
    let gw_tls = Arc::new(
        rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(gw.chain().to_vec(), gw.key())
            .unwrap(),
    );
    let make_settings = |log: &LogCapture| -> EngineSettings {
        let mut s = settings(
            dir.path(),
            relay_access("preferred"),
            Some(gw_tls.clone()),
            policy(
                r#"
                [[destination]]
                domain = "default"
                tls = "preferred"
                dane = "opportunistic"
                "#,
            ),
            pki.root_store().unwrap(),
            log,
        );
        let mut dns = ResolverSettings::new(vec![zone.authoritative_addr()]);
        dns.trust_anchor_file = Some(zone.trust_anchor_file());
        dns.probe_name = Some("test.".into());
        dns.timeout = Duration::from_secs(5);
        s.delivery.dns = Some(dns);
        s.delivery.mx_port = port;
        s.delivery.mta_sts.enabled = true;
        s.delivery.mta_sts.addresses = vec![
            ("mta-sts.sts-enforce.test".into(), enforce.addr()),
            ("mta-sts.sts-testing.test".into(), testing.addr()),
        ];
        s
    };

    // The day: 2026-11-30, on the test clock.
    let day = UtcDay::parse("2026-11-30").unwrap();
    let clock = TestClock::at(day.start() + Duration::from_secs(12 * 3600));
    let log = LogCapture::default();
    let engine = Engine::start(make_settings(&log)).await.unwrap();
    engine
        .start_tls_reports(report_settings(dir.path(), &clock, &pem))
        .await;
    let to = [
        "a@dane-ok.test",
        "b@dane-bad.test",
        "c@sts-enforce.test",
        "d@sts-testing.test",
        "e@plain.test",
        "f@silent.test",
    ];
    let d = send(
        engine.local_addrs()[0],
        pki_connector(&pki),
        TlsRequirement::Required,
        "alice@local.test",
        &to,
        b"Subject: a day of mail\r\n\r\nTLS-RPT test.\r\n",
    )
    .await
    .unwrap();
    assert!(d.result.is_accepted(), "{d:?}");
    for rcpt in [
        "a@dane-ok.test",
        "c@sts-enforce.test",
        "d@sts-testing.test",
        "e@plain.test",
        "f@silent.test",
    ] {
        log.wait_for(&[&format!("delivered to <{rcpt}>")]).await;
    }
    log.wait_for(&["to dane-bad.test", "TLS failed: dane verification failed"])
        .await;
    log.wait_for(&["deferred"]).await;
    // The counts are written when the engine stops, and read by the next.
    engine.shutdown(Duration::from_secs(5)).await;
    assert_eq!(sink.received().len(), 5, "{}", log.dump());

    // The next engine, half an hour after the day ended: the report task
    // sends what is due (no random delay here) on its first round.
    clock.set(day.end() + Duration::from_secs(1800));
    let log = LogCapture::default();
    let engine = Engine::start(make_settings(&log)).await.unwrap();
    engine
        .start_tls_reports(report_settings(dir.path(), &clock, &pem))
        .await;
    for (domain, rua) in [
        ("dane-ok.test", "mailto:"),
        ("dane-bad.test", "mailto:"),
        ("dane-bad.test", "https:"),
        ("sts-enforce.test", "https:"),
        ("sts-testing.test", "mailto:"),
        ("plain.test", "mailto:"),
    ] {
        log.wait_for(&[
            &format!("for {domain} on 2026-11-30"),
            &format!("sent to {rua}"),
        ])
        .await;
    }
    log.wait_for(&["no report for silent.test on 2026-11-30", "_smtp._tls"])
        .await;
    // The store remembers what went where: no resend, no new lookup.
    let stored = std::fs::read_to_string(
        dir.path()
            .join("data/tls-report/2026-11-30/plain.test.json"),
    )
    .unwrap();
    assert!(stored.contains("mailto:tlsrpt@reports.test"), "{stored}");
    assert!(
        stored.contains("done: every report address took the report"),
        "{stored}"
    );
    let mails = sink.wait_for(9).await;
    let reports: Vec<_> = mails
        .iter()
        .filter(|m| m.to.iter().any(|t| t.contains(REPORTS_TO)))
        .collect();
    assert_eq!(reports.len(), 4, "{}", log.dump());

    let mut by_domain = std::collections::BTreeMap::new();
    for (i, m) in reports.iter().enumerate() {
        assert!(
            m.tls.is_some(),
            "report mail went over STARTTLS when offered"
        );
        assert_eq!(m.from, "<tls-reports@gw.test>");
        let r = python_check(
            dir.path(),
            &["mail", dkim_txt_file(dir.path(), &dkim_txt)],
            &m.body,
            &format!("report-{i}.eml"),
        );
        let domain = r["policies"][0]["policy"]["policy-domain"]
            .as_str()
            .unwrap()
            .to_owned();
        if domain == "dane-bad.test" {
            // Kept for people to read (the closing note quotes it).
            let keep = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/tmp");
            std::fs::create_dir_all(&keep).unwrap();
            std::fs::write(keep.join("tlsrpt-sample-report.eml"), &m.body).unwrap();
        }
        by_domain.insert(domain, r);
    }
    // The checker is not a rubber stamp: a changed signed header fails.
    let tampered = String::from_utf8_lossy(&reports[0].body).replacen(
        "TLS-Report-Submitter: gw.test",
        "TLS-Report-Submitter: gw.tesT",
        1,
    );
    let bad = dir.path().join("tampered.eml");
    std::fs::write(&bad, tampered.as_bytes()).unwrap();
    let out = Command::new("/usr/bin/python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tlsrpt/check_report.py"))
        .arg("mail")
        .arg(&bad)
        .arg(dkim_txt_file(dir.path(), &dkim_txt))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("DKIM signature does not verify"));

    let posts = https.posts.lock().unwrap().clone();
    assert_eq!(posts.len(), 2, "{}", log.dump());
    for (i, (ctype, body)) in posts.iter().enumerate() {
        assert_eq!(ctype, "application/tlsrpt+gzip");
        let r = python_check(dir.path(), &["https"], body, &format!("post-{i}.json.gz"));
        let domain = r["policies"][0]["policy"]["policy-domain"]
            .as_str()
            .unwrap()
            .to_owned();
        by_domain.entry(domain).or_insert(r);
    }

    let day_range = |r: &Value| {
        assert_eq!(r["date-range"]["start-datetime"], "2026-11-30T00:00:00Z");
        assert_eq!(r["date-range"]["end-datetime"], "2026-11-30T23:59:59Z");
        assert_eq!(r["organization-name"], "Portcullis Test Gateway");
    };
    // DANE match: one successful tlsa session, the records as strings.
    let r = &by_domain["dane-ok.test"];
    day_range(r);
    let p = policy_of(r, "tlsa");
    assert_eq!(
        p["policy"]["mx-host"],
        serde_json::json!(["mx.dane-ok.test"])
    );
    assert!(
        p["policy"]["policy-string"][0]
            .as_str()
            .unwrap()
            .starts_with("3 1 1 ")
    );
    assert_eq!(p["summary"]["total-successful-session-count"], 1);
    assert_eq!(p["summary"]["total-failure-session-count"], 0);
    // DANE mismatch: a failed tlsa session with the peer.
    let p = policy_of(&by_domain["dane-bad.test"], "tlsa");
    assert_eq!(p["summary"]["total-successful-session-count"], 0);
    assert_eq!(p["summary"]["total-failure-session-count"], 1);
    let f = &p["failure-details"][0];
    assert_eq!(f["result-type"], "validation-failure");
    assert_eq!(f["receiving-mx-hostname"], "mx.dane-bad.test");
    assert_eq!(f["receiving-ip"], "127.0.0.1");
    assert_eq!(f["sending-mta-ip"], "127.0.0.1");
    // The name in the sink's 220 greeting.
    assert_eq!(f["receiving-mx-helo"], "sink.test");
    assert_eq!(f["failed-session-count"], 1);
    // MTA-STS enforce: a successful sts session, the policy lines.
    let p = policy_of(&by_domain["sts-enforce.test"], "sts");
    assert_eq!(
        p["policy"]["mx-host"],
        serde_json::json!(["mx.sts-enforce.test"])
    );
    assert!(
        p["policy"]["policy-string"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l == "mode: enforce")
    );
    assert_eq!(p["summary"]["total-successful-session-count"], 1);
    // MTA-STS testing, MX not in the policy: delivered, counted as failed.
    let p = policy_of(&by_domain["sts-testing.test"], "sts");
    assert_eq!(
        p["policy"]["mx-host"],
        serde_json::json!(["*.elsewhere.test"])
    );
    assert_eq!(p["summary"]["total-failure-session-count"], 1);
    assert_eq!(p["failure-details"][0]["result-type"], "validation-failure");
    // No policy: one successful no-policy-found session.
    let p = policy_of(&by_domain["plain.test"], "no-policy-found");
    assert_eq!(p["summary"]["total-successful-session-count"], 1);
    assert!(p["policy"].get("policy-string").is_none());
    // Report mail itself was never counted: nothing for reports.test.
    assert!(!by_domain.contains_key("reports.test"));
    assert!(
        !dir.path()
            .join("data/tls-report/2026-12-01/reports.test.json")
            .exists()
    );

    // `ctl tls-report send --day` sends again, with the same report id.
    let sent = engine.send_tls_reports(day).await.unwrap();
    let (ok, failed): (Vec<_>, Vec<_>) = sent.iter().partition(|s| s.outcome.is_ok());
    assert_eq!(ok.len(), 6, "{sent:?}");
    assert_eq!(failed.len(), 1, "{sent:?}");
    assert_eq!(failed[0].domain, "silent.test");
    assert!(
        failed[0]
            .outcome
            .as_ref()
            .unwrap_err()
            .contains("no record starts with v=TLSRPTv1"),
        "{sent:?}"
    );
    let again = sink.wait_for(13).await;
    assert_eq!(again.len(), 13);
    engine.shutdown(Duration::from_secs(5)).await;
}

fn dkim_txt_file<'a>(dir: &Path, txt: &str) -> &'a str {
    let path = dir.join("dkim.txt");
    std::fs::write(&path, txt).unwrap();
    Box::leak(path.to_string_lossy().into_owned().into_boxed_str())
}

fn pki_connector(pki: &TestPki) -> tokio_rustls::TlsConnector {
    tokio_rustls::TlsConnector::from(Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(pki.root_store().unwrap())
            .with_no_client_auth(),
    ))
}
