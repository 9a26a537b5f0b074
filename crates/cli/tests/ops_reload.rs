//! Operating the real binary without restarting it: reload by SIGHUP and by
//! `portcullis ctl reload` while messages flow (a listener added, a
//! destination's TLS level changed; nothing lost, nothing refused, the same
//! process), an invalid file refused with FILE:LINE:COL while the gateway
//! keeps running; a listener suspended with a delay while a session is
//! open (it finishes its message; one still idle at the end of the delay
//! hears 421) and delivery suspended for one domain while another flows,
//! both still in force after a restart; configuration export with masked
//! secrets refused on import, encrypted secrets restored with the
//! passphrase and refused with the wrong one, one-section import; systemd's
//! readiness messages.

mod ops_support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use ops_support::{Rig, eventually, sighup};
use portcullis_testkit::client::{SendOptions, send};
use portcullis_testkit::gateway::{destination, relay_hat, route};
use portcullis_testkit::loadgen::{self, LoadOptions};
use portcullis_testkit::runner::free_tcp_port;
use portcullis_testkit::sink::{Sink, SinkOptions, SinkTls};

/// A private listener `name` on `addr` relaying for loopback (TOML).
fn listener(name: &str, addr: SocketAddr) -> String {
    format!(
        "[[listener]]\nname = \"{name}\"\naddress = \"{addr}\"\nkind = \"private\"\nrat.accept = [\"local.test\"]\n{}",
        relay_hat("off")
    )
}

async fn send_one(to: SocketAddr, rcpt: &str, subject: &str) {
    let d = send(
        to,
        "sender@local.test",
        &[rcpt],
        subject,
        &SendOptions::default(),
    )
    .await
    .unwrap();
    let text = format!("{d:?}");
    assert!(text.contains("queued as"), "{rcpt} via {to}: {text}");
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// How many "configuration reloaded" lines the log has.
fn reloads(gw: &portcullis_testkit::runner::Gateway) -> usize {
    gw.lines_with(&["configuration reloaded: listeners added"])
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_by_sighup_and_ctl_loses_nothing_and_applies_the_new_tls_level() {
    // Half the messages wait in the queue during the reloads (delivery to
    // bulk.test is suspended until the first reload is done), the other
    // half arrive over SMTP while the configuration changes.
    const HALF: usize = 500;
    const MESSAGES: usize = 2 * HALF;
    let bulk = Sink::start(SinkOptions::new(SinkTls::NotOffered))
        .await
        .unwrap();
    let mut rig = Rig::new();
    let tls_leaf = Arc::new(rig.pki.leaf(&["mx.tls.test"]).unwrap());
    let secure = Sink::start(SinkOptions::new(SinkTls::Offered(tls_leaf)))
        .await
        .unwrap();
    let routes = route("bulk.test", &[bulk.addr().to_string()])
        + &route("tls.test", &[secure.addr().to_string()]);
    rig.fx.extra = routes.clone() + &destination("tls.test", "none", "none", false);
    let gw = rig.start();
    let pid = gw.pid().unwrap();
    rig.ctl_ok(&["suspend", "delivery", "bulk.test"]);

    let load = |first_seq: usize| {
        let mut load = LoadOptions::new(rig.fx.listen);
        load.messages = HALF;
        load.first_seq = first_seq;
        load.connections = 4;
        load.per_connection = 10;
        load.size = 1500;
        load.to = "user@bulk.test".into();
        load.timeout = Duration::from_secs(300);
        load
    };
    let queued = loadgen::run(load(0)).await.unwrap();
    assert_eq!(queued.accepted(), HALF);
    let status: serde_json::Value =
        serde_json::from_str(&rig.ctl_ok(&["--json", "status"])).unwrap();
    assert_eq!(status["queue"]["messages"], HALF, "{status}");
    let started = std::time::Instant::now();
    let running = tokio::spawn(loadgen::run(load(HALF)));

    // Change 1 by SIGHUP: a listener added.
    let added = SocketAddr::from(([127, 0, 0, 1], free_tcp_port().unwrap()));
    rig.fx.extra = routes.clone()
        + &destination("tls.test", "none", "none", false)
        + &listener("added", added);
    std::fs::write(rig.config_path(), rig.config()).unwrap();
    sighup(pid);
    gw.wait_for_line(
        &["configuration reloaded", "listeners added [added]"],
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    rig.ctl_ok(&["resume", "delivery", "bulk.test"]);
    // Before change 2, tls.test gets no STARTTLS (level none).
    send_one(added, "user@tls.test", "before").await;
    let first = secure
        .wait_for_messages(1, Duration::from_secs(120))
        .await
        .unwrap();
    assert!(first[0].tls.is_none(), "tls = none, yet {:?}", first[0].tls);

    // Change 2 by `ctl reload`: tls.test now requires TLS.
    rig.fx.extra = routes.clone()
        + &destination("tls.test", "required", "none", false)
        + &listener("added", added);
    std::fs::write(rig.config_path(), rig.config()).unwrap();
    let out = rig.ctl_ok(&["reload"]);
    assert!(out.contains("added"), "{out}");
    assert_eq!(reloads(&gw), 2, "{}", gw.tail(30));
    send_one(added, "user@tls.test", "after").await;
    let both = secure
        .wait_for_messages(2, Duration::from_secs(120))
        .await
        .unwrap();
    let after = both
        .iter()
        .find(|m| m.header("Subject").as_deref() == Some("after"))
        .unwrap();
    assert!(after.tls.is_some(), "tls = required, yet no TLS");

    // Nothing refused because of the reloads, nothing lost, same process.
    let report = running.await.unwrap().unwrap();
    let refused: Vec<_> = report.sent.iter().filter(|s| !s.accepted).collect();
    let reloaded_in = started.elapsed();
    assert!(refused.is_empty(), "refused during reloads: {refused:?}");
    let got = bulk
        .wait_for_messages(MESSAGES, Duration::from_secs(300))
        .await
        .unwrap();
    let seqs: BTreeSet<usize> = got
        .iter()
        .filter_map(|m| m.header("X-Seq")?.trim().parse().ok())
        .collect();
    assert_eq!(seqs.len(), MESSAGES, "distinct messages at the sink");
    assert_eq!(gw.pid(), Some(pid));
    let status = rig.ctl_ok(&["--json", "status"]);
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(v["pid"], pid);
    let names: Vec<&str> = v["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["inbound", "added"]);
    eprintln!(
        "reload under load: {HALF} messages queued + {HALF} sent over SMTP ({:.1} s, {:.0}/s) \
         across 2 reloads (SIGHUP, ctl reload; {:.1} s from the second load's start until it and both reloads were done); \
         {MESSAGES} delivered, 0 refused, 0 lost, same PID",
        report.elapsed.as_secs_f64(),
        report.rate(),
        reloaded_in.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_reload_keeps_the_running_configuration_and_says_where() {
    let sink = Sink::start(SinkOptions::new(SinkTls::NotOffered))
        .await
        .unwrap();
    let mut rig = Rig::new();
    rig.fx.extra = route("sink.test", &[sink.addr().to_string()]);
    let gw = rig.start();
    let pid = gw.pid().unwrap();
    let good = rig.config();
    // Line 5 of the generated file is the listener's address.
    let bad = good.replacen(
        &format!("address = \"{}\"", rig.fx.listen),
        "address = \"127.0.0.1:notaport\"",
        1,
    );
    let line = bad.lines().position(|l| l.contains("notaport")).unwrap() + 1;
    std::fs::write(rig.config_path(), &bad).unwrap();
    let file = rig.config_path().display().to_string();
    let at = format!("{file}:{line}:");

    sighup(pid);
    let refused = gw
        .wait_for_line(&["reload refused", &at], Duration::from_secs(60))
        .await
        .unwrap();
    assert!(refused.contains("listener[0].address"), "{refused}");

    let out = rig.ctl(&["reload"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&at) && err.contains("listener[0].address"),
        "{err}"
    );
    assert!(
        err.contains("running configuration stays in force"),
        "{err}"
    );

    // Still running, same process, still relaying under the old file.
    assert_eq!(gw.pid(), Some(pid));
    send_one(rig.fx.listen, "user@sink.test", "still here").await;
    sink.wait_for_messages(1, Duration::from_secs(120))
        .await
        .unwrap();
    assert_eq!(reloads(&gw), 0);

    // A listener that cannot bind fails the whole reload (all or nothing).
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut extra = rig.fx.extra.clone();
    extra += &listener("blocked", taken.local_addr().unwrap());
    rig.fx.extra = extra + &route("new.test", &["127.0.0.1:9".to_owned()]);
    std::fs::write(rig.config_path(), rig.config()).unwrap();
    let out = rig.ctl(&["reload"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("blocked"), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&rig.ctl_ok(&["--json", "status"])).unwrap();
    assert_eq!(v["listeners"].as_array().unwrap().len(), 1, "{v}");
}

/// Reads one SMTP reply (all its lines); the last line.
fn reply(r: &mut BufReader<TcpStream>) -> String {
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert!(!line.is_empty(), "connection closed");
        if line.as_bytes().get(3) != Some(&b'-') {
            return line;
        }
    }
}

fn say(r: &mut BufReader<TcpStream>, line: &str) -> String {
    r.get_mut()
        .write_all(format!("{line}\r\n").as_bytes())
        .unwrap();
    reply(r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspended_listener_and_delivery_survive_a_restart() {
    let held = Sink::start(SinkOptions::new(SinkTls::NotOffered))
        .await
        .unwrap();
    let flowing = Sink::start(SinkOptions::new(SinkTls::NotOffered))
        .await
        .unwrap();
    let mut rig = Rig::new();
    rig.fx.extra = route("held.test", &[held.addr().to_string()])
        + &route("flowing.test", &[flowing.addr().to_string()]);
    let mut gw = rig.start();

    // Delivery suspended for one domain; the other flows.
    let out = rig.ctl_ok(&["suspend", "delivery", "held.test"]);
    assert!(out.contains("held.test"), "{out}");
    send_one(rig.fx.listen, "user@held.test", "held").await;
    send_one(rig.fx.listen, "user@flowing.test", "flowing").await;
    flowing
        .wait_for_messages(1, Duration::from_secs(120))
        .await
        .unwrap();
    let queue = rig.ctl_ok(&["--json", "queue", "list"]);
    assert!(queue.contains("user@held.test"), "{queue}");
    assert!(held.messages().is_empty());

    // A session open when its listener is suspended with a delay finishes
    // its message; new connections are not accepted.
    let mut s = BufReader::new(TcpStream::connect(rig.fx.listen).unwrap());
    s.get_ref()
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    assert!(reply(&mut s).starts_with("220"));
    assert!(say(&mut s, "EHLO client.test").starts_with("250"));
    let out = rig.ctl_ok(&["suspend", "listener", "inbound", "--delay", "120"]);
    assert!(out.contains("inbound"), "{out}");
    assert!(
        TcpStream::connect(rig.fx.listen).is_err(),
        "suspended listener accepts"
    );
    let status: serde_json::Value =
        serde_json::from_str(&rig.ctl_ok(&["--json", "status"])).unwrap();
    assert_eq!(status["listeners"][0]["state"], "suspended", "{status}");
    assert_eq!(status["listeners"][0]["open_sessions"], 1, "{status}");
    assert!(say(&mut s, "MAIL FROM:<sender@local.test>").starts_with("250"));
    assert!(say(&mut s, "RCPT TO:<late@flowing.test>").starts_with("250"));
    assert!(say(&mut s, "DATA").starts_with("354"));
    let done = say(
        &mut s,
        "Subject: during the delay\r\n\r\nstill accepted\r\n.",
    );
    assert!(done.starts_with("250"), "{done}");
    say(&mut s, "QUIT");
    flowing
        .wait_for_messages(2, Duration::from_secs(120))
        .await
        .unwrap();

    // Both survive a restart (the admin listener is what tells us it is up).
    assert!(
        gw.terminate(Duration::from_secs(60))
            .is_some_and(|s| s.success())
    );
    let saved = std::fs::read_to_string(rig.fx.data_dir().join("suspended.json")).unwrap();
    assert!(
        saved.contains("inbound") && saved.contains("held.test"),
        "{saved}"
    );
    gw.restart(&[rig.admin]).unwrap();
    let status = eventually(60, "the restarted gateway to answer", || {
        let o = rig.ctl(&["--json", "status"]);
        o.status
            .success()
            .then(|| serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap())
    });
    assert_eq!(status["listeners"][0]["state"], "suspended", "{status}");
    let text = rig.ctl_ok(&["status"]);
    assert!(text.contains("held.test"), "{text}");
    assert!(
        TcpStream::connect(rig.fx.listen).is_err(),
        "suspended after restart, yet accepts"
    );
    assert!(
        held.messages().is_empty(),
        "held.test delivered while suspended"
    );

    // Resumed: the held message goes, the listener accepts.
    rig.ctl_ok(&["resume", "delivery", "held.test"]);
    held.wait_for_messages(1, Duration::from_secs(120))
        .await
        .unwrap();
    rig.ctl_ok(&["resume", "listener", "inbound"]);
    send_one(rig.fx.listen, "user@flowing.test", "resumed").await;
    flowing
        .wait_for_messages(3, Duration::from_secs(120))
        .await
        .unwrap();
}

/// The exported text without its comment lines (they carry the time).
fn body(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_export_masked_is_refused_and_encrypted_round_trips() {
    let rig = Rig::new();
    let _gw = rig.start();
    let d = rig.fx.dir();
    let path = |n: &str| d.join(n).display().to_string();
    std::fs::write(d.join("pass"), "correct horse battery staple\n").unwrap();
    std::fs::write(d.join("wrong"), "incorrect horse battery\n").unwrap();
    let before = rig.ctl_ok(&["config", "export", "--plain"]);
    assert!(before.contains(ops_support::READ_TOKEN));

    // Masked: no secret in it, and refused on import naming each one.
    rig.ctl_ok(&["config", "export", "--mask", "-o", &path("masked.toml")]);
    let masked = std::fs::read_to_string(d.join("masked.toml")).unwrap();
    assert!(!masked.contains(ops_support::READ_TOKEN), "{masked}");
    let out = rig.ctl(&["config", "import", &path("masked.toml")]);
    assert!(!out.status.success());
    let err = stderr(&out);
    let line = masked
        .lines()
        .position(|l| l.contains("masked by portcullis config export"))
        .unwrap()
        + 1;
    assert!(
        err.contains(&format!("masked.toml:{line}:")) && err.contains("admin.token[0].token"),
        "{err}"
    );
    assert!(err.contains("masked by `config export --mask`"), "{err}");

    // Encrypted: no secret in clear; the wrong passphrase is refused.
    rig.ctl_ok(&[
        "config",
        "export",
        "--encrypt",
        "--passphrase-file",
        &path("pass"),
        "-o",
        &path("encrypted.toml"),
    ]);
    let encrypted = std::fs::read_to_string(d.join("encrypted.toml")).unwrap();
    assert!(!encrypted.contains(ops_support::READ_TOKEN));
    assert!(encrypted.contains("encrypted:v1:"), "{encrypted}");
    let out = rig.ctl(&[
        "config",
        "import",
        &path("encrypted.toml"),
        "--passphrase-file",
        &path("wrong"),
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("admin.token[0].token does not decrypt: wrong passphrase"),
        "{err}"
    );

    // Change the running configuration, then restore it from the export.
    rig.ctl_ok(&["config", "reset", "queue"]);
    let changed = rig.ctl_ok(&["config", "export", "--plain"]);
    assert_ne!(body(&changed), body(&before));
    rig.ctl_ok(&[
        "config",
        "import",
        &path("encrypted.toml"),
        "--passphrase-file",
        &path("pass"),
    ]);
    let after = rig.ctl_ok(&["config", "export", "--plain"]);
    assert_eq!(body(&after), body(&before));
    // And it is what the file says now, for the next start.
    let file = std::fs::read_to_string(rig.config_path()).unwrap();
    assert!(file.contains(ops_support::READ_TOKEN));
    assert!(d.join("portcullis.toml.previous").exists());

    // One section: loaded whole, the rest untouched; an empty one clears it.
    std::fs::write(
        d.join("outbound.toml"),
        "[[outbound.destination]]\ndomain = \"bank.test\"\ntls = \"required\"\n",
    )
    .unwrap();
    rig.ctl_ok(&[
        "config",
        "import",
        &path("outbound.toml"),
        "--section",
        "outbound",
    ]);
    let with = rig.ctl_ok(&["config", "export", "--plain"]);
    assert!(with.contains("bank.test"), "{with}");
    assert!(with.contains(ops_support::READ_TOKEN), "{with}");
    std::fs::write(d.join("queue.toml"), "[outbound]\n[queue]\n").unwrap();
    let out = rig.ctl(&[
        "config",
        "import",
        &path("queue.toml"),
        "--section",
        "outbound",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("holds [queue] besides [outbound]"),
        "{}",
        stderr(&out)
    );
    std::fs::write(d.join("empty.toml"), "[outbound]\n").unwrap();
    rig.ctl_ok(&[
        "config",
        "import",
        &path("empty.toml"),
        "--section",
        "outbound",
    ]);
    let without = rig.ctl_ok(&["config", "export", "--plain"]);
    assert!(!without.contains("bank.test"), "{without}");
}

/// Kills the process if the test fails before it stops.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Reads the next sd_notify datagram (at most a minute).
fn next_state(socket: &std::os::unix::net::UnixDatagram) -> String {
    let mut buf = [0u8; 512];
    let n = socket
        .recv(&mut buf)
        .expect("no sd_notify message within a minute");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_hears_ready_reloading_and_stopping() {
    let rig = Rig::new();
    std::fs::write(rig.config_path(), rig.config()).unwrap();
    let path = rig.fx.dir().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("run")
        .arg("--config")
        .arg(rig.config_path())
        .env("NOTIFY_SOCKET", &path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    // READY=1 comes only once the listeners are bound.
    assert_eq!(next_state(&socket), "READY=1");
    assert!(TcpStream::connect(rig.fx.listen).is_ok());
    assert!(TcpStream::connect(rig.admin).is_ok());
    sighup(child.0.id());
    assert_eq!(next_state(&socket), "RELOADING=1");
    assert_eq!(next_state(&socket), "READY=1");
    let pid = child.0.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(next_state(&socket), "STOPPING=1");
    let status = eventually(60, "portcullis to exit after SIGTERM", || {
        child.0.try_wait().unwrap()
    });
    assert!(status.success(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_still_open_when_the_suspension_delay_ends_hear_421() {
    let rig = Rig::new();
    let _gw = rig.start();
    let mut s = BufReader::new(TcpStream::connect(rig.fx.listen).unwrap());
    s.get_ref()
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    assert!(reply(&mut s).starts_with("220"));
    assert!(say(&mut s, "EHLO client.test").starts_with("250"));
    rig.ctl_ok(&["suspend", "listener", "inbound", "--delay", "1"]);
    // The session stays idle; when the delay is over the gateway says so.
    let cut = reply(&mut s);
    assert!(cut.starts_with("421"), "{cut}");
    let v: serde_json::Value = serde_json::from_str(&rig.ctl_ok(&["--json", "status"])).unwrap();
    assert_eq!(v["listeners"][0]["state"], "suspended", "{v}");
}
