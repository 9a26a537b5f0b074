//! Durability: messages are sent through the real `portcullis` binary while
//! it is killed with SIGKILL at random moments; after the last restart,
//! every message that got `250` must reach the sink.
//!
//! Duplicates are measured per kill. A delivery is *in flight* at a kill
//! when the next hop already has the message but the spool has not stored
//! the outcome: after the kill the message is both at the sink and still in
//! the spool (read offline, before the restart). Such a delivery is repeated
//! once after the restart, and nothing else may be: the test asserts that
//! the duplicates each kill causes are at most its deliveries in flight, and
//! prints the ratio. Small-message rounds and rounds of 600 KB messages
//! (where outcome records used to queue behind megabytes of message data).
//!
//! Needs the `portcullis` binary (`cargo build -p portcullis-cli`, or
//! `PORTCULLIS_BIN`), see `portcullis_testkit::runner`.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, RandomState};
use std::path::Path;
use std::time::Duration;

use portcullis_mta::control::socket::call;
use portcullis_mta::control::{QueueReply, QueueRequest, SOCKET_NAME};
use portcullis_mta::spool::Spool;
use portcullis_testkit::gateway::{GatewayFixture, destination, route};
use portcullis_testkit::loadgen::{LoadOptions, run};
use portcullis_testkit::sink::{ReceivedMessage, Sink, SinkOptions, SinkTls};

/// When a round's SIGKILL comes.
#[derive(Clone, Copy)]
enum KillAt {
    /// Once the sink has seen a random number of the round's messages
    /// (accepted mail is queued, some deliveries in flight).
    Delivering,
    /// A random delay of up to 100 ms after the load starts, while messages
    /// are still being received (some get no 250 at all).
    Receiving,
}

/// (messages, bytes each, kill moment) per round: four small rounds, then
/// two of 600 KB messages killed while they are being delivered.
const ROUNDS: [(usize, usize, KillAt); 6] = [
    (200, 3000, KillAt::Delivering),
    (200, 3000, KillAt::Receiving),
    (200, 3000, KillAt::Delivering),
    (200, 3000, KillAt::Receiving),
    (60, 600_000, KillAt::Delivering),
    (60, 600_000, KillAt::Delivering),
];

fn seq_of(m: &ReceivedMessage) -> Option<usize> {
    m.header("X-Seq").and_then(|s| s.parse().ok())
}

fn copies(messages: &[ReceivedMessage]) -> BTreeMap<usize, usize> {
    let mut c = BTreeMap::new();
    for m in messages {
        if let Some(seq) = seq_of(m) {
            *c.entry(seq).or_default() += 1;
        }
    }
    c
}

/// The sequence numbers still queued in a stopped gateway's spool.
fn queued_seqs(spool_dir: &Path) -> BTreeSet<usize> {
    let check = Spool::check(spool_dir).unwrap();
    assert_eq!(check.fatal().count(), 0, "{:?}", check.damage);
    check
        .messages
        .iter()
        .filter_map(|m| {
            let body = check.body(m.id).ok()?;
            let text = String::from_utf8_lossy(&body);
            text.lines()
                .find_map(|l| l.strip_prefix("X-Seq: "))
                .and_then(|s| s.trim().parse().ok())
        })
        .collect()
}

struct Kill {
    size: usize,
    delivered_before: usize,
    in_flight: usize,
    /// Copies per message at the sink right after the kill.
    at_kill: BTreeMap<usize, usize>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_accepted_message_survives_sigkill() {
    let sink = Sink::start(SinkOptions::new(SinkTls::NotOffered))
        .await
        .unwrap();
    let mut fx = GatewayFixture::new().unwrap();
    fx.extra = destination("default", "none", "none", false)
        + &route("default", &[sink.addr().to_string()]);
    let mut gateway = fx.start().unwrap();
    let spool_dir = fx.data_dir().join("spool");
    let random = RandomState::new();

    let mut accepted = BTreeSet::new();
    let mut attempted = 0;
    let mut kills: Vec<Kill> = Vec::new();
    let mut first_seq = 0;
    for (round, &(count, size, kill_at)) in ROUNDS.iter().enumerate() {
        let mut o = LoadOptions::new(fx.listen);
        o.messages = count;
        o.first_seq = first_seq;
        first_seq += count;
        o.connections = 8;
        o.per_connection = 3;
        o.size = size;
        o.to = "user@sink.test".into();
        o.timeout = Duration::from_secs(60);
        let before = sink.messages().len();
        let load = tokio::spawn(run(o));
        // A random moment while the round is in full swing.
        match kill_at {
            KillAt::Delivering => {
                let at = before + 1 + (random.hash_one(round) as usize % (count / 2));
                let _ = sink.wait_for_messages(at, Duration::from_secs(60)).await;
            }
            KillAt::Receiving => {
                tokio::time::sleep(Duration::from_millis(random.hash_one(round) % 100)).await;
            }
        }
        gateway.kill();
        // Everything the dead gateway had sent is recorded before we look.
        let at_sink = sink.wait_idle(Duration::from_secs(30)).await.unwrap();
        let at_kill = copies(&at_sink);
        let still_queued = queued_seqs(&spool_dir);
        let in_flight = at_kill.keys().filter(|s| still_queued.contains(s)).count();
        let report = load.await.unwrap().unwrap();
        attempted += report.sent.len();
        let got: Vec<usize> = report
            .sent
            .iter()
            .filter(|s| s.accepted)
            .map(|s| s.seq)
            .collect();
        println!(
            "round {round} ({size} bytes): SIGKILL after {} delivery(ies); {} of {} message(s) got 250; \
             {in_flight} delivery(ies) in flight (at the sink, outcome not stored)",
            at_sink.len() - before,
            got.len(),
            report.sent.len()
        );
        kills.push(Kill {
            size,
            delivered_before: at_sink.len(),
            in_flight,
            at_kill,
        });
        accepted.extend(got);
        gateway.restart(&[fx.listen]).unwrap();
    }

    // The last start stays up: it must deliver whatever is still queued,
    // until the queue is empty (so every repeat of the last kill is seen).
    let want = accepted.clone();
    let socket = fx.data_dir().join(SOCKET_NAME);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    loop {
        let have: BTreeSet<usize> = copies(&sink.messages()).into_keys().collect();
        let empty = matches!(
            call(&socket, &QueueRequest::List),
            Ok(Ok(QueueReply::List(rows))) if rows.is_empty()
        );
        if want.is_subset(&have) && empty {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not all accepted messages delivered / queue not empty\nmail log:\n{}",
            gateway.tail(100)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let messages = sink.wait_idle(Duration::from_secs(30)).await.unwrap();
    let final_copies = copies(&messages);

    // Duplicates caused by kill k: extra copies, delivered between restart
    // k and the next kill (or the end), of messages the sink had at kill k.
    let mut total_dup = 0;
    let mut total_flight = 0;
    for (k, kill) in kills.iter().enumerate() {
        let next = kills.get(k + 1).map_or(&final_copies, |n| &n.at_kill);
        let dup: usize = kill
            .at_kill
            .iter()
            .map(|(seq, n)| next.get(seq).copied().unwrap_or(0) - n)
            .sum();
        println!(
            "kill {k} ({} bytes, {} at the sink): {dup} duplicate(s) for {} delivery(ies) in flight ({})",
            kill.size,
            kill.delivered_before,
            kill.in_flight,
            if kill.in_flight > 0 {
                format!("ratio {:.2}", dup as f64 / kill.in_flight as f64)
            } else {
                "none in flight".into()
            }
        );
        assert!(
            dup <= kill.in_flight,
            "kill {k}: {dup} duplicates but only {} deliveries in flight",
            kill.in_flight
        );
        total_dup += dup;
        total_flight += kill.in_flight;
    }
    let duplicates: usize = final_copies.values().map(|n| n - 1).sum();
    let unacknowledged_delivered = final_copies
        .keys()
        .filter(|s| !accepted.contains(s))
        .count();
    println!(
        "durability: {attempted} attempted, {} got 250, {} delivered ({} distinct), \
         {duplicates} duplicate(s) over {} kills ({total_dup} attributed, {total_flight} in flight), \
         {unacknowledged_delivered} delivered without a 250 (killed between queueing and answering)",
        accepted.len(),
        messages.len(),
        final_copies.len(),
        kills.len()
    );
    assert!(!accepted.is_empty(), "no message was accepted at all");
    for seq in &accepted {
        assert!(
            final_copies.contains_key(seq),
            "message {seq} got 250 but was lost"
        );
    }
    assert_eq!(duplicates, total_dup, "every duplicate follows a kill");
    gateway.terminate(Duration::from_secs(10));
}
