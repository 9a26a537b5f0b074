//! The queue commands through the real `portcullis` binary, as an operator
//! runs them: online through the running gateway's control socket (list,
//! show, hold, delete, bounce, retry by domain), offline on the spool files
//! once it is stopped (list, release, check), and a damaged spool: the
//! gateway refuses to start and says what to run, `queue list` shows what
//! still reads and fails, `queue check` reports, `queue salvage` repairs,
//! and the held message is delivered after the restart.

use std::os::unix::fs::PermissionsExt;
use std::process::Output;
use std::time::Duration;

use portcullis_mta::control::SOCKET_NAME;
use portcullis_mta::spool::fuzzing::record_spans;
use portcullis_testkit::gateway::{GatewayFixture, destination, route};
use portcullis_testkit::loadgen::{LoadOptions, run};
use portcullis_testkit::runner::free_tcp_port;
use portcullis_testkit::sink::{Sink, SinkOptions, SinkTls};

const PATIENCE: Duration = Duration::from_secs(60);

fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn rows(fx: &GatewayFixture) -> Vec<serde_json::Value> {
    let out = ok(fx.queue(&["list", "--json"]).unwrap());
    serde_json::from_str::<serde_json::Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_commands_online_offline_and_on_a_damaged_spool() {
    let sink_addr = std::net::SocketAddr::from(([127, 0, 0, 1], free_tcp_port().unwrap()));
    let mut fx = GatewayFixture::new().unwrap();
    fx.queue = "retry-first-seconds = 3600\nretry-max-seconds = 3600\n".into();
    fx.extra =
        destination("default", "none", "none", false) + &route("default", &[sink_addr.to_string()]);
    let mut gateway = fx.start().unwrap();
    let socket = fx.data_dir().join(SOCKET_NAME);
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the control socket is owner-only");

    // Four messages; the next hop is down, so each is deferred once.
    let mut o = LoadOptions::new(fx.listen);
    o.messages = 4;
    o.connections = 1;
    o.per_connection = 4;
    o.to = "user@sink.test".into();
    assert_eq!(run(o).await.unwrap().accepted(), 4);
    let deadline = std::time::Instant::now() + PATIENCE;
    let list = loop {
        let list = rows(&fx);
        if list.len() == 4 && list.iter().all(|r| r["attempts"] == 1) {
            break list;
        }
        assert!(std::time::Instant::now() < deadline, "{list:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let id = |n: usize| list[n]["id"].as_str().unwrap().to_owned();
    assert!(
        list[0]["last_error"].as_str().unwrap().contains("refused"),
        "{list:?}"
    );
    let wait = list[0]["next_attempt"].as_u64().unwrap() - list[0]["received_at"].as_u64().unwrap();
    assert!((3590..=3610).contains(&wait), "{list:?}");
    let human = ok(fx.queue(&["list"]).unwrap());
    assert!(
        human.contains("4 message(s) queued (from the running gateway)"),
        "{human}"
    );

    let show = ok(fx.queue(&["show", &id(0)]).unwrap());
    assert!(show.contains("Subject: load message 0"), "{show}");
    assert!(show.contains("<user@sink.test> pending"), "{show}");

    let said = ok(fx.queue(&["hold", &id(0)]).unwrap());
    assert!(said.contains("held"), "{said}");
    let said = ok(fx.queue(&["delete", &id(1)]).unwrap());
    assert!(
        said.contains("deleted: 1 recipient(s) dropped without a bounce"),
        "{said}"
    );
    let said = ok(fx.queue(&["bounce", &id(2)]).unwrap());
    assert!(said.contains("returned to <load@bench.test>"), "{said}");
    gateway
        .wait_for_line(&["queued bounce for MID", &id(2)], PATIENCE)
        .await
        .unwrap();
    let unknown = fx.queue(&["hold", "ABCDEF"]).unwrap();
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("not in the queue"));

    // The next hop comes back; a retry for its domain sends what is not held.
    let sink = Sink::start_on(sink_addr, SinkOptions::new(SinkTls::NotOffered))
        .await
        .unwrap();
    let said = ok(fx.queue(&["retry", "--domain", "sink.test"]).unwrap());
    assert!(said.contains("scheduled for delivery now"), "{said}");
    assert!(said.contains("1 held message(s) left alone"), "{said}");
    let said = ok(fx.queue(&["retry", "--domain", "bench.test"]).unwrap());
    assert!(said.starts_with("1 message(s)"), "{said}");
    let got = sink.wait_for_messages(2, PATIENCE).await.unwrap();
    let subjects: Vec<String> = got.iter().filter_map(|m| m.header("Subject")).collect();
    assert!(
        subjects.contains(&"load message 3".to_string()),
        "{subjects:?}"
    );
    assert!(
        subjects.iter().any(|s| s.contains("Undelivered Mail")),
        "{subjects:?}"
    );
    let dsn = got
        .iter()
        .find(|m| m.rcpt_to == ["<load@bench.test>"])
        .unwrap();
    assert!(
        dsn.body_text().contains("Status: 5.0.0"),
        "{}",
        dsn.body_text()
    );
    assert!(dsn.body_text().contains("portcullis queue bounce"));

    // Stopped: the same commands work on the spool files.
    gateway.terminate(Duration::from_secs(10));
    let list = rows(&fx);
    assert_eq!(list.len(), 1);
    // Its stored schedule: one attempt, the next an hour after it.
    assert_eq!(list[0]["attempts"], 1);
    assert!(
        list[0]["next_attempt"].as_u64().unwrap() > list[0]["received_at"].as_u64().unwrap() + 3500
    );
    assert_eq!(
        (list[0]["id"].as_str().unwrap(), &list[0]["held"]),
        (id(0).as_str(), &serde_json::Value::Bool(true))
    );
    let human = ok(fx.queue(&["list"]).unwrap());
    assert!(human.contains("the gateway is not running"), "{human}");
    let said = ok(fx.queue(&["release", &id(0)]).unwrap());
    assert!(
        said.contains("attempted as soon as the gateway starts"),
        "{said}"
    );
    assert_eq!(rows(&fx)[0]["held"], false);
    let check = ok(fx.queue(&["check"]).unwrap());
    assert!(check.contains("No damage"), "{check}");

    // Damage a record that does not belong to the held message: the gateway
    // will not start, says why and what to run.
    let spool = fx.data_dir().join("spool");
    let target: u64 = u64::from_str_radix(&id(1), 16).unwrap();
    let (file, at) = std::fs::read_dir(&spool)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .find_map(|p| {
            let spans = record_spans(&std::fs::read(&p).unwrap());
            let hit = spans.iter().find(|(_, _, i)| *i == target)?;
            Some((p, (hit.0 + hit.1) / 2))
        })
        .expect("the deleted message's record is still on disk");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[at as usize] ^= 0x08;
    std::fs::write(&file, bytes).unwrap();
    let refused = gateway.restart(&[fx.listen]).unwrap_err().to_string();
    assert!(refused.contains("is damaged at byte"), "{refused}");
    assert!(refused.contains("portcullis queue salvage"), "{refused}");
    let list = fx.queue(&["list"]).unwrap();
    assert_eq!(list.status.code(), Some(3), "{}", text(&list));
    assert!(String::from_utf8_lossy(&list.stdout).contains(&id(0)));
    assert!(String::from_utf8_lossy(&list.stderr).contains("queue salvage"));
    let check = fx.queue(&["check", "--json"]).unwrap();
    assert_eq!(check.status.code(), Some(3), "{}", text(&check));
    let report: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(report["starts"], false);
    assert_eq!(report["damage"][0]["kind"], "records");
    let salvaged = ok(fx.queue(&["salvage"]).unwrap());
    assert!(salvaged.contains("kept 1 message(s)"), "{salvaged}");
    assert!(salvaged.contains("moved aside"), "{salvaged}");
    assert!(ok(fx.queue(&["check"]).unwrap()).contains("No damage"));

    // It starts again and delivers the released message.
    gateway.restart(&[fx.listen]).unwrap();
    let got = sink.wait_for_messages(3, PATIENCE).await.unwrap();
    assert!(
        got.iter()
            .any(|m| m.header("Subject").as_deref() == Some("load message 0"))
    );
    gateway.terminate(Duration::from_secs(10));
}
