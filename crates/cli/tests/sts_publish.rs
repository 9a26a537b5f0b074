//! MTA-STS hosting through the real binary: `portcullis sts publish` prints
//! `_mta-sts` records whose id follows the policy (same policy, same id;
//! another mode or mx, another id) and `_smtp._tls` records, both accepted
//! by our own DNS record parsers; configuration errors come out as
//! FILE:LINE:COL; and `portcullis run` serves the very policy `publish`
//! describes, read over HTTPS by our MTA-STS fetcher trusting the test CA,
//! and serves a changed policy after a reload (a moved listener waits for
//! the next start, and the log says so).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use portcullis_mta::mta_sts_fetch::PolicyFetcher;
use portcullis_policy::TlsRptTxtRecord;
use portcullis_policy::mta_sts::{StsMode, StsPolicy, StsTxtRecord};
use portcullis_testkit::gateway::GatewayFixture;
use portcullis_testkit::pki::TestPki;

/// Every wait of these tests ends by this.
const DEADLINE: Duration = Duration::from_secs(60);

fn hosting(mode: &str, mx: &str, rua: &str) -> String {
    format!(
        r#"[mta-sts.hosting]
address = "127.0.0.1:0"
certificate = "mta-sts"

[[mta-sts.hosting.domain]]
domain = "example.com"
mode = "{mode}"
mx = [{mx}]
max-age-seconds = 86400
tls-report-rua = [{rua}]

[[mta-sts.hosting.domain]]
domain = "example.net"
mode = "none"
"#
    )
}

/// Writes the fixture's configuration with `extra` and runs
/// `portcullis ARGS --config FILE`: status, stdout, stderr.
fn publish(fx: &mut GatewayFixture, extra: &str, json: bool) -> (bool, String, String) {
    fx.extra = extra.to_owned();
    let path = fx.dir().join("portcullis.toml");
    std::fs::write(&path, fx.config()).unwrap();
    let path = path.display().to_string();
    let mut args = vec!["sts", "publish", "--config", &path];
    if json {
        args.insert(0, "--json");
    }
    let out = fx.run_cli(&args).unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// The `_mta-sts.example.com` record's id, checked with our TXT parser.
fn sts_id(fx: &mut GatewayFixture, extra: &str) -> String {
    let (ok, out, err) = publish(fx, extra, false);
    assert!(ok, "{err}");
    let line = out
        .lines()
        .find(|l| l.starts_with("_mta-sts.example.com. IN TXT \""))
        .unwrap_or_else(|| panic!("no _mta-sts record in:\n{out}"));
    let value = line
        .trim_start_matches("_mta-sts.example.com. IN TXT \"")
        .trim_end_matches('"');
    StsTxtRecord::parse(value.as_bytes())
        .unwrap()
        .id()
        .to_owned()
}

#[test]
fn sts_publish_id_changes_exactly_when_the_policy_changes() {
    let mut fx = GatewayFixture::new().unwrap();
    let base = hosting("enforce", r#""mx1.example.com", "*.mx.example.com""#, "");
    let id = sts_id(&mut fx, &base);
    assert_eq!(id, sts_id(&mut fx, &base), "same file, same id");
    let with_rua = hosting(
        "enforce",
        r#""mx1.example.com", "*.mx.example.com""#,
        r#""mailto:tlsrpt@example.com""#,
    );
    assert_eq!(
        id,
        sts_id(&mut fx, &with_rua),
        "report addresses are not part of the policy"
    );
    let testing = hosting("testing", r#""mx1.example.com", "*.mx.example.com""#, "");
    assert_ne!(id, sts_id(&mut fx, &testing), "another mode");
    let other_mx = hosting("enforce", r#""mx1.example.com""#, "");
    assert_ne!(id, sts_id(&mut fx, &other_mx), "another mx list");

    // The text output: both domains, and _smtp._tls only where a rua is set.
    let (ok, out, err) = publish(&mut fx, &with_rua, false);
    assert!(ok, "{err}");
    assert!(
        out.contains(
            "_smtp._tls.example.com. IN TXT \"v=TLSRPTv1; rua=mailto:tlsrpt@example.com\""
        ),
        "{out}"
    );
    assert!(
        out.contains("_mta-sts.example.net. IN TXT \"v=STSv1; id="),
        "{out}"
    );
    assert!(!out.contains("_smtp._tls.example.net"), "{out}");

    // JSON carries the same records and the policy text served.
    let (ok, out, err) = publish(&mut fx, &with_rua, true);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let com = &v[0];
    assert_eq!(com["domain"], "example.com");
    assert_eq!(
        com["policy_url"],
        "https://mta-sts.example.com/.well-known/mta-sts.txt"
    );
    let policy = StsPolicy::parse(com["policy"].as_str().unwrap().as_bytes()).unwrap();
    assert_eq!(policy.mode(), StsMode::Enforce);
    assert_eq!(com["records"][0]["name"], "_mta-sts.example.com");
    assert_eq!(com["records"][0]["value"], format!("v=STSv1; id={id};"));
    let rua = com["records"][1]["value"].as_str().unwrap();
    assert_eq!(
        TlsRptTxtRecord::parse(rua.as_bytes()).unwrap().rua(),
        ["mailto:tlsrpt@example.com"]
    );
    assert_eq!(v[1]["domain"], "example.net");
    assert_eq!(v[1]["records"].as_array().unwrap().len(), 1);
}

#[test]
fn sts_publish_reports_configuration_errors_with_their_position() {
    let mut fx = GatewayFixture::new().unwrap();
    let bad = hosting("strict", r#""mx1.example.com""#, r#""ftp://example.com/""#);
    let (ok, out, err) = publish(&mut fx, &bad, false);
    assert!(!ok && out.is_empty(), "{out}");
    let file = fx.dir().join("portcullis.toml").display().to_string();
    let text = fx.config();
    let line_of = |needle: &str| text.lines().position(|l| l.starts_with(needle)).unwrap() + 1;
    for expected in [
        format!(
            "{file}:{}:1: mta-sts.hosting.domain[0].mode: \"strict\" is not a mode",
            line_of("mode = \"strict\"")
        ),
        format!(
            "{file}:{}:1: mta-sts.hosting.domain[0].tls-report-rua: report address \"ftp://example.com/\" is neither mailto: nor https:",
            line_of("tls-report-rua")
        ),
    ] {
        assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");
    }

    let (ok, _, err) = publish(&mut fx, "", false);
    assert!(!ok);
    assert!(
        err.contains("hosts no MTA-STS policy; add [mta-sts.hosting]"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sts_the_running_gateway_serves_the_published_policy() {
    let mut fx = GatewayFixture::new().unwrap();
    let pki = TestPki::new().unwrap();
    fx.import_certificate("mta-sts", &pki.leaf(&["mta-sts.example.com"]).unwrap())
        .unwrap();
    let extra = hosting("testing", r#""mx1.example.com""#, "");
    let (ok, out, err) = publish(&mut fx, &extra, true);
    assert!(ok, "{err}");
    let published: serde_json::Value = serde_json::from_str(&out).unwrap();
    // With the certificate in the store the whole file is valid, and the
    // summary mentions the policy host.
    let path = fx.dir().join("portcullis.toml").display().to_string();
    let out = fx.run_cli(&["config", "validate", &path]).unwrap();
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{summary}");
    assert!(
        summary.contains(
            "MTA-STS policies served on https://127.0.0.1:0 for example.com (testing), example.net (none)"
        ),
        "{summary}"
    );

    let mut gateway = fx.start().unwrap();
    let line = gateway
        .wait_for_line(&["MTA-STS policy host on https://"], DEADLINE)
        .await
        .unwrap();
    assert!(line.contains("for example.com, example.net"), "{line}");
    let addr: SocketAddr = line
        .split("https://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap()
        .parse()
        .unwrap();

    let tls = rustls::ClientConfig::builder_with_provider(portcullis_testkit::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(pki.root_store().unwrap())
        .with_no_client_auth();
    let fetcher =
        PolicyFetcher::new(Arc::new(tls), DEADLINE).with_address("mta-sts.example.com", addr);
    let served = fetcher.fetch("example.com").await.unwrap();
    assert_eq!(served, published[0]["policy"].as_str().unwrap());
    assert_eq!(
        StsPolicy::parse(served.as_bytes()).unwrap().mode(),
        StsMode::Testing
    );

    // A reload with another policy: the same listener serves it, and it
    // is the one `publish` now describes.
    let (ok, out, err) = publish(
        &mut fx,
        &hosting("enforce", r#""mx1.example.com""#, ""),
        true,
    );
    assert!(ok, "{err}");
    let republished: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_ne!(republished[0]["records"][0], published[0]["records"][0]);
    std::fs::write(gateway.config_path(), fx.config()).unwrap();
    let pid = gateway.pid().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    gateway
        .wait_for_line(
            &["reload: the MTA-STS policy host now serves example.com (enforce), example.net (none)"],
            DEADLINE,
        )
        .await
        .unwrap();
    let served = fetcher.fetch("example.com").await.unwrap();
    assert_eq!(served, republished[0]["policy"].as_str().unwrap());
    assert_eq!(
        StsPolicy::parse(served.as_bytes()).unwrap().mode(),
        StsMode::Enforce
    );

    // Moving the listener needs a restart, and the log says so.
    fx.extra = hosting("enforce", r#""mx1.example.com""#, "").replace(
        "127.0.0.1:0",
        &format!(
            "127.0.0.1:{}",
            portcullis_testkit::runner::free_tcp_port().unwrap()
        ),
    );
    std::fs::write(gateway.config_path(), fx.config()).unwrap();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    gateway
        .wait_for_line(
            &[
                "reload: mta-sts.hosting.address changed",
                "until the next start",
            ],
            DEADLINE,
        )
        .await
        .unwrap();
    assert_eq!(fetcher.fetch("example.com").await.unwrap(), served);
    gateway.terminate(Duration::from_secs(10));
}
