//! The spool's public behaviour: what is acknowledged survives reopening,
//! crashes and torn writes; what is finished goes away; damage is reported,
//! never silently dropped.

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use portcullis_mta::spool::{Envelope, EnvelopeFlags, Spool, SpoolError, SpoolOptions};

fn envelope(n: usize, recipients: usize) -> Envelope {
    Envelope {
        sender: format!("sender{n}@example.org"),
        recipients: (0..recipients)
            .map(|r| format!("rcpt{r}@example.com"))
            .collect(),
        received_at: 1_790_000_000 + n as u64,
        flags: EnvelopeFlags {
            requiretls: n.is_multiple_of(2),
            ..EnvelopeFlags::default()
        },
        dsn: Default::default(),
    }
}

fn body(n: usize) -> Vec<u8> {
    format!("Subject: message {n}\r\n\r\n{}\r\n", "x".repeat(n % 300)).into_bytes()
}

fn small_segments() -> SpoolOptions {
    SpoolOptions {
        segment_bytes: 4096,
        ..SpoolOptions::default()
    }
}

fn segment_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".log"))
        .collect();
    names.sort();
    names
}

#[test]
fn acknowledged_messages_and_outcomes_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let mut ids = Vec::new();
    {
        let (spool, queued) = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
        assert!(queued.is_empty());
        for n in 0..20 {
            let (id, commit) = spool.enqueue(envelope(n, 3), &body(n));
            commit.wait().unwrap();
            ids.push(id);
        }
        // Message 0: all recipients done, it leaves the queue. Message 1: one
        // of three done.
        spool.finish(ids[0], &[0, 1, 2]).wait().unwrap();
        spool.finish(ids[1], &[1]).wait().unwrap();
        assert_eq!(spool.messages().len(), 19);
    }
    let (spool, queued) = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
    assert_eq!(queued.len(), 19);
    assert!(queued.iter().all(|m| m.id != ids[0]));
    let one = queued.iter().find(|m| m.id == ids[1]).unwrap();
    assert_eq!(one.pending, vec![0, 2]);
    assert_eq!(*one.envelope, envelope(1, 3));
    for (n, id) in ids.iter().enumerate().skip(1) {
        assert_eq!(spool.body(*id).unwrap(), body(n), "body of message {n}");
    }
    assert!(matches!(
        spool.body(ids[0]),
        Err(SpoolError::UnknownMessage(_))
    ));
}

#[test]
fn concurrent_senders_all_get_durable_acknowledgements() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
    let spool = Arc::new(spool);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let spool = spool.clone();
            std::thread::spawn(move || {
                (0..50)
                    .map(|i| {
                        let n = t * 1000 + i;
                        let (id, commit) = spool.enqueue(envelope(n, 1), &body(n));
                        commit.wait().unwrap();
                        (id, n)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let sent: Vec<_> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let unique: HashSet<_> = sent.iter().map(|(id, _)| *id).collect();
    assert_eq!(unique.len(), 400, "message ids are unique");
    drop(spool);

    let (spool, queued) = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
    assert_eq!(queued.len(), 400);
    for (id, n) in sent {
        assert_eq!(spool.body(id).unwrap(), body(n));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_can_be_awaited() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
    let spool = Arc::new(spool);
    let tasks: Vec<_> = (0..100)
        .map(|n| {
            let spool = spool.clone();
            tokio::spawn(async move {
                let (id, commit) = spool.enqueue(envelope(n, 2), &body(n));
                commit.await.map(|()| id)
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(spool.messages().len(), 100);
}

#[test]
fn a_torn_write_at_the_end_is_cut_and_kept_aside() {
    let dir = tempfile::tempdir().unwrap();
    let (id, last) = {
        let (spool, _) = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
        let (id, commit) = spool.enqueue(envelope(1, 1), &body(1));
        commit.wait().unwrap();
        (id, segment_files(dir.path()).pop().unwrap())
    };
    // Half a record, as if the machine died mid-append.
    let mut file = OpenOptions::new()
        .append(true)
        .open(dir.path().join(&last))
        .unwrap();
    file.write_all(&[40, 0, 0, 0, 1, 2, 3, 4, 1, 9, 9]).unwrap();
    drop(file);

    let (spool, queued) = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(spool.body(id).unwrap(), body(1));
    let kept: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains(".torn-"))
        .collect();
    assert_eq!(kept.len(), 1, "the torn bytes are saved beside the segment");
    assert_eq!(fs::read(dir.path().join(&kept[0])).unwrap().len(), 11);
}

#[test]
fn damage_in_an_older_segment_stops_recovery_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (spool, _) = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
        spool.enqueue(envelope(1, 1), &body(1)).1.wait().unwrap();
    }
    // The reopen starts a new segment, so the first one is now "older".
    drop(Spool::open(dir.path(), SpoolOptions::default()).unwrap());
    let first = segment_files(dir.path()).remove(0);
    let path = dir.path().join(&first);
    let mut bytes = fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    fs::write(&path, &bytes).unwrap();

    let err = Spool::open(dir.path(), SpoolOptions::default()).unwrap_err();
    match &err {
        SpoolError::Corrupt {
            path: p, offset, ..
        } => {
            assert_eq!(p, &path);
            // The first record, right after the 20-byte segment header.
            assert_eq!(*offset, 20);
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(err.to_string().contains(&first), "{err}");
    assert_eq!(
        fs::read(&path).unwrap(),
        bytes,
        "the damaged file is left as it was"
    );
}

#[test]
fn finished_segments_are_deleted_and_pinned_messages_copied_forward() {
    let dir = tempfile::tempdir().unwrap();
    let (pinned, pinned_body) = (0usize, body(0));
    let pinned_id;
    {
        let (spool, _) = Spool::open(dir.path(), small_segments()).unwrap();
        let (id, commit) = spool.enqueue(envelope(pinned, 2), &pinned_body);
        commit.wait().unwrap();
        pinned_id = id;
        spool.finish(pinned_id, &[1]).wait().unwrap();
        // Enough traffic to fill many 4 KiB segments, all of it delivered.
        for n in 1..200 {
            let (id, commit) = spool.enqueue(envelope(n, 1), &body(n));
            commit.wait().unwrap();
            spool.finish(id, &[0]).wait().unwrap();
        }
        // Reclaiming runs in the background; settle it before counting.
        spool.reclaim_now();
        assert!(
            spool.segment_count() <= 4,
            "{} segments remain",
            spool.segment_count()
        );
        assert_eq!(spool.body(pinned_id).unwrap(), pinned_body);
    }
    let (spool, queued) = Spool::open(dir.path(), small_segments()).unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].id, pinned_id);
    assert_eq!(queued[0].pending, vec![0], "recipient 1 stays finished");
    assert_eq!(spool.body(pinned_id).unwrap(), pinned_body);
}

/// Issue 10 item 9: the sender's DSN request (RET, ENVID, NOTIFY, ORCPT)
/// is stored with the message and outlives compaction and a restart.
#[test]
fn dsn_requests_survive_copying_forward_and_reopening() {
    use portcullis_mta::spool::DsnRequest;
    use portcullis_smtp_tls::{Notify, OriginalRecipient, RcptParams, Ret};
    let dir = tempfile::tempdir().unwrap();
    let mut asked = envelope(1, 2);
    asked.dsn = DsnRequest {
        ret: Some(Ret::Headers),
        envid: Some("QQ314159".into()),
        recipients: vec![
            RcptParams {
                notify: Some(Notify::NEVER),
                orcpt: None,
            },
            RcptParams {
                notify: Some(Notify {
                    success: true,
                    failure: true,
                    delay: false,
                }),
                orcpt: Some(OriginalRecipient {
                    addr_type: "rfc822".into(),
                    xtext: "rcpt1+40example.com".into(),
                }),
            },
        ],
    };
    let id;
    {
        let (spool, _) = Spool::open(dir.path(), small_segments()).unwrap();
        let (queued_id, commit) = spool.enqueue(asked.clone(), &body(1));
        commit.wait().unwrap();
        id = queued_id;
        for n in 2..100 {
            let (other, commit) = spool.enqueue(envelope(n, 1), &body(n));
            commit.wait().unwrap();
            spool.finish(other, &[0]).wait().unwrap();
        }
        spool.reclaim_now();
    }
    let (_spool, queued) = Spool::open(dir.path(), small_segments()).unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].id, id);
    assert_eq!(*queued[0].envelope, asked);
}

#[test]
fn ids_never_repeat_after_the_queue_empties() {
    let dir = tempfile::tempdir().unwrap();
    let first = {
        let (spool, _) = Spool::open(dir.path(), small_segments()).unwrap();
        let (id, commit) = spool.enqueue(envelope(1, 1), &body(1));
        commit.wait().unwrap();
        spool.finish(id, &[0]).wait().unwrap();
        id
    };
    let (spool, queued) = Spool::open(dir.path(), small_segments()).unwrap();
    assert!(queued.is_empty());
    let (second, commit) = spool.enqueue(envelope(2, 1), &body(2));
    commit.wait().unwrap();
    assert!(second > first);
}

#[test]
fn a_second_gateway_cannot_open_the_same_spool() {
    let dir = tempfile::tempdir().unwrap();
    let _open = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
    assert!(matches!(
        Spool::open(dir.path(), SpoolOptions::default()),
        Err(SpoolError::Locked(_))
    ));
}

#[test]
fn inspect_reads_a_live_spool_without_changing_it() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
    for n in 0..5 {
        spool.enqueue(envelope(n, 1), &body(n)).1.wait().unwrap();
    }
    let before = segment_files(dir.path());
    let seen = Spool::inspect(dir.path()).unwrap();
    assert_eq!(seen, spool.messages());
    assert_eq!(segment_files(dir.path()), before);
}

#[test]
fn an_unwritable_spool_refuses_messages_instead_of_acknowledging_them() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(dir.path(), small_segments()).unwrap();
    spool.enqueue(envelope(0, 1), &body(0)).1.wait().unwrap();
    // Take the directory away: the next rotation cannot create its segment.
    let moved = dir.path().with_extension("moved");
    fs::rename(dir.path(), &moved).unwrap();
    let mut refused = None;
    for n in 1..100 {
        if let Err(err) = spool.enqueue(envelope(n, 1), &body(n)).1.wait() {
            refused = Some(err);
            break;
        }
    }
    let err = refused.expect("writes into a vanished directory must fail");
    assert!(
        matches!(err, SpoolError::Io { .. } | SpoolError::Failed(_)),
        "{err:?}"
    );
    // A message that needs a new segment is refused as long as none can be
    // made...
    let big = vec![b'x'; 3000];
    assert!(spool.enqueue(envelope(0, 1), &big).1.wait().is_err());
    // ...and accepted again, without a restart, once the directory is back.
    fs::rename(&moved, dir.path()).unwrap();
    spool.enqueue(envelope(0, 1), &big).1.wait().unwrap();
}

/// The child side of the crash test: enqueue until killed, printing each id
/// once its commit resolved. The parent test runs it in a process of its own.
#[test]
#[ignore = "run by nothing_acknowledged_is_lost_when_the_writer_is_killed"]
fn crash_child() {
    let dir = std::env::var("PORTCULLIS_SPOOL_CRASH_DIR").unwrap();
    let (spool, _) = Spool::open(&dir, small_segments()).unwrap();
    let stdout = std::io::stdout();
    for n in 0.. {
        let (id, commit) = spool.enqueue(envelope(n, 2), &body(n));
        commit.wait().unwrap();
        if n % 3 == 0 {
            spool.finish(id, &[0]).wait().unwrap();
        }
        let mut out = stdout.lock();
        writeln!(out, "ack {} {n}", id.get()).unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn nothing_acknowledged_is_lost_when_the_writer_is_killed() {
    for round in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_child", "--ignored", "--nocapture"])
            .env("PORTCULLIS_SPOOL_CRASH_DIR", dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut acknowledged = Vec::new();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let stop_after = 200 + round * 150;
        while acknowledged.len() < stop_after {
            let line = lines.next().expect("child stopped early").unwrap();
            // Other lines are the test harness talking.
            let Some((id, n)) = line.strip_prefix("ack ").and_then(|l| l.split_once(' ')) else {
                continue;
            };
            acknowledged.push((id.parse::<u64>().unwrap(), n.parse::<usize>().unwrap()));
        }
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();

        let (spool, queued) = Spool::open(dir.path(), small_segments()).unwrap();
        let queued: std::collections::HashMap<u64, _> =
            queued.into_iter().map(|m| (m.id.get(), m)).collect();
        for (id, n) in &acknowledged {
            let message = queued
                .get(id)
                .unwrap_or_else(|| panic!("acknowledged message {n} lost in round {round}"));
            let expected: Vec<u32> = if n % 3 == 0 { vec![1] } else { vec![0, 1] };
            assert_eq!(message.pending, expected, "message {n}");
            assert_eq!(spool.body(message.id).unwrap(), body(*n));
        }
    }
}
