//! Alerts from the real binary: `[alerts]` with a smarthost (the testkit's
//! SMTP sink over STARTTLS); the certificate expiry check at start; a
//! refused reload is mailed as a config alert
//! and listed by `portcullis ctl alerts` through the admin API, by
//! `GET /api/alerts`, `/api/status` and the status page, and by `ctl alerts` again once the
//! gateway has stopped (read from the data directory).

mod ops_support;

use std::sync::Arc;
use std::time::Duration;

use ops_support::{READ_TOKEN, Rig, eventually};
use portcullis_testkit::pki::TestPki;
use portcullis_testkit::sink::{Sink, SinkOptions, SinkTls};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_reload_is_mailed_and_listed_by_ctl_alerts_online_and_offline() {
    let pki = TestPki::new().unwrap();
    let leaf = pki.leaf(&["smarthost.test"]).unwrap();
    let sink = Sink::start(SinkOptions::new(SinkTls::Offered(Arc::new(leaf))))
        .await
        .unwrap();
    let mut rig = Rig::new();
    rig.fx.extra = format!(
        "[alerts]\nsmarthost = \"{}\"\n[[alerts.recipient]]\naddress = \"ops@example.test\"\nclasses = [\"config\", \"system\"]\n",
        sink.addr()
    );
    let mut gw = rig.start();
    // The expiry check at start: the test PKI's admin certificate lasts
    // 10 days. Not mailed: ops@ subscribed to config and system only.
    let first = eventually(30, "the certificate alert at start", || {
        let out = rig.ctl_ok(&["alerts"]);
        out.contains("certificate:admin:warning").then_some(out)
    });
    assert!(first.contains("used by admin.certificate"), "{first}");

    let bad = rig.config().replacen(
        &format!("address = \"{}\"", rig.fx.listen),
        "address = \"127.0.0.1:notaport\"",
        1,
    );
    std::fs::write(rig.config_path(), &bad).unwrap();
    assert!(!rig.ctl(&["reload"]).status.success());

    let mail = &sink
        .wait_for_messages(1, Duration::from_secs(60))
        .await
        .unwrap()[0];
    assert!(mail.tls.is_some(), "alert mail over STARTTLS");
    assert_eq!(mail.rcpt_to, vec!["<ops@example.test>"]);
    assert_eq!(mail.mail_from, "<alert@gateway.test>");
    let text = mail.body_text();
    assert!(
        text.contains("X-Portcullis-Alert: class=config; severity=warning; repeats=0"),
        "{text}"
    );
    assert!(text.contains("listener[0].address"), "{text}");

    let listed = eventually(30, "ctl alerts lists the reload alert", || {
        let out = rig.ctl_ok(&["alerts"]);
        out.contains(" reload\n").then_some(out)
    });
    assert!(
        listed.contains("warning") && listed.contains("config"),
        "{listed}"
    );
    let v: serde_json::Value = serde_json::from_str(&rig.ctl_ok(&["--json", "alerts"])).unwrap();
    assert_eq!(v["alerts"][0]["key"], "reload", "{v}");
    assert_eq!(v["alerts"][0]["class"], "config", "{v}");
    assert_eq!(v["pending"].as_array().unwrap().len(), 0, "{v}");

    let api = rig.curl("GET", "/api/alerts", Some(READ_TOKEN), None);
    assert_eq!(api.status, 200, "{}", api.body);
    assert_eq!(api.json()["alerts"][0]["severity"], "warning");
    let status = rig
        .curl("GET", "/api/status", Some(READ_TOKEN), None)
        .json();
    assert_eq!(status["recent_alerts"][0]["key"], "reload", "{status}");
    let page = rig.curl("GET", "/", Some(READ_TOKEN), None);
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("<h2>Recent alerts</h2>"),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains("<span class=\"badge warn\">warning</span> config"),
        "{}",
        page.body
    );
    assert!(page.body.contains("A configuration reload was refused"));

    gw.terminate(Duration::from_secs(30));
    let out = rig.ctl(&["alerts"]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("reload"), "{stdout}");
    assert!(stderr.contains("did not answer"), "{stderr}");
}
