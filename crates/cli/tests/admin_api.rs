//! The HTTPS admin listener of the real binary, from clients we did not
//! write: curl against every endpoint (success, 401 bad token, 403
//! read-only token on an admin action, 400 malformed JSON, 404 unknown
//! route or name) and the failed-authentication limit; `promtool check
//! metrics` on a live `/metrics` after traffic, with the counters equal to
//! what the test sent; the status page rendered by headless Chromium
//! (`--dump-dom`, and a screenshot under target/tmp for people to look at).

mod ops_support;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use ops_support::{Http, READ_TOKEN, Rig, eventually};
use portcullis_testkit::client::{SendOptions, send};
use portcullis_testkit::gateway::route;
use portcullis_testkit::loadgen::{self, LoadOptions};
use portcullis_testkit::runner::free_tcp_port;
use portcullis_testkit::sink::{Sink, SinkOptions, SinkTls};

/// A port nothing listens on: mail routed there stays queued (deferred).
fn closed_port() -> u16 {
    free_tcp_port().unwrap()
}

/// Queues one message for `to` through the gateway; its queue id.
async fn queue_one(rig: &Rig, to: &str) -> String {
    queue_one_via(rig.fx.listen, to).await
}

/// Queues one message for `to` through the listener on `listen`.
async fn queue_one_via(listen: SocketAddr, to: &str) -> String {
    let d = send(
        listen,
        "sender@local.test",
        &[to],
        "queued",
        &SendOptions::default(),
    )
    .await
    .unwrap();
    let reply = format!("{:?}", d);
    let id = reply
        .split("queued as ")
        .nth(1)
        .unwrap_or_else(|| panic!("no queue id in {reply}"))
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect::<String>();
    assert!(!id.is_empty(), "{reply}");
    id
}

fn assert_json_error(h: &Http, status: u16, needle: &str, what: &str) {
    assert_eq!(h.status, status, "{what}: {}", h.body);
    let v = h.json();
    let e = v["error"].as_str().unwrap_or_default();
    assert!(e.contains(needle), "{what}: error {e:?} lacks {needle:?}");
}

/// One endpoint of the API.
struct Case {
    method: &'static str,
    path: String,
    /// Needs an admin token (else a read-only one suffices).
    admin: bool,
    /// The body of the successful call; `Some` means the endpoint reads a
    /// JSON body, so a malformed one must get 400.
    body: Option<String>,
    /// What the successful answer must contain.
    expect: String,
}

fn case(method: &'static str, path: &str, admin: bool, body: Option<&str>, expect: &str) -> Case {
    Case {
        method,
        path: path.to_owned(),
        admin,
        body: body.map(str::to_owned),
        expect: expect.to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_endpoint_answers_curl_with_the_right_status() {
    let mut rig = Rig::new();
    rig.fx.extra = route("held.test", &[format!("127.0.0.1:{}", closed_port())]);
    // With its cache, so that the cache endpoints have something to serve
    // (the policy lookups go to the test zone, which has none).
    rig.fx.mta_sts = "enabled = true\n".into();
    let _gw = rig.start();
    let admin = rig.admin_token();
    let id = queue_one(&rig, "user@held.test").await;
    let current_file = std::fs::read_to_string(rig.config_path()).unwrap();
    let import = serde_json::json!({ "text": current_file, "name": "same.toml" }).to_string();
    let cases = vec![
        case("GET", "/api/status", false, None, "\"listeners\""),
        case("GET", "/metrics", false, None, "portcullis_queue_messages"),
        case("GET", "/api/queue", false, None, &id),
        case(
            "GET",
            &format!("/api/queue/{id}"),
            false,
            None,
            "user@held.test",
        ),
        case(
            "POST",
            "/api/queue",
            false,
            Some("{\"command\":\"list\"}"),
            "held.test",
        ),
        case(
            "POST",
            "/api/queue",
            true,
            Some(&format!("{{\"command\":\"hold\",\"id\":\"{id}\"}}")),
            "",
        ),
        case(
            "POST",
            "/api/queue",
            true,
            Some(&format!("{{\"command\":\"release\",\"id\":\"{id}\"}}")),
            "",
        ),
        case(
            "POST",
            "/api/listeners/inbound/suspend",
            true,
            Some("{\"delay_seconds\":0}"),
            "result",
        ),
        case(
            "POST",
            "/api/listeners/inbound/resume",
            true,
            None,
            "result",
        ),
        case(
            "POST",
            "/api/delivery/suspend",
            true,
            Some("{\"target\":\"held.test\"}"),
            "result",
        ),
        case(
            "POST",
            "/api/delivery/resume",
            true,
            Some("{\"target\":\"held.test\"}"),
            "result",
        ),
        case("POST", "/api/reload", true, None, "listeners_kept"),
        case("GET", "/api/tls/exemptions", false, None, "["),
        case(
            "POST",
            "/api/tls/exemptions/clear",
            true,
            Some("{}"),
            "result",
        ),
        case("GET", "/api/mta-sts/cache", false, None, "["),
        case(
            "POST",
            "/api/mta-sts/cache/flush",
            true,
            Some("{}"),
            "result",
        ),
        case("GET", "/api/never-downgrade", false, None, "["),
        case(
            "POST",
            "/api/never-downgrade/forget",
            true,
            Some("{}"),
            "never-downgrade memory entries forgotten",
        ),
        case("POST", "/api/dns/flush", true, None, "DNS cache flushed"),
        case(
            "GET",
            "/api/config",
            false,
            None,
            "masked by portcullis config export",
        ),
        case("GET", "/api/config?secrets=plain", true, None, READ_TOKEN),
        case(
            "POST",
            "/api/config/import",
            true,
            Some(&import),
            "listeners_kept",
        ),
        case(
            "POST",
            "/api/config/reset",
            true,
            Some("{\"section\":\"queue\"}"),
            "listeners_kept",
        ),
        case("GET", "/api/tokens", true, None, "local-admin"),
        case(
            "POST",
            "/api/tokens",
            true,
            Some("{\"name\":\"ci\",\"role\":\"read\"}"),
            "\"token\"",
        ),
        case("POST", "/api/tokens/ci/revoke", true, None, "result"),
    ];
    // Each bad token comes from its own loopback address, so that the
    // failed-authentication limit (tested below) does not interfere.
    for (i, c) in cases.iter().enumerate() {
        let what = format!("{} {}", c.method, c.path);
        let source = format!("127.0.1.{}", i + 1);
        let h = rig.curl_from(
            &source,
            c.method,
            &c.path,
            Some("not-a-token"),
            c.body.as_deref(),
        );
        assert_json_error(
            &h,
            401,
            "unknown token",
            &format!("{what} with a bad token"),
        );
        let h = rig.curl_from(&source, c.method, &c.path, None, c.body.as_deref());
        assert_json_error(&h, 401, "no token", &format!("{what} without a token"));
        if c.admin {
            let h = rig.curl(c.method, &c.path, Some(READ_TOKEN), c.body.as_deref());
            assert_json_error(
                &h,
                403,
                "read-only",
                &format!("{what} with a read-only token"),
            );
        }
        if c.body.is_some() {
            let h = rig.curl(c.method, &c.path, Some(&admin), Some("{\"target\": oops"));
            assert_json_error(
                &h,
                400,
                "malformed JSON",
                &format!("{what} with malformed JSON"),
            );
        }
        let token = if c.admin { admin.as_str() } else { READ_TOKEN };
        let h = rig.curl(c.method, &c.path, Some(token), c.body.as_deref());
        assert_eq!(h.status, 200, "{what}: {}", h.body);
        assert!(
            h.body.contains(&c.expect),
            "{what}: {} lacks {:?}",
            h.body,
            c.expect
        );
        if c.path == "/api/tokens" && c.method == "POST" {
            // The new token works until it is revoked (next case).
            let new = h.json()["token"].as_str().unwrap().to_owned();
            assert_eq!(rig.curl("GET", "/api/status", Some(&new), None).status, 200);
        }
        if c.path == "/api/tokens/ci/revoke" {
            let h = rig.curl("GET", "/api/tokens", Some(&admin), None);
            assert!(!h.body.contains("\"ci\""), "{}", h.body);
        }
    }
    // Unknown routes, methods and names.
    let h = rig.curl("GET", "/api/nothing-here", Some(&admin), None);
    assert_json_error(&h, 404, "no such route", "unknown route");
    let h = rig.curl("GET", "/api/nothing-here", None, None);
    assert_json_error(&h, 404, "no such route", "unknown route without a token");
    let h = rig.curl("POST", "/api/listeners/nosuch/suspend", Some(&admin), None);
    assert_json_error(&h, 404, "no listener", "unknown listener");
    let h = rig.curl("GET", "/api/queue/0000000000000000", Some(&admin), None);
    assert_eq!(h.status, 404, "unknown message: {}", h.body);
    let h = rig.curl(
        "POST",
        "/api/never-downgrade/forget",
        Some(&admin),
        Some("{\"domain\":\"never.test\"}"),
    );
    assert_json_error(
        &h,
        404,
        "no never-downgrade memory for never.test",
        "unknown memory",
    );
    let h = rig.curl("POST", "/api/tokens/nosuch/revoke", Some(&admin), None);
    assert_json_error(&h, 404, "no token", "unknown token name");
    let h = rig.curl("DELETE", "/api/status", Some(&admin), None);
    assert_eq!(h.status, 405, "{}", h.body);
    // A bad target is the client's fault.
    let h = rig.curl(
        "POST",
        "/api/delivery/suspend",
        Some(&admin),
        Some("{\"target\":\"not a domain!\"}"),
    );
    assert_eq!(h.status, 400, "{}", h.body);
    // The status page: HTML for a token, the sign-in page without one.
    let h = rig.curl("GET", "/", Some(READ_TOKEN), None);
    assert_eq!(h.status, 200);
    assert!(h.body.contains("data-name=\"inbound\""), "{}", h.body);
    let h = rig.curl("GET", "/", None, None);
    assert_eq!(h.status, 401);
    assert!(h.body.contains("Sign in"), "{}", h.body);
    // Every admin action is in the mail log with the token's name.
    let log = std::fs::read_to_string(rig.fx.log_file()).unwrap();
    assert!(
        log.contains("admin: reload by token \"local-admin\""),
        "{log}"
    );
    assert!(
        log.contains("authentication failed from 127.0.1.1"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_authentications_are_limited_per_address_and_logged() {
    let rig = Rig::new();
    let _gw = rig.start();
    let admin = rig.admin_token();
    let source = "127.0.2.7";
    for _ in 0..10 {
        let h = rig.curl_from(source, "GET", "/api/status", Some("guess"), None);
        assert_eq!(h.status, 401, "{}", h.body);
    }
    // Now even the right token from that address waits for the window.
    let h = rig.curl_from(source, "GET", "/api/status", Some(&admin), None);
    assert_json_error(&h, 429, "too many failed authentications", "limited");
    // Other addresses are not affected.
    let h = rig.curl_from("127.0.2.8", "GET", "/api/status", Some(&admin), None);
    assert_eq!(h.status, 200, "{}", h.body);
    let log = std::fs::read_to_string(rig.fx.log_file()).unwrap();
    assert!(
        log.contains("10 failed authentications from 127.0.2.7"),
        "{log}"
    );
}

/// The value of the sample `name{labels}` in a Prometheus text exposition.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_metrics_pass_promtool_and_count_what_was_sent() {
    let sink = Sink::start(SinkOptions::new(SinkTls::NotOffered))
        .await
        .unwrap();
    let mut rig = Rig::new();
    // The traffic goes to a listener of its own: the test harness probes
    // the first one to see that the gateway is up, which is a session too.
    let traffic = SocketAddr::from(([127, 0, 0, 1], free_tcp_port().unwrap()));
    rig.fx.extra = route("sink.test", &[sink.addr().to_string()])
        + &route("held.test", &[format!("127.0.0.1:{}", closed_port())])
        + &second_listener("traffic", traffic);
    let _gw = rig.start();
    const DELIVERED: usize = 12;
    const HELD: usize = 3;
    let mut load = LoadOptions::new(traffic);
    load.messages = DELIVERED;
    load.connections = 3;
    load.to = "user@sink.test".into();
    let report = loadgen::run(load).await.unwrap();
    assert_eq!(report.accepted(), DELIVERED, "{:?}", report.sent);
    for _ in 0..HELD {
        queue_one_via(traffic, "user@held.test").await;
    }
    sink.wait_for_messages(DELIVERED, Duration::from_secs(120))
        .await
        .unwrap();
    // The counters are updated when sessions and deliveries end: scrape
    // until they have caught up (with a deadline), then check everything.
    let series_delivered =
        "portcullis_outbound_deliveries_total{result=\"delivered\",auth=\"none\"}";
    let series_sessions = "portcullis_inbound_sessions_total{listener=\"traffic\",tls=\"none\"}";
    let text = eventually(120, "the counters to reach what was sent", || {
        let h = rig.curl("GET", "/metrics", Some(READ_TOKEN), None);
        assert_eq!(h.status, 200, "{}", h.body);
        let done = sample(&h.body, series_delivered) >= DELIVERED as f64
            && sample(&h.body, series_sessions) >= (DELIVERED + HELD) as f64
            && h.body.contains("result=\"deferred\"")
            && sample(
                &h.body,
                "portcullis_outbound_deliveries_total{result=\"deferred\",auth=\"none\"}",
            ) >= HELD as f64;
        done.then_some(h.body)
    });
    assert_eq!(sample(&text, series_delivered), DELIVERED as f64, "{text}");
    assert_eq!(
        sample(&text, series_sessions),
        (DELIVERED + HELD) as f64,
        "{text}"
    );
    assert_eq!(
        sample(&text, "portcullis_queue_messages"),
        HELD as f64,
        "{text}"
    );
    assert_eq!(
        sample(&text, "portcullis_listener_suspended{listener=\"inbound\"}"),
        0.0,
        "{text}"
    );
    assert!(
        text.contains("portcullis_delivery_duration_seconds_bucket"),
        "{text}"
    );
    assert!(text.contains("portcullis_spool_sync_seconds"), "{text}");
    assert!(
        text.contains("portcullis_certificate_expiry_timestamp_seconds{certificate=\"admin\"}"),
        "{text}"
    );
    // promtool, the Prometheus project's own checker (lint included).
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect(
            "promtool must be installed (Debian package prometheus; scripts/install-test-deps.sh)",
        );
    use std::io::Write as _;
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The Chromium binary, or `None` outside CI when it is not installed.
fn chromium() -> Option<&'static str> {
    for c in ["chromium", "chromium-browser"] {
        if Command::new(c)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            return Some(c);
        }
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "chromium must be installed in CI (scripts/install-test-deps.sh)"
    );
    None
}

/// A second private listener named `name` on `addr` (TOML).
fn second_listener(name: &str, addr: SocketAddr) -> String {
    format!(
        "[[listener]]\nname = \"{name}\"\naddress = \"{addr}\"\nkind = \"private\"\nrat.accept = [\"local.test\"]\n\
         [[listener.hat.sender-group]]\nname = \"LOCAL\"\nmatch = [\"127.0.0.0/8\"]\npolicy = \"RELAYED\"\n\
         [listener.hat.policy.RELAYED]\naction = \"relay\"\ntls = \"off\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_in_headless_chromium_shows_listeners_queue_and_suspension() {
    let Some(browser) = chromium() else {
        eprintln!("SKIPPED: chromium is not installed (scripts/install-test-deps.sh installs it)");
        return;
    };
    let mut rig = Rig::new();
    let second = SocketAddr::from(([127, 0, 0, 1], free_tcp_port().unwrap()));
    rig.fx.extra = route("held.test", &[format!("127.0.0.1:{}", closed_port())])
        + &second_listener("submission-test", second);
    let _gw = rig.start();
    for _ in 0..2 {
        queue_one(&rig, "user@held.test").await;
    }
    rig.ctl_ok(&["suspend", "listener", "submission-test", "--delay", "0"]);
    let port = rig.admin.port();
    let profile = tempfile::tempdir().unwrap();
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let screenshot = shots.join("status-page.png");
    let run = |extra: &[String]| {
        // The token signs in through the address bar; the page redirects
        // to / with the cookie. `timeout` bounds a browser that hangs.
        let out = Command::new("timeout")
            .arg("120")
            .arg(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                // The test CA is not in Chromium's store; curl verifies it
                // in the other tests.
                "--ignore-certificate-errors",
                "--window-size=1280,1400",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("--host-resolver-rules=MAP admin.test 127.0.0.1")
            .args(extra)
            .arg(format!("https://admin.test:{port}/?token={READ_TOKEN}"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{browser}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let dom = run(&["--dump-dom".to_owned()]);
    assert!(
        dom.contains("data-name=\"inbound\" data-state=\"accepting\""),
        "{dom}"
    );
    assert!(
        dom.contains("data-name=\"submission-test\" data-state=\"suspended\""),
        "{dom}"
    );
    assert!(
        dom.contains("<p class=\"big\" id=\"queue-messages\">2</p>"),
        "{dom}"
    );
    assert!(dom.contains("id=\"listeners-accepting\">1/2<"), "{dom}");
    assert!(dom.contains("(read-only: actions hidden)"), "{dom}");
    run(&[format!("--screenshot={}", screenshot.display())]);
    let png = std::fs::read(&screenshot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG"),
        "not a PNG: {}",
        screenshot.display()
    );
    eprintln!("status page screenshot: {}", screenshot.display());
}

/// The hidden `csrf` value of the status page's forms.
fn csrf_of(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .unwrap_or_else(|| panic!("no form on the page:\n{page}"));
    page[at + "name=\"csrf\" value=\"".len()..]
        .chars()
        .take_while(|c| *c != '"')
        .collect()
}

/// Posts a status-page form as a browser does: the cookie, a urlencoded body.
fn post_form(rig: &Rig, cookie_token: &str, form: &str) -> Http {
    let port = rig.admin.port();
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "60", "--cacert"])
        .arg(&rig.root_pem)
        .args(["--resolve", &format!("admin.test:{port}:127.0.0.1")])
        .args(["-H", &format!("Cookie: portcullis_token={cookie_token}")])
        .args(["--data", form, "-w", "\n%{http_code}"])
        .arg(format!("https://admin.test:{port}/ui/action"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap();
    Http {
        status: status.trim().parse().unwrap(),
        body: body.to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_runs_every_operator_command_and_the_page_buttons_act() {
    let mut rig = Rig::new();
    rig.fx.extra = route("held.test", &[format!("127.0.0.1:{}", closed_port())]);
    rig.fx.mta_sts = "enabled = true\n".into();
    let _gw = rig.start();
    let admin = rig.admin_token();

    // The first token: owner-only, in the data directory.
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(rig.fx.data_dir().join("admin/ctl-token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "ctl-token mode {mode:o}");

    let status = rig.ctl_ok(&["status"]);
    assert!(
        status.contains("inbound") && status.contains("accepting"),
        "{status}"
    );
    let out = rig.ctl_ok(&["tls", "exemptions", "list"]);
    assert!(out.contains("no host is exempt from STARTTLS"), "{out}");
    rig.ctl_ok(&["tls", "exemptions", "clear"]);
    let out = rig.ctl_ok(&["mta-sts", "cache", "list"]);
    assert!(out.contains("no MTA-STS policy is cached"), "{out}");
    rig.ctl_ok(&["mta-sts", "cache", "flush"]);
    let out = rig.ctl_ok(&["never-downgrade", "list"]);
    assert!(out.contains("no domain is remembered"), "{out}");
    let out = rig.ctl_ok(&["never-downgrade", "forget"]);
    assert!(
        out.contains("0 never-downgrade memory entries forgotten"),
        "{out}"
    );
    let out = rig.ctl_ok(&["dns", "flush"]);
    assert!(out.contains("DNS cache flushed"), "{out}");

    // Tokens: made, usable with its role only, listed, revoked.
    let out = rig.ctl_ok(&["token", "create", "grafana", "--role", "read"]);
    let token = out.lines().next().unwrap().trim().to_owned();
    assert_eq!(
        rig.curl("GET", "/api/status", Some(&token), None).status,
        200
    );
    assert_eq!(
        rig.curl("POST", "/api/reload", Some(&token), None).status,
        403
    );
    let list = rig.ctl_ok(&["token", "list"]);
    for name in ["grafana", "local-admin", "reader"] {
        assert!(list.contains(name), "{list}");
    }
    assert!(!list.contains(&token), "token list shows a token:\n{list}");
    rig.ctl_ok(&["token", "revoke", "grafana"]);
    assert_eq!(
        rig.curl("GET", "/api/status", Some(&token), None).status,
        401
    );

    // The queue commands through the API.
    let id = queue_one(&rig, "user@held.test").await;
    let out = rig.ctl_ok(&["queue", "list"]);
    assert!(out.contains(&id), "{out}");
    let out = rig.ctl_ok(&["queue", "show", &id]);
    assert!(out.contains("user@held.test"), "{out}");
    rig.ctl_ok(&["queue", "hold", &id]);
    rig.ctl_ok(&["queue", "release", &id]);
    rig.ctl_ok(&["queue", "retry", "--domain", "held.test"]);
    rig.ctl_ok(&["queue", "delete", &id]);
    let out = rig.ctl_ok(&["--json", "queue", "list"]);
    assert!(!out.contains(&id), "{out}");

    // The page's buttons: an admin token sees them and they act; a stale
    // form is refused; a read-only token sees none.
    let page = rig.curl("GET", "/", Some(&admin), None);
    let csrf = csrf_of(&page.body);
    let h = post_form(
        &rig,
        &admin,
        &format!("csrf={csrf}&action=suspend-listener&name=inbound&delay=0"),
    );
    assert_eq!(h.status, 303, "{}", h.body);
    let v = rig.curl("GET", "/api/status", Some(&admin), None).json();
    assert_eq!(v["listeners"][0]["state"], "suspended", "{v}");
    let h = post_form(
        &rig,
        &admin,
        "csrf=0000&action=resume-listener&name=inbound",
    );
    assert_eq!(h.status, 403, "{}", h.body);
    let h = post_form(
        &rig,
        &admin,
        &format!("csrf={csrf}&action=resume-listener&name=inbound"),
    );
    assert_eq!(h.status, 303, "{}", h.body);
    let v = rig.curl("GET", "/api/status", Some(&admin), None).json();
    assert_eq!(v["listeners"][0]["state"], "accepting", "{v}");
    let page = rig.curl("GET", "/", Some(READ_TOKEN), None);
    assert!(!page.body.contains("name=\"csrf\""), "{}", page.body);
}
