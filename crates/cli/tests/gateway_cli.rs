//! The gateway commands run as the built binary: `config validate` on the
//! annotated example and on broken files (exact FILE:LINE:COL: key lines),
//! `run` with the built-in default (a real STARTTLS session from swaks,
//! SIGTERM → exit 0 within the grace delay), `queue list` beside the running
//! gateway, and the one-line errors for a bad file and a taken port.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

fn portcullis(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn validate(dir: &Path, name: &str, text: &str) -> (bool, Vec<String>) {
    let file = dir.join(name);
    std::fs::write(&file, text).unwrap();
    let (ok, _out, err) = portcullis(&["config", "validate", file.to_str().unwrap()]);
    let prefix = format!("{}:", file.display());
    // Report lines without the directory, so expectations read `bad.toml:3:1: ...`.
    let lines = err
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix).map(|rest| format!("{name}:{rest}")))
        .collect();
    (ok, lines)
}

#[test]
fn the_annotated_example_validates() {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/portcullis.toml"
    );
    let (ok, out, err) = portcullis(&["config", "validate", example]);
    assert!(ok, "{err}");
    assert!(out.contains(": valid"), "{out}");
    assert!(
        out.contains("listener \"inbound\" on 127.0.0.1:2525"),
        "{out}"
    );
}

#[test]
fn broken_configs_are_reported_with_line_column_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = format!("data-dir = {:?}\n", d.join("data").display().to_string());
    let listener = "[[listener]]\nname = \"in\"\naddress = \"127.0.0.1:2525\"\nrat.accept = [\"example.com\"]\n";
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "syntax.toml",
            format!("{data}hostname = \"mx.example.com\n{listener}"),
            vec!["syntax.toml:2:27: TOML syntax error"],
        ),
        (
            "type.toml",
            format!("{data}{listener}max-concurrency = \"many\"\n"),
            vec!["type.toml:6:19: listener[0].max-concurrency: invalid type: string \"many\""],
        ),
        (
            "unknown.toml",
            format!("{data}{listener}[queue]\nlifetime = 3600\n"),
            vec!["unknown.toml:7:1: queue.lifetime: unknown field `lifetime`"],
        ),
        (
            "cidr.toml",
            format!(
                "{data}{listener}[[listener.hat.sender-group]]\nname = \"NET\"\nmatch = [\"10.0.0.1/8\"]\npolicy = \"A\"\n[listener.hat.policy.A]\naction = \"accept\"\n"
            ),
            vec![
                "cidr.toml:8:10: listener[0].hat.sender-group[0].match[0]: pattern \"10.0.0.1/8\"",
            ],
        ),
        (
            "relay.toml",
            format!(
                "{data}[[listener]]\nname = \"in\"\naddress = \"0.0.0.0:25\"\nrat.accept = [\"ALL\"]\n"
            ),
            vec![
                "relay.toml:5:5: listener[0].rat.accept: ALL on a public listener makes an open relay",
            ],
        ),
        (
            "contradiction.toml",
            format!(
                "{data}{listener}[[outbound.destination]]\ndomain = \"bank.example\"\ntls = \"required-verify\"\n[outbound.starttls]\nexclude = [\"bank.example\"]\n"
            ),
            vec![
                "contradiction.toml:10:12: outbound.starttls.exclude[0]: contradicts destination[0] \"bank.example\" tls = \"required-verify\"",
            ],
        ),
        (
            "certificate.toml",
            format!("{data}{listener}certificate = \"mx1\"\n"),
            vec!["certificate.toml:6:1: listener[0].certificate: no certificate named \"mx1\""],
        ),
        (
            "several.toml",
            format!(
                "{data}hostname = \"bad..name\"\n{listener}backlog = 0\n[[route]]\ndomain = \"example.com\"\nhosts = []\n"
            ),
            vec![
                "several.toml:2:1: hostname:",
                "several.toml:7:1: listener[0].backlog: must be at least 1",
                "several.toml:10:1: route[0].hosts: lists no host",
            ],
        ),
    ];
    for (name, text, expected) in cases {
        let (ok, lines) = validate(d, name, &text);
        assert!(!ok, "{name} passed validation");
        assert_eq!(lines.len(), expected.len(), "{name}: {lines:#?}");
        for (line, want) in lines.iter().zip(&expected) {
            assert!(
                line.starts_with(want),
                "{name}: got {line:?}, want a line starting {want:?}"
            );
        }
    }
}

/// A running `portcullis run` whose standard error is read line by line.
struct Gateway {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Gateway {
    fn start(args: &[&str], cwd: &Path) -> Gateway {
        let mut child = Command::new(BIN)
            .args(args)
            .current_dir(cwd)
            .env_remove("PORTCULLIS_CONFIG")
            .env_remove("PORTCULLIS_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Gateway {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Waits (at most a minute, so a broken build fails instead of hanging)
    /// for a log line containing `needle`.
    fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => break,
            }
        }
        panic!(
            "no log line containing {needle:?}; log so far:\n{}",
            self.seen.join("\n")
        );
    }

    /// The bound port, from `listener "…" listening on 127.0.0.1:PORT`.
    fn port(&mut self) -> u16 {
        let line = self.wait_for("listening on 127.0.0.1:");
        let tail = line.split("listening on 127.0.0.1:").nth(1).unwrap();
        tail.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap()
    }

    /// SIGTERM, then the exit status (waiting at most the 30 s grace plus
    /// slack; a gateway that does not stop is killed and the test fails).
    fn terminate(self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        self.terminate_after_signal()
    }

    /// The exit status once the gateway stops by itself (after a signal).
    fn terminate_after_signal(mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("portcullis did not exit within the grace delay after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A loopback UDP port nothing listens on: a resolver there refuses at
/// once (ICMP port unreachable), so no test waits for DNS or reaches the
/// host's resolver.
fn closed_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// swaks with STARTTLS required; returns its transcript.
fn swaks(port: u16, to: &str) -> String {
    let out = Command::new("swaks")
        .args(["--to", to, "--from", "sender@example.net", "--server"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["--tls", "--timeout", "30"])
        .output()
        .expect("swaks must be installed (scripts/install-test-deps.sh)");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "swaks failed:\n{text}");
    text
}

/// The message id from swaks's transcript (`250 2.0.0 Ok: queued as ID`).
fn queued_id(transcript: &str) -> String {
    let line = transcript
        .lines()
        .find(|l| l.contains("<~  250") && l.contains("queued as"))
        .unwrap_or_else(|| panic!("no 250 queued reply:\n{transcript}"));
    line.rsplit(' ').next().unwrap().trim().to_owned()
}

#[test]
fn builtin_default_runs_receives_over_tls_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    // DNS goes to a loopback port where nothing answers, never to the
    // host's resolver (issue 10 item 20).
    let dns = closed_udp_port();
    let mut gw = Gateway::start(
        &[
            "run",
            "--listen",
            "127.0.0.1:0",
            "--resolver",
            &format!("127.0.0.1:{dns}"),
        ],
        dir.path(),
    );
    // The SPEC §1 warning for the demonstration certificate.
    gw.wait_for("demonstration certificate");
    let port = gw.port();
    let transcript = swaks(port, "user@example.com");
    assert!(transcript.contains("TLS started"), "{transcript}");
    let id = queued_id(&transcript);
    gw.wait_for(&format!("MID {id} queued"));
    // The data directory is ./portcullis-data under the working directory.
    assert!(dir.path().join("portcullis-data/certs").is_dir());
    assert!(dir.path().join("portcullis-data/spool").is_dir());
    let status = gw.terminate();
    assert!(status.success(), "exit status {status}");
}

#[test]
fn default_with_overrides_queues_and_queue_list_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Start from the printed built-in default; route example.com to a closed
    // loopback port so the message stays queued (deferred) whatever DNS says.
    let (ok, default, err) = portcullis(&["config", "print-default"]);
    assert!(ok, "{err}");
    assert!(
        default.contains("address = \"127.0.0.1:2525\""),
        "{default}"
    );
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let data = d.join("data");
    let text = default
        .replace("address = \"127.0.0.1:2525\"", "address = \"127.0.0.1:0\"")
        .replace(
            "data-dir = \"./portcullis-data\"",
            &format!("data-dir = {:?}", data.display().to_string()),
        )
        + &format!("\n[[route]]\ndomain = \"example.com\"\nhosts = [\"127.0.0.1:{closed}\"]\n");
    let config = d.join("portcullis.toml");
    std::fs::write(&config, text).unwrap();
    let (ok, out, err) = portcullis(&["config", "validate", config.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains("1 SMTP route(s)"), "{out}");

    let dns = format!("127.0.0.1:{}", closed_udp_port());
    let mut gw = Gateway::start(
        &[
            "run",
            "--config",
            config.to_str().unwrap(),
            "--resolver",
            &dns,
        ],
        d,
    );
    let port = gw.port();
    let id = queued_id(&swaks(port, "user@example.com"));
    gw.wait_for(&format!("MID {id} deferred"));

    // Beside the running gateway.
    let data_s = data.to_str().unwrap();
    let (ok, out, err) = portcullis(&["queue", "list", "--data-dir", data_s, "--json"]);
    assert!(ok, "{err}");
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id.as_str())
        .unwrap_or_else(|| panic!("{id} not in {out}"));
    assert_eq!(row["sender"], "sender@example.net");
    assert_eq!(row["recipients"][0], "user@example.com");
    let (ok, out, _) = portcullis(&["queue", "list", "--config", config.to_str().unwrap()]);
    assert!(ok);
    assert!(
        out.contains(&id) && out.contains("<user@example.com>"),
        "{out}"
    );

    let status = gw.terminate();
    assert!(status.success(), "exit status {status}");
    // Still queued after the stop: nothing accepted is lost.
    let (_, out, _) = portcullis(&["queue", "list", "--data-dir", data_s]);
    assert!(out.contains(&id), "{out}");
}

#[test]
fn invalid_config_and_taken_port_fail_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bad = d.join("bad.toml");
    std::fs::write(&bad, "[[listener]]\nname = \"in\"\naddress = \"nowhere\"\n").unwrap();
    let (ok, _, err) = portcullis(&["run", "--config", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("bad.toml:3:1: listener[0].address:"), "{err}");
    assert!(
        err.lines()
            .last()
            .unwrap()
            .starts_with("portcullis: error: "),
        "{err}"
    );

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dns = format!("127.0.0.1:{}", closed_udp_port());
    let out = Command::new(BIN)
        .args(["run", "--listen", &addr, "--resolver", &dns])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().last().unwrap();
    assert!(
        last.starts_with("portcullis: error: listener \"loopback\" cannot listen on")
            && last.contains(&addr),
        "{err}"
    );
}

/// Reads one SMTP reply (all its lines) and returns the last line.
fn reply(r: &mut BufReader<std::net::TcpStream>) -> String {
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert!(!line.is_empty(), "connection closed");
        if line.as_bytes().get(3) != Some(&b'-') {
            return line;
        }
    }
}

#[test]
fn sigterm_lets_an_open_session_finish_and_a_second_signal_stops_at_once() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    let dns = format!("127.0.0.1:{}", closed_udp_port());
    let args = [
        "run",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
        "--resolver",
        &dns,
    ];

    // First signal: the session that is open delivers its message, then exit 0.
    let mut gw = Gateway::start(&args, d);
    let port = gw.port();
    let stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    assert!(reply(&mut r).starts_with("220"));
    let pid = gw.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    gw.wait_for("1 open session");
    let mut last = String::new();
    for (cmd, code) in [
        ("EHLO client.example\r\n", "250"),
        ("MAIL FROM:<a@example.net>\r\n", "250"),
        ("RCPT TO:<b@example.com>\r\n", "250"),
        ("DATA\r\n", "354"),
        ("Subject: during shutdown\r\n\r\nhello\r\n.\r\n", "250"),
    ] {
        w.write_all(cmd.as_bytes()).unwrap();
        let line = reply(&mut r);
        assert!(line.starts_with(code), "{cmd:?} -> {line:?}");
        last = line;
    }
    // Accepted during the grace delay: on disk, in the log.
    let id = last.trim().rsplit(' ').next().unwrap().to_owned();
    gw.wait_for(&format!("MID {id} queued"));
    w.write_all(b"QUIT\r\n").unwrap();
    drop((w, r));
    let status = gw.terminate_after_signal();
    assert!(status.success(), "exit status {status}");

    // Second signal during the grace delay: stop at once, exit 1, say why.
    let mut gw = Gateway::start(&args, d);
    let port = gw.port();
    let held = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let pid = gw.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    gw.wait_for("1 open session");
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    gw.wait_for("SIGINT received during the grace delay");
    let status = gw.terminate_after_signal();
    assert_eq!(status.code(), Some(1));
    drop(held);
}
