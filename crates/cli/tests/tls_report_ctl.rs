//! `portcullis ctl tls-report send --day` on the real binary: a message
//! delivered over STARTTLS to a domain whose `_smtp._tls` record (in the
//! signed test zone) asks for reports by mail is counted, and the command
//! sends the day's report at once, DKIM-signed with the `[tls-report]` key
//! file, to the sink; a day that is not a date is refused with the format,
//! and the command says when nothing was counted.

mod ops_support;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ops_support::Rig;
use portcullis_testkit::client::{SendOptions, send};
use portcullis_testkit::dns_zone::ZoneBuilder;
use portcullis_testkit::gateway::route;
use portcullis_testkit::sink::{Sink, SinkOptions, SinkTls};

fn utc_day(t: SystemTime) -> String {
    let days = t.duration_since(UNIX_EPOCH).unwrap().as_secs() / 86_400;
    // Civil date from days since 1970 (H. Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_sends_the_days_report_now() {
    let mut rig = Rig::new();
    let leaf = Arc::new(rig.pki.leaf(&["mx.plain.test", "mx.reports.test"]).unwrap());
    let sink = Sink::start(SinkOptions::new(SinkTls::Offered(leaf)))
        .await
        .unwrap();
    rig.zone = ZoneBuilder::new()
        .txt(
            "_smtp._tls.plain.test",
            "v=TLSRPTv1; rua=mailto:reports@reports.test",
        )
        .start()
        .unwrap();
    rig.fx.dns = format!(
        "resolvers = [\"{}\"]\ntrust-anchor-file = \"{}\"\ntimeout-seconds = 3\n",
        rig.zone.authoritative_addr(),
        rig.zone.ksk_anchor_file().display()
    );
    let key = rig.fx.dir().join("dkim.pem");
    let out = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success());
    rig.fx.extra = route("plain.test", &[sink.addr().to_string()])
        + &route("reports.test", &[sink.addr().to_string()])
        + &format!(
            "[tls-report]\nenabled = true\norganization-name = \"CLI test\"\ncontact-info = \"mailto:postmaster@gw.test\"\n\
             submitter = \"gw.test\"\ndkim-domain = \"gw.test\"\ndkim-selector = \"tlsrpt\"\ndkim-key = \"{}\"\n",
            key.display()
        );
    let _gw = rig.start();

    let refused = rig.ctl(&["tls-report", "send", "--day", "2026-13-01"]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("YYYY-MM-DD"), "{err}");
    let none = rig.ctl_ok(&["tls-report", "send", "--day", "2001-01-01"]);
    assert!(
        none.contains("no TLS sessions were counted on 2001-01-01"),
        "{none}"
    );

    let d = send(
        rig.fx.listen,
        "sender@local.test",
        &["user@plain.test"],
        "counted",
        &SendOptions::default(),
    )
    .await
    .unwrap();
    assert!(d.result.is_accepted(), "{d:?}");
    let got = sink
        .wait_for_messages(1, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(got[0].tls.is_some(), "delivered over STARTTLS");
    let day = utc_day(SystemTime::now());
    let mut out = rig.ctl_ok(&["tls-report", "send", "--day", &day]);
    if out.contains("no TLS sessions") {
        // The delivery was counted just before midnight UTC.
        let yesterday = utc_day(SystemTime::now() - Duration::from_secs(86_400));
        out = rig.ctl_ok(&["tls-report", "send", "--day", &yesterday]);
    }
    assert!(
        out.contains("plain.test mailto:reports@reports.test: sent (250"),
        "{out}"
    );
    let all = sink
        .wait_for_messages(2, Duration::from_secs(60))
        .await
        .unwrap();
    let report = all
        .iter()
        .find(|m| m.rcpt_to.iter().any(|r| r.contains("reports@reports.test")))
        .expect("the report mail");
    let text = String::from_utf8_lossy(&report.body);
    assert!(
        text.starts_with("DKIM-Signature: v=1; a=rsa-sha256; s=tlsrpt; d=gw.test;"),
        "{text}"
    );
    assert!(text.contains("TLS-Report-Domain: plain.test"), "{text}");
    assert!(text.contains("report-type=\"tlsrpt\""), "{text}");
}
