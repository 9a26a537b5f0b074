//! Durability: messages are sent through the real `portcullis` binary while
//! it is killed with SIGKILL at random moments; after the last restart,
//! every message that got `250` must reach the sink. Duplicates (deliveries
//! repeated because the gateway died between the sink's `250` and recording
//! it) are allowed by the design, counted and reported, never asserted on.
//!
//! Needs the `portcullis` binary (`cargo build -p portcullis-cli`, or
//! `PORTCULLIS_BIN`), see `portcullis_testkit::runner`.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use portcullis_testkit::gateway::{GatewayFixture, destination, route};
use portcullis_testkit::loadgen::{LoadOptions, run};
use portcullis_testkit::sink::{Sink, SinkOptions, SinkTls};

const ROUNDS: usize = 4;
const PER_ROUND: usize = 200;

fn seq_of(m: &portcullis_testkit::sink::ReceivedMessage) -> Option<usize> {
    m.header("X-Seq").and_then(|s| s.parse().ok())
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
    let random = RandomState::new();

    let mut accepted = BTreeSet::new();
    let mut attempted = 0;
    for round in 0..ROUNDS {
        let mut o = LoadOptions::new(fx.listen);
        o.messages = PER_ROUND;
        o.first_seq = round * PER_ROUND;
        o.connections = 8;
        o.per_connection = 3;
        o.size = 3000;
        o.to = "user@sink.test".into();
        o.timeout = Duration::from_secs(30);
        let before = sink.messages().len();
        let load = tokio::spawn(run(o));
        // A random moment while the round is in full swing. Even rounds:
        // once the sink has seen a random number of this round's messages
        // (accepted mail is queued, some deliveries in flight). Odd rounds:
        // a random delay of up to 100 ms after the load starts, while
        // messages are still being received (some get no 250 at all).
        if round % 2 == 0 {
            let at = before + 1 + (random.hash_one(round) as usize % (PER_ROUND / 2));
            let _ = sink.wait_for_messages(at, Duration::from_secs(60)).await;
        } else {
            tokio::time::sleep(Duration::from_millis(random.hash_one(round) % 100)).await;
        }
        gateway.kill();
        let delivered_at_kill = sink.messages().len() - before;
        let report = load.await.unwrap().unwrap();
        attempted += report.sent.len();
        let got: Vec<usize> = report
            .sent
            .iter()
            .filter(|s| s.accepted)
            .map(|s| s.seq)
            .collect();
        println!(
            "round {round}: SIGKILL after {delivered_at_kill} delivery(ies); {} of {} message(s) got 250",
            got.len(),
            report.sent.len()
        );
        accepted.extend(got);
        gateway.restart(&[fx.listen]).unwrap();
    }

    // The last start stays up: it must deliver whatever is still queued.
    let want = accepted.clone();
    let messages = sink
        .wait_until_messages(
            Duration::from_secs(120),
            &format!("all {} accepted message(s) at the sink", want.len()),
            |msgs| {
                let have: BTreeSet<usize> = msgs.iter().filter_map(seq_of).collect();
                want.is_subset(&have)
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\nmail log:\n{}", gateway.tail(100)));

    let mut copies: BTreeMap<usize, usize> = BTreeMap::new();
    for m in &messages {
        if let Some(seq) = seq_of(m) {
            *copies.entry(seq).or_default() += 1;
        }
    }
    let duplicates: usize = copies.values().map(|n| n - 1).sum();
    let unacknowledged_delivered = copies.keys().filter(|s| !accepted.contains(s)).count();
    println!(
        "durability: {attempted} attempted, {} got 250, {} delivered ({} distinct), \
         {duplicates} duplicate(s), {unacknowledged_delivered} delivered without a 250 \
         (killed between queueing and answering)",
        accepted.len(),
        messages.len(),
        copies.len()
    );
    assert!(!accepted.is_empty(), "no message was accepted at all");
    for seq in &accepted {
        assert!(
            copies.contains_key(seq),
            "message {seq} got 250 but was lost"
        );
    }
    gateway.terminate(Duration::from_secs(10));
}
