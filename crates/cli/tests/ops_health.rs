//! `[health]` on the real binary: a queue limit read from the configuration
//! file puts the gateway in resource conservation once mail to an
//! unreachable destination piles up, `portcullis ctl health` (table and
//! `--json`), `ctl status`, `GET /api/health` and `/metrics` (curl) say so, the public
//! listener answers `421 4.3.2` while the private one still takes mail, and
//! deleting the stuck messages ends it — each transition one log line.

mod ops_support;

use std::net::SocketAddr;

use ops_support::{READ_TOKEN, Rig, eventually};
use portcullis_testkit::client::{SendOptions, send};
use portcullis_testkit::gateway::route;
use portcullis_testkit::runner::free_tcp_port;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;

fn public_listener(addr: SocketAddr) -> String {
    format!(
        "[[listener]]\nname = \"public\"\naddress = \"{addr}\"\nkind = \"public\"\nrat.accept = [\"local.test\"]\n\
         [[listener.hat.sender-group]]\nname = \"ANYONE\"\nmatch = [\"127.0.0.0/8\"]\npolicy = \"ACCEPTED\"\n\
         [listener.hat.policy.ACCEPTED]\naction = \"accept\"\ntls = \"off\"\n"
    )
}

/// The greeting a new connection hears.
async fn greeting(addr: SocketAddr) -> String {
    let stream = TcpStream::connect(addr).await.unwrap();
    let mut lines = BufReader::new(stream).lines();
    tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
        .await
        .expect("a greeting within 30 s")
        .unwrap()
        .unwrap_or_default()
}

async fn queue_one(listen: SocketAddr, to: &str) -> String {
    let d = send(
        listen,
        "sender@local.test",
        &[to],
        "stuck",
        &SendOptions::default(),
    )
    .await
    .unwrap();
    let reply = format!("{d:?}");
    reply
        .split("queued as ")
        .nth(1)
        .unwrap_or_else(|| panic!("no queue id in {reply}"))
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect()
}

fn state(rig: &Rig) -> String {
    let out = rig.ctl_ok(&["--json", "health"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["state"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_limit_from_the_file_starts_conservation_and_ctl_health_shows_it() {
    let mut rig = Rig::new();
    let public = SocketAddr::from(([127, 0, 0, 1], free_tcp_port().unwrap()));
    let closed = free_tcp_port().unwrap();
    rig.fx.extra = format!(
        "[health]\nsample-period-seconds = 1\nprivate-session-limit = 5\nqueue-messages = {{ high = 1, low = 1 }}\n\n{}{}",
        route("held.test", &[format!("127.0.0.1:{closed}")]),
        public_listener(public)
    );
    let _gw = rig.start();

    let out = rig.ctl_ok(&["health"]);
    assert!(out.starts_with("health: normal"), "{out}");
    let row = out
        .lines()
        .find(|l| l.starts_with("queue-messages"))
        .unwrap_or_else(|| panic!("{out}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[2..], ["1", "1", "above", "ok"], "{out}");
    assert!(greeting(public).await.starts_with("220 "));

    let ids = [
        queue_one(rig.fx.listen, "a@held.test").await,
        queue_one(rig.fx.listen, "b@held.test").await,
    ];
    eventually(30, "conservation", || {
        (state(&rig) == "conservation").then_some(())
    });
    let out = rig.ctl_ok(&["health"]);
    assert!(
        out.starts_with("health: RESOURCE CONSERVATION")
            && out.contains("queue-messages 2 above its high mark 1"),
        "{out}"
    );
    assert!(out.contains("up to 5 sessions"), "{out}");
    let status = rig.ctl_ok(&["status"]);
    assert!(status.contains("health: RESOURCE CONSERVATION"), "{status}");
    let h = rig.curl("GET", "/api/health", Some(READ_TOKEN), None);
    assert_eq!(h.status, 200, "{}", h.body);
    let v = h.json();
    assert_eq!(v["state"], "conservation");
    let q = v["gauges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["gauge"] == "queue-messages")
        .unwrap();
    assert_eq!(
        (q["value"].as_u64(), q["state"].as_str()),
        (Some(2), Some("pressed"))
    );
    assert_eq!(
        rig.curl("GET", "/api/health", None, None).status,
        401,
        "the health report needs a token"
    );

    let metrics = rig.curl("GET", "/metrics", Some(READ_TOKEN), None);
    assert!(
        metrics
            .body
            .lines()
            .any(|l| l == "portcullis_resource_conservation 1.0"),
        "{}",
        metrics.body
    );

    let g = greeting(public).await;
    assert!(g.starts_with("421 4.3.2 "), "{g}");
    // The private listener still takes mail.
    let third = queue_one(rig.fx.listen, "c@held.test").await;

    for id in ids.iter().chain([&third]) {
        rig.ctl_ok(&["queue", "delete", id]);
    }
    eventually(30, "the end of conservation", || {
        (state(&rig) == "normal").then_some(())
    });
    assert!(greeting(public).await.starts_with("220 "));
    let log = std::fs::read_to_string(rig.fx.log_file()).unwrap();
    let entered = log
        .lines()
        .filter(|l| l.contains("health: resource conservation entered: queue-messages"))
        .count();
    let left = log
        .lines()
        .filter(|l| {
            l.contains("health: resource conservation left: queue-messages 0 below its low mark 1")
        })
        .count();
    assert_eq!((entered, left), (1, 1), "{log}");
}
