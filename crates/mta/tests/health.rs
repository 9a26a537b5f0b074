//! Resource conservation end to end, on the real engine over loopback
//! sockets, read by an SMTP client that speaks the protocol line by line:
//!
//! - a real small filesystem (a 16 MiB tmpfs; needs root, which CI has —
//!   elsewhere the test says loudly that it skips, and under `CI=true` it
//!   fails): filling it below the `spool-free-mib` low mark puts the gateway
//!   in conservation — the public listener answers `421 4.3.2` at connect
//!   and `452 4.3.1` at `MAIL FROM` in a session opened before, the private
//!   listener still takes mail up to its session limit — and freeing it
//!   above the high mark ends it;
//! - a queue-size limit: with delivery suspended the queue grows past
//!   `queue-messages` high; resuming delivery to a real sink empties it
//!   below low, and the public listener takes mail again;
//! - the oldest message's age, moved with a test clock instead of waiting.
//!
//! Each transition is also read from the health event channel and from
//! the mail log. Every wait has a deadline; nothing asserts timing.

mod engine_support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

use engine_support::{LogCapture, PATIENCE, Sink, SinkOptions, access, relay_access, route};
use portcullis_mta::clock::TestClock;
use portcullis_mta::engine::{Engine, EngineSettings, ListenerSettings};
use portcullis_mta::health::{Gauge, HealthEvent, HealthSettings, Thresholds, Transition};
use portcullis_mta::spool::SpoolOptions;
use portcullis_testkit::tmpfs::Tmpfs;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::broadcast;

/// A line-by-line SMTP client: it reads each reply whole and returns its
/// last line (code, enhanced code, text).
struct Client {
    lines: tokio::io::Lines<BufReader<OwnedReadHalf>>,
    write: OwnedWriteHalf,
}

impl Client {
    /// Connects and returns the client with the greeting.
    async fn connect(addr: SocketAddr) -> (Client, String) {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (read, write) = stream.into_split();
        let mut c = Client {
            lines: BufReader::new(read).lines(),
            write,
        };
        let greeting = c.reply().await;
        (c, greeting)
    }

    async fn reply(&mut self) -> String {
        loop {
            let line = tokio::time::timeout(PATIENCE, self.lines.next_line())
                .await
                .expect("a reply within the patience")
                .unwrap()
                .unwrap_or_default();
            if line.len() < 4 || line.as_bytes()[3] == b' ' {
                return line;
            }
        }
    }

    async fn say(&mut self, command: &str) -> String {
        self.write
            .write_all(format!("{command}\r\n").as_bytes())
            .await
            .unwrap();
        self.reply().await
    }

    /// One whole transaction; the reply to each step, stopping at the first
    /// refusal.
    async fn send(&mut self, from: &str, to: &str) -> Vec<String> {
        let mut out = Vec::new();
        for c in [format!("MAIL FROM:<{from}>"), format!("RCPT TO:<{to}>")] {
            let r = self.say(&c).await;
            let refused = !r.starts_with('2');
            out.push(r);
            if refused {
                return out;
            }
        }
        let r = self.say("DATA").await;
        out.push(r.clone());
        if !r.starts_with("354") {
            return out;
        }
        out.push(self.say("Subject: health\r\n\r\nhello\r\n.").await);
        out
    }
}

/// Connects, says EHLO, sends one message and quits; the last reply.
async fn one_message(addr: SocketAddr, from: &str, to: &str) -> String {
    let (mut c, greeting) = Client::connect(addr).await;
    assert!(greeting.starts_with("220"), "{greeting}");
    assert!(c.say("EHLO client.test").await.starts_with("250"));
    let r = c.send(from, to).await;
    let _ = c.say("QUIT").await;
    r.last().cloned().unwrap_or_default()
}

/// Waits for the next conservation transition on the channel.
async fn next_conservation(events: &mut broadcast::Receiver<HealthEvent>) -> Transition {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let e = events.recv().await.unwrap();
            if matches!(
                e.transition,
                Transition::ConservationEntered { .. } | Transition::ConservationLeft { .. }
            ) {
                return e.transition;
            }
        }
    })
    .await
    .expect("a conservation transition within the patience")
}

/// A public listener accepting mail for example.com from anyone on
/// loopback, a private one relaying for 127.0.0.1, no TLS.
fn settings(
    dir: &Path,
    spool_dir: &Path,
    health: HealthSettings,
    log: &LogCapture,
) -> EngineSettings {
    let public = access(
        r#"
        kind = "public"
        rat.accept = ["example.com"]
        [[hat.sender-group]]
        name = "ANYONE"
        match = ["127.0.0.1"]
        policy = "ACCEPTED"
        [hat.policy.ACCEPTED]
        action = "accept"
        tls = "off"
        "#,
    );
    let mut public = ListenerSettings::new("public", "127.0.0.1:0".parse().unwrap(), public);
    public.hostname = "gw.test".into();
    let mut private = ListenerSettings::new(
        "private",
        "127.0.0.1:0".parse().unwrap(),
        relay_access("off"),
    );
    private.hostname = "gw.test".into();
    let mut s = engine_support::settings(
        dir,
        engine_support::relay_access("off"),
        None,
        Default::default(),
        rustls::RootCertStore::empty(),
        log,
    );
    s.listeners = vec![public, private];
    s.spool_dir = spool_dir.to_path_buf();
    s.spool = SpoolOptions {
        segment_bytes: 256 << 10,
        min_free_bytes: 1 << 20,
        min_free_percent: 0,
        outcome_reserve_bytes: 256 << 10,
        ..SpoolOptions::default()
    };
    s.health = health;
    s
}

async fn wait_no_private_sessions(engine: &Engine) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while engine.status().await.listeners[1].open_sessions > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "sessions never closed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filling_filesystem_starts_and_ends_conservation() {
    let Some(fs) = Tmpfs::mount(16).unwrap() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let log = LogCapture::default();
    let health = HealthSettings {
        thresholds: Thresholds::default().with(Gauge::SpoolFreeMib, 10, 6),
        sample_period: Duration::from_millis(50),
        private_session_limit: 2,
        ..HealthSettings::default()
    };
    let engine = Engine::start(settings(dir.path(), &fs.path().join("spool"), health, &log))
        .await
        .unwrap();
    engine.suspend_delivery("ALL").await.unwrap();
    let mut events = engine.health().subscribe();
    let addrs = engine.local_addrs();
    let (public, private) = (addrs[0], addrs[1]);
    let r = one_message(public, "a@sender.test", "b@example.com").await;
    assert!(r.starts_with("250"), "{r}\n{}", log.dump());
    assert_eq!(engine.health().report().state, "normal");

    // A session opened before the disk fills.
    let (mut open, greeting) = Client::connect(public).await;
    assert!(greeting.starts_with("220"), "{greeting}");
    assert!(open.say("EHLO client.test").await.starts_with("250"));

    fs.fill(4 << 20).unwrap();
    let entered = next_conservation(&mut events).await;
    let Transition::ConservationEntered {
        gauge,
        value,
        threshold,
    } = entered
    else {
        panic!("expected entering, got {entered:?}");
    };
    assert_eq!((gauge, threshold), (Gauge::SpoolFreeMib, 6));
    assert!(value < 6, "{value}");
    assert!(engine.health().conserving());
    log.wait_for(&[
        "health: resource conservation entered: spool-free-mib",
        "below its low mark 6",
    ])
    .await;

    // Public: 421 4.3.2 at connect, 452 4.3.1 at MAIL in the open session.
    let (_, greeting) = Client::connect(public).await;
    assert!(greeting.starts_with("421 4.3.2 "), "{greeting}");
    let r = open.say("MAIL FROM:<a@sender.test>").await;
    assert!(r.starts_with("452 4.3.1 "), "{r}");
    log.wait_for(&[
        "MAIL FROM <a@sender.test> refused with 452 4.3.1: resource conservation (spool-free-mib",
    ])
    .await;

    // Private: still takes mail (4 MiB free is above the spool's own
    // 1 MiB threshold), up to two sessions at once.
    let r = one_message(private, "a@local.test", "b@example.com").await;
    assert!(r.starts_with("250"), "{r}\n{}", log.dump());
    wait_no_private_sessions(&engine).await;
    let (_first, g1) = Client::connect(private).await;
    let (_second, g2) = Client::connect(private).await;
    let (_third, g3) = Client::connect(private).await;
    assert!(
        g1.starts_with("220") && g2.starts_with("220"),
        "{g1} / {g2}"
    );
    assert!(g3.starts_with("421 4.3.2 "), "{g3}");
    drop((_first, _second, _third));

    let report = engine.health().report();
    assert_eq!(report.state, "conservation");
    let free = report
        .gauges
        .iter()
        .find(|g| g.gauge == "spool-free-mib")
        .unwrap();
    assert_eq!(free.state, "pressed");
    assert_eq!((free.high, free.low), (Some(10), Some(6)));

    fs.free().unwrap();
    let left = next_conservation(&mut events).await;
    assert!(
        matches!(
            left,
            Transition::ConservationLeft {
                gauge: Gauge::SpoolFreeMib,
                threshold: 10,
                value
            } if value > 10
        ),
        "{left:?}"
    );
    log.wait_for(&[
        "health: resource conservation left: spool-free-mib",
        "above its high mark 10",
    ])
    .await;
    assert!(!engine.health().conserving());
    let r = open.say("MAIL FROM:<a@sender.test>").await;
    assert!(r.starts_with("250"), "{r}");
    let r = one_message(public, "c@sender.test", "d@example.com").await;
    assert!(r.starts_with("250"), "{r}\n{}", log.dump());
    drop(open);
    engine.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_growing_queue_starts_conservation_and_delivery_ends_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = LogCapture::default();
    let health = HealthSettings {
        thresholds: Thresholds::default().with(Gauge::QueueMessages, 3, 1),
        sample_period: Duration::from_millis(50),
        ..HealthSettings::default()
    };
    let sink = Sink::start(SinkOptions::default()).await;
    let mut s = settings(dir.path(), &dir.path().join("spool"), health, &log);
    s.delivery.routes = vec![route("example.com", "mx.example.com", sink.addr)];
    let engine = Engine::start(s).await.unwrap();
    engine.suspend_delivery("ALL").await.unwrap();
    let mut events = engine.health().subscribe();
    let addrs = engine.local_addrs();
    let (public, private) = (addrs[0], addrs[1]);
    for i in 0..4 {
        let r = one_message(public, &format!("s{i}@sender.test"), "b@example.com").await;
        assert!(r.starts_with("250"), "message {i}: {r}\n{}", log.dump());
    }
    let entered = next_conservation(&mut events).await;
    assert_eq!(
        entered,
        Transition::ConservationEntered {
            gauge: Gauge::QueueMessages,
            value: 4,
            threshold: 3
        }
    );
    log.wait_for(&[
        "health: resource conservation entered: queue-messages 4 above its high mark 3",
    ])
    .await;
    let (_, greeting) = Client::connect(public).await;
    assert!(greeting.starts_with("421 4.3.2 "), "{greeting}");
    let r = one_message(private, "p@local.test", "b@example.com").await;
    assert!(r.starts_with("250"), "{r}\n{}", log.dump());

    // Between the marks nothing changes; delivery empties the queue.
    engine.resume_delivery("ALL").await.unwrap();
    let left = next_conservation(&mut events).await;
    assert_eq!(
        left,
        Transition::ConservationLeft {
            gauge: Gauge::QueueMessages,
            value: 0,
            threshold: 1
        }
    );
    assert_eq!(sink.wait_for(5).await.len(), 5);
    log.wait_for(&["health: resource conservation left: queue-messages 0 below its low mark 1"])
        .await;
    let r = one_message(public, "again@sender.test", "b@example.com").await;
    assert!(r.starts_with("250"), "{r}\n{}", log.dump());
    engine.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_message_starts_conservation_when_the_clock_moves() {
    let dir = tempfile::tempdir().unwrap();
    let log = LogCapture::default();
    let clock = TestClock::at(SystemTime::now());
    let health = HealthSettings {
        thresholds: Thresholds::default().with(Gauge::QueueOldestAgeSeconds, 3600, 600),
        sample_period: Duration::from_millis(50),
        clock: clock.shared(),
        ..HealthSettings::default()
    };
    let engine = Engine::start(settings(
        dir.path(),
        &dir.path().join("spool"),
        health,
        &log,
    ))
    .await
    .unwrap();
    engine.suspend_delivery("ALL").await.unwrap();
    let mut events = engine.health().subscribe();
    let public = engine.local_addrs()[0];
    let r = one_message(public, "old@sender.test", "b@example.com").await;
    assert!(r.starts_with("250"), "{r}");
    // The spool stamps arrival by the system clock, later than the test
    // clock's start: two hours on from the arrival, not from that start.
    clock.set(SystemTime::now() + Duration::from_secs(2 * 3600));
    let entered = next_conservation(&mut events).await;
    assert!(
        matches!(
            entered,
            Transition::ConservationEntered {
                gauge: Gauge::QueueOldestAgeSeconds,
                threshold: 3600,
                value
            } if value >= 7200
        ),
        "{entered:?}"
    );
    let (_, greeting) = Client::connect(public).await;
    assert!(greeting.starts_with("421 4.3.2 "), "{greeting}");
    // The operator removes the stuck message: the queue is empty, age 0.
    let id = engine.spool().messages()[0].id;
    engine
        .queue_service()
        .handle(portcullis_mta::control::QueueRequest::Delete { id: id.to_string() })
        .await
        .unwrap();
    let left = next_conservation(&mut events).await;
    assert!(
        matches!(
            left,
            Transition::ConservationLeft {
                gauge: Gauge::QueueOldestAgeSeconds,
                value: 0,
                threshold: 600
            }
        ),
        "{left:?}"
    );
    engine.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_brings_new_marks_into_force() {
    let dir = tempfile::tempdir().unwrap();
    let log = LogCapture::default();
    let health = HealthSettings {
        sample_period: Duration::from_millis(50),
        ..HealthSettings::default()
    };
    let s = settings(dir.path(), &dir.path().join("spool"), health, &log);
    let engine = Engine::start(s.clone()).await.unwrap();
    engine.suspend_delivery("ALL").await.unwrap();
    let mut events = engine.health().subscribe();
    let public = engine.local_addrs()[0];
    for i in 0..2 {
        let r = one_message(public, &format!("r{i}@sender.test"), "b@example.com").await;
        assert!(r.starts_with("250"), "{r}");
    }
    let mut watched = s.clone();
    watched.health.thresholds = Thresholds::default().with(Gauge::QueueMessages, 1, 1);
    engine.reload(watched, Duration::ZERO).await.unwrap();
    assert!(matches!(
        next_conservation(&mut events).await,
        Transition::ConservationEntered {
            gauge: Gauge::QueueMessages,
            value: 2,
            threshold: 1
        }
    ));
    // Marks removed: nothing holds the gateway in conservation any more.
    engine.reload(s, Duration::ZERO).await.unwrap();
    assert!(matches!(
        next_conservation(&mut events).await,
        Transition::ConservationLeft { .. }
    ));
    assert_eq!(engine.health().report().state, "normal");
    engine.shutdown(Duration::from_secs(1)).await;
}
