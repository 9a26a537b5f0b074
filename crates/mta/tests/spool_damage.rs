//! Damage never hides mail: bytes flipped (or files cut) anywhere in a
//! spool either leave
//! every untouched record recovered, or make the spool refuse to open with
//! the file, the offset and the command that repairs it; `salvage` then
//! keeps every untouched record. Never "opened with fewer messages and no
//! error".
//!
//! Plus the two damages the hostile test of issue 9 found, as fixed cases:
//! a byte flipped in the middle of the newest segment, and a damaged length
//! field in the first record; and a sealed segment cut at a record
//! boundary, which only its missing seal gives away.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use portcullis_mta::spool::fuzzing::{SEGMENT_HEADER, record_spans};
use portcullis_mta::spool::{
    DamageKind, Envelope, EnvelopeFlags, MessageId, QueuedMessage, Schedule, Spool, SpoolError,
    SpoolOptions,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

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
    format!(
        "Subject: message {n}\r\n\r\n{}\r\n",
        "abcdefghij".repeat(5 + n % 30)
    )
    .into_bytes()
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

fn copy_dir(from: &Path, to: &Path) {
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn flip(path: &Path, offset: u64, mask: u8) {
    let mut bytes = fs::read(path).unwrap();
    bytes[offset as usize] ^= mask;
    fs::write(path, bytes).unwrap();
}

/// A spool of 40 one-recipient messages in one segment.
fn forty(dir: &Path) -> Vec<(MessageId, Vec<u8>)> {
    let (spool, _) = Spool::open(dir, SpoolOptions::default()).unwrap();
    (0..40)
        .map(|n| {
            let (id, commit) = spool.enqueue(envelope(n, 1), &body(n));
            commit.wait().unwrap();
            (id, body(n))
        })
        .collect()
}

fn assert_refused_naming(err: SpoolError, file: &Path, offset: u64) {
    let text = err.to_string();
    match err {
        SpoolError::Corrupt {
            path, offset: at, ..
        } => {
            assert_eq!((path.as_path(), at), (file, offset), "{text}");
        }
        other => panic!("expected the spool to refuse, got {other:?}"),
    }
    assert!(text.contains(&file.display().to_string()), "{text}");
    assert!(text.contains("portcullis queue salvage"), "{text}");
}

fn salvage_keeps(dir: &Path, want: &[(MessageId, Vec<u8>)]) {
    let report = Spool::salvage(dir, &SpoolOptions::default()).unwrap();
    assert_eq!(report.messages, want.len());
    assert_eq!(report.moved_aside.len(), 1, "{report:?}");
    assert!(report.moved_aside[0].exists());
    let (spool, queued) = Spool::open(dir, SpoolOptions::default()).unwrap();
    assert_eq!(queued.len(), want.len());
    for (id, b) in want {
        assert_eq!(&spool.body(*id).unwrap(), b);
    }
}

#[test]
fn a_byte_flipped_in_the_middle_of_the_newest_segment_stops_the_start_and_hides_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sent = forty(dir.path());
    let seg = segments(dir.path()).pop().unwrap();
    let spans = record_spans(&fs::read(&seg).unwrap());
    assert_eq!(spans.len(), 40);
    // The newest segment: before the fix, the 19 records after the damage
    // were cut away as a "torn tail" and the gateway ran with 20 of 40.
    let (start, end, _) = spans[20];
    flip(&seg, (start + end) / 2, 0x20);
    let err = Spool::open(dir.path(), SpoolOptions::default()).unwrap_err();
    assert_refused_naming(err, &seg, start);
    assert!(
        Spool::inspect(dir.path()).is_err(),
        "queue list must not show a short queue as if it were whole"
    );
    let check = Spool::check(dir.path()).unwrap();
    assert_eq!(check.messages.len(), 39);
    assert_eq!(check.fatal().count(), 1);
    assert_eq!((check.damage[0].start, check.damage[0].end), (start, end));
    let mut want = sent;
    want.remove(20);
    salvage_keeps(dir.path(), &want);
}

#[test]
fn a_damaged_length_in_the_first_record_stops_the_start_and_hides_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sent = forty(dir.path());
    let seg = segments(dir.path()).pop().unwrap();
    // Before the fix this cut the whole segment: "The queue is empty".
    flip(&seg, SEGMENT_HEADER + 9, 0x7f);
    let err = Spool::open(dir.path(), SpoolOptions::default()).unwrap_err();
    assert_refused_naming(err, &seg, SEGMENT_HEADER);
    let check = Spool::check(dir.path()).unwrap();
    assert_eq!(check.messages.len(), 39);
    assert_eq!(check.damage[0].kind, DamageKind::Records);
    salvage_keeps(dir.path(), &sent[1..]);
}

#[test]
fn an_older_segment_cut_at_a_record_boundary_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let sent = forty(dir.path());
    // Reopening seals the segment and starts a new one: the first is now
    // an older, sealed segment.
    drop(Spool::open(dir.path(), SpoolOptions::default()).unwrap());
    let first = segments(dir.path()).remove(0);
    let spans = record_spans(&fs::read(&first).unwrap());
    assert_eq!(spans.len(), 41, "40 messages and the seal");
    // Cut exactly after record 30: every frame left reads, but the seal and
    // ten messages are gone, and nothing else would say so.
    let cut = spans[30].1;
    fs::OpenOptions::new()
        .write(true)
        .open(&first)
        .unwrap()
        .set_len(cut)
        .unwrap();
    let err = Spool::open(dir.path(), SpoolOptions::default()).unwrap_err();
    assert!(err.to_string().contains("cut short"), "{err}");
    assert_refused_naming(err, &first, cut);
    salvage_keeps(dir.path(), &sent[..31]);
}

/// The pristine spool every property case damages a copy of.
struct Template {
    dir: tempfile::TempDir,
    /// Live messages as a clean open returns them.
    live: Vec<QueuedMessage>,
    bodies: HashMap<MessageId, Vec<u8>>,
}

fn template() -> &'static Template {
    static T: OnceLock<Template> = OnceLock::new();
    T.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let options = SpoolOptions {
            segment_bytes: 2048,
            ..SpoolOptions::default()
        };
        let mut bodies = HashMap::new();
        {
            let (spool, _) = Spool::open(dir.path(), options.clone()).unwrap();
            for n in 0..36 {
                let rcpts = 1 + n % 3;
                let (id, commit) = spool.enqueue(envelope(n, rcpts), &body(n));
                commit.wait().unwrap();
                bodies.insert(id, body(n));
                match n % 4 {
                    0 => spool.finish(id, &(0..rcpts as u32).collect::<Vec<_>>()),
                    1 if rcpts > 1 => spool.finish(id, &[0]),
                    2 => spool.set_schedule(
                        id,
                        Schedule {
                            attempts: 2,
                            next_attempt: 1_800_000_000 + n as u64,
                            last_error: "451 4.4.1 later".into(),
                        },
                    ),
                    _ => spool.set_held(id, n % 8 == 3),
                }
                .wait()
                .unwrap();
            }
        }
        let (_, live) = Spool::open(dir.path(), options).unwrap();
        Template { dir, live, bodies }
    })
}

/// Where the cases run: a tmpfs when there is one (fsync is free there).
fn case_dir() -> tempfile::TempDir {
    match Path::new("/dev/shm").is_dir() {
        true => tempfile::tempdir_in("/dev/shm").unwrap_or_else(|_| tempfile::tempdir().unwrap()),
        false => tempfile::tempdir().unwrap(),
    }
}

#[derive(Default)]
struct Tally {
    cases: AtomicUsize,
    opened: AtomicUsize,
    refused: AtomicUsize,
    salvaged: AtomicUsize,
    no_key: AtomicUsize,
    flips_header: AtomicUsize,
    flips_record: AtomicUsize,
    flips_key_file: AtomicUsize,
    lost_touched: AtomicUsize,
    cuts: AtomicUsize,
    /// Distinct (file, offset) pairs flipped.
    offsets: std::sync::Mutex<BTreeSet<(usize, u64)>>,
}

/// Every untouched live message is there exactly as it was; nothing
/// appears that was never queued.
fn assert_recovered(
    t: &Template,
    touched: &BTreeSet<u64>,
    spool: &Spool,
    queued: &[QueuedMessage],
    tally: &Tally,
) {
    for want in &t.live {
        let got = queued.iter().find(|m| m.id == want.id);
        if touched.contains(&want.id.get()) {
            if got.is_none() {
                tally.lost_touched.fetch_add(1, Ordering::Relaxed);
            }
            continue;
        }
        let got = got.unwrap_or_else(|| panic!("untouched message {} lost", want.id));
        assert_eq!(got, want, "untouched message {} changed", want.id);
    }
    for m in queued {
        let body = t
            .bodies
            .get(&m.id)
            .expect("a message that was never queued appeared");
        assert_eq!(&spool.body(m.id).unwrap(), body);
    }
}

/// One damage: flip `mask` into a byte, or (`mask == 0`) cut the file
/// there.
fn run_case(flips: &[(usize, u64, u8)], tally: &Tally) {
    let t = template();
    let dir = case_dir();
    copy_dir(t.dir.path(), dir.path());
    let mut files = segments(dir.path());
    files.push(dir.path().join("key"));
    let spans: Vec<Vec<(u64, u64, u64)>> = files
        .iter()
        .map(|f| record_spans(&fs::read(f).unwrap()))
        .collect();
    let mut touched = BTreeSet::new();
    let mut headers_hit = BTreeSet::new();
    for &(file, seed, mask) in flips {
        let file = file % files.len();
        let len = fs::metadata(&files[file]).unwrap().len();
        if len == 0 {
            continue;
        }
        let at = seed % len;
        let cut = mask == 0;
        if cut {
            fs::OpenOptions::new()
                .write(true)
                .open(&files[file])
                .unwrap()
                .set_len(at)
                .unwrap();
            tally.cuts.fetch_add(1, Ordering::Relaxed);
        } else {
            flip(&files[file], at, mask);
            tally.offsets.lock().unwrap().insert((file, at));
        }
        if file + 1 == files.len() {
            tally.flips_key_file.fetch_add(1, Ordering::Relaxed);
            headers_hit.insert(file);
            continue;
        }
        if at < SEGMENT_HEADER {
            tally.flips_header.fetch_add(1, Ordering::Relaxed);
            headers_hit.insert(file);
        } else {
            tally.flips_record.fetch_add(1, Ordering::Relaxed);
        }
        // A flip touches the record it lands in; a cut, every record it
        // removes or shortens.
        for (start, end, id) in &spans[file] {
            if (*start..*end).contains(&at) || (cut && *end > at) {
                touched.insert(*id);
            }
        }
    }
    tally.cases.fetch_add(1, Ordering::Relaxed);
    let options = SpoolOptions::default();
    match Spool::open(dir.path(), options.clone()) {
        Ok((spool, queued)) => {
            tally.opened.fetch_add(1, Ordering::Relaxed);
            assert_recovered(t, &touched, &spool, &queued, tally);
        }
        Err(err) => {
            tally.refused.fetch_add(1, Ordering::Relaxed);
            let text = err.to_string();
            let SpoolError::Corrupt { path, offset, .. } = &err else {
                panic!("a damaged spool must refuse with Corrupt, got {err:?}");
            };
            assert!(*offset <= fs::metadata(path).unwrap().len(), "{text}");
            assert!(text.contains("portcullis queue salvage"), "{text}");
            // Salvage needs the key: from the key file or any segment header.
            let key_readable = headers_hit.len() < files.len();
            match Spool::salvage(dir.path(), &options) {
                Ok(_) => {
                    tally.salvaged.fetch_add(1, Ordering::Relaxed);
                    let (spool, queued) = Spool::open(dir.path(), options).unwrap();
                    assert_recovered(t, &touched, &spool, &queued, tally);
                }
                Err(e) if !key_readable => {
                    tally.no_key.fetch_add(1, Ordering::Relaxed);
                    assert!(e.to_string().contains("key"), "{e}");
                }
                Err(e) => panic!("salvage failed although the key was readable: {e}"),
            }
        }
    }
}

#[test]
fn flipped_bytes_anywhere_either_lose_nothing_untouched_or_stop_the_start() {
    let tally = Tally::default();
    // Cases from PROPTEST_CASES (default 256); no regression file: every
    // generated case is a valid case, and a failure prints its input.
    let mut runner = TestRunner::new(Config {
        failure_persistence: None,
        ..Config::default()
    });
    // Mostly flips; about one damage in eight is a cut (mask 0).
    let damage = (
        0usize..64,
        any::<u64>(),
        prop_oneof![7 => 1u8..=255, 1 => Just(0u8)],
    );
    let flips = proptest::collection::vec(damage, 1..=4);
    runner
        .run(&flips, |flips| {
            run_case(&flips, &tally);
            Ok(())
        })
        .unwrap();
    let get = |a: &AtomicUsize| a.load(Ordering::Relaxed);
    let mut names = segments(template().dir.path());
    names.push(template().dir.path().join("key"));
    let files = names.len();
    let bytes: u64 = names.iter().map(|f| fs::metadata(f).unwrap().len()).sum();
    let distinct = tally.offsets.lock().unwrap().len();
    println!(
        "byte flips: {distinct} distinct offsets of the {bytes} bytes flipped at least once; \
         {} cases over {files} files ({} live messages); {} opened, {} refused \
         ({} salvaged, {} without a readable key); flips in segment headers {}, in records {}, \
         in the key file {} ({} of all damages were cuts); touched messages missing after \
         open/salvage: {}",
        get(&tally.cases),
        template().live.len(),
        get(&tally.opened),
        get(&tally.refused),
        get(&tally.salvaged),
        get(&tally.no_key),
        get(&tally.flips_header),
        get(&tally.flips_record),
        get(&tally.flips_key_file),
        get(&tally.cuts),
        get(&tally.lost_touched),
    );
    // Both outcomes occur (about one case in sixteen opens): with the
    // default 256 cases, missing either would mean the generator went blind.
    if get(&tally.cases) >= 256 {
        assert!(get(&tally.refused) > 0 && get(&tally.opened) > 0);
    }
}
