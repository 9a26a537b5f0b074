//! The spool's disk use: bounded by twice the live messages plus one
//! segment whatever the traffic, and safe on a full filesystem (a real
//! tmpfs: a failed write leaves nothing replayable, and the spool works
//! again as soon as space is free, without a restart).

use std::fs;
use std::path::Path;
use std::sync::Arc;

use portcullis_mta::spool::{
    Envelope, EnvelopeFlags, MessageId, Schedule, Spool, SpoolError, SpoolOptions,
};
use portcullis_testkit::tmpfs::Tmpfs;

fn envelope(n: usize, recipients: usize) -> Envelope {
    Envelope {
        sender: format!("sender{n}@example.org"),
        recipients: (0..recipients)
            .map(|r| format!("rcpt{r}@example.com"))
            .collect(),
        received_at: 1_790_000_000 + n as u64,
        flags: EnvelopeFlags::default(),
        dsn: Default::default(),
    }
}

fn body(n: usize, size: usize) -> Vec<u8> {
    let mut b = format!("Subject: message {n}\r\n\r\n").into_bytes();
    b.resize(size, b'x');
    b
}

/// Every byte in the spool directory: segments, key, lock, kept files.
fn on_disk(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

const SEGMENT: u64 = 64 << 10;

#[test]
fn disk_use_stays_within_twice_the_live_messages_plus_one_segment() {
    let dir = tempfile::tempdir().unwrap();
    let options = SpoolOptions {
        segment_bytes: SEGMENT,
        ..SpoolOptions::default()
    };
    let (spool, _) = Spool::open(dir.path(), options.clone()).unwrap();
    let spool = Arc::new(spool);
    // Five long-deferred messages, one at the start and the others along
    // the way, each with one of two recipients done, a stored schedule and
    // one of them held: they pin whatever segment they are in.
    let mut pinned: Vec<(MessageId, Vec<u8>)> = Vec::new();
    let mut traffic = 0u64;
    let mut worst = (0u64, 0u64);
    let mut batch = 0;
    while traffic < 60 * SEGMENT {
        if batch % 13 == 0 {
            let n = pinned.len();
            let b = body(10_000 + n, 2000 + 37 * n);
            let (id, commit) = spool.enqueue(envelope(n, 2), &b);
            commit.wait().unwrap();
            spool.finish(id, &[0]).wait().unwrap();
            let s = Schedule {
                attempts: 4,
                next_attempt: 1_800_000_000 + n as u64,
                last_error: format!("451 4.4.1 try again ({n})"),
            };
            spool.set_schedule(id, s).wait().unwrap();
            spool.set_held(id, n == 2).wait().unwrap();
            pinned.push((id, b));
        }
        // A batch of 20 messages, all delivered.
        let commits: Vec<_> = (0..20)
            .map(|i| {
                let b = body(batch * 20 + i, 3000);
                traffic += b.len() as u64;
                spool.enqueue(envelope(i, 1), &b)
            })
            .collect();
        let done: Vec<_> = commits
            .into_iter()
            .map(|(id, c)| {
                c.wait().unwrap();
                spool.finish(id, &[0])
            })
            .collect();
        for c in done {
            c.wait().unwrap();
        }
        // Let the background reclaim settle, then hold it to the bound.
        spool.reclaim_now();
        let usage = spool.usage();
        let disk = on_disk(dir.path());
        assert!(
            disk <= 2 * usage.live_bytes + SEGMENT,
            "after {traffic} bytes of traffic: {disk} bytes on disk for {} live bytes ({} segments)",
            usage.live_bytes,
            usage.segments
        );
        // The live figure is the pinned messages' records, not more.
        let pinned_bodies: u64 = pinned.iter().map(|(_, b)| b.len() as u64).sum();
        assert!(usage.live_bytes <= pinned_bodies + 300 * pinned.len() as u64);
        if disk > worst.0 {
            worst = (disk, usage.live_bytes);
        }
        batch += 1;
    }
    assert!(traffic >= 50 * SEGMENT);
    println!(
        "spool bound: {traffic} bytes of traffic through {} KiB segments with {} pinned message(s); \
         largest on-disk total {} bytes for {} live bytes (bound {})",
        SEGMENT >> 10,
        pinned.len(),
        worst.0,
        worst.1,
        2 * worst.1 + SEGMENT
    );
    drop(spool);

    // Everything pinned survived the compactions, with its state.
    let (spool, queued) = Spool::open(dir.path(), options).unwrap();
    assert_eq!(queued.len(), pinned.len());
    for (n, (id, b)) in pinned.iter().enumerate() {
        let m = queued.iter().find(|m| m.id == *id).unwrap();
        assert_eq!(m.pending, vec![1]);
        assert_eq!(m.held, n == 2);
        assert_eq!(m.schedule.attempts, 4);
        assert_eq!(m.schedule.last_error, format!("451 4.4.1 try again ({n})"));
        assert_eq!(&spool.body(*id).unwrap(), b);
    }
}

#[test]
fn the_background_thread_reclaims_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let options = SpoolOptions {
        segment_bytes: SEGMENT,
        ..SpoolOptions::default()
    };
    let (spool, _) = Spool::open(dir.path(), options).unwrap();
    let (keep, commit) = spool.enqueue(envelope(0, 1), &body(0, 1000));
    commit.wait().unwrap();
    for n in 1..400 {
        let (id, commit) = spool.enqueue(envelope(n, 1), &body(n, 3000));
        commit.wait().unwrap();
        spool.finish(id, &[0]).wait().unwrap();
    }
    // No reclaim_now here: wait (with a deadline) for the thread.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let usage = spool.usage();
        if on_disk(dir.path()) <= 2 * usage.live_bytes + SEGMENT {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the reclaim thread did not bring {} bytes under the bound ({usage:?})",
            on_disk(dir.path())
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(spool.messages().len(), 1);
    assert_eq!(spool.body(keep).unwrap(), body(0, 1000));
}

#[test]
fn a_full_filesystem_refuses_without_leaving_a_replayable_record_and_recovers_by_itself() {
    let Some(fs) = Tmpfs::mount(4).unwrap() else {
        return;
    };
    let dir = fs.path().join("spool");
    // No outcome reserve: the writes themselves must hit ENOSPC.
    let options = SpoolOptions {
        segment_bytes: 1 << 20,
        outcome_reserve_bytes: 0,
        ..SpoolOptions::default()
    };
    let (spool, _) = Spool::open(&dir, options.clone()).unwrap();
    let mut acked = Vec::new();
    let mut refused = Vec::new();
    // Fill it: bursts of four concurrent 150 KB messages, so some batches
    // fail part-way through their write.
    for round in 0..20 {
        let commits: Vec<_> = (0..4)
            .map(|i| spool.enqueue(envelope(round * 4 + i, 1), &body(round * 4 + i, 150_000)))
            .collect();
        for (id, c) in commits {
            match c.wait() {
                Ok(()) => acked.push(id),
                Err(e) => {
                    assert!(matches!(e, SpoolError::NoSpace(_)), "{e:?}");
                    refused.push(id);
                }
            }
        }
    }
    println!(
        "full tmpfs: {} message(s) acknowledged, {} refused with NoSpace",
        acked.len(),
        refused.len()
    );
    assert!(!acked.is_empty() && !refused.is_empty());
    // Nothing of a refused message is on disk: the spool reads clean and
    // holds exactly the acknowledged ones.
    let check = Spool::check(&dir).unwrap();
    assert!(check.damage.is_empty(), "{:?}", check.damage);
    let mut on_disk: Vec<MessageId> = check.messages.iter().map(|m| m.id).collect();
    on_disk.sort();
    assert_eq!(on_disk, acked);

    // Deliver half of them: once their segments go, there is room again and
    // the same spool (no restart) accepts mail.
    let half = acked.len() / 2;
    for id in &acked[..half] {
        spool.finish(*id, &[0]).wait().unwrap();
    }
    spool.reclaim_now();
    let (late, commit) = spool.enqueue(envelope(999, 1), &body(999, 150_000));
    commit.wait().unwrap();
    drop(spool);

    let (spool, queued) = Spool::open(&dir, options.clone()).unwrap();
    let mut left: Vec<MessageId> = queued.iter().map(|m| m.id).collect();
    left.sort();
    let mut want: Vec<MessageId> = acked[half..].to_vec();
    want.push(late);
    want.sort();
    assert_eq!(left, want, "refused messages never come back");
    for id in &refused {
        assert!(spool.message(*id).is_none());
    }
    drop(spool);

    // With the default outcome reserve, new messages stop before the disk
    // is full while outcomes still get written.
    fs.fill(512 << 10).unwrap();
    let reserve = SpoolOptions {
        outcome_reserve_bytes: 1 << 20,
        ..options
    };
    let (spool, queued) = Spool::open(&dir, reserve.clone()).unwrap();
    let err = spool
        .enqueue(envelope(1000, 1), &body(1000, 1000))
        .1
        .wait()
        .unwrap_err();
    assert!(
        err.to_string().contains("kept free for delivery outcomes"),
        "{err}"
    );
    spool.finish(queued[0].id, &[0]).wait().unwrap();
    assert!(spool.outcomes_storable().is_ok());
    fs.fill(0).unwrap();
    let paused = spool.outcomes_storable().unwrap_err();
    assert!(paused.contains("free"), "{paused}");
    // A restart on the full disk still opens (no new segment can be made:
    // the writer goes on in the newest one) with every message.
    let before = queued.len() - 1;
    drop(spool);
    let (spool, queued) = Spool::open(&dir, reserve).unwrap();
    assert_eq!(queued.len(), before);
    fs.free().unwrap();
    spool
        .enqueue(envelope(1001, 1), &body(1001, 1000))
        .1
        .wait()
        .unwrap();
}
