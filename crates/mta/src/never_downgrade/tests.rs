use std::time::{Duration, UNIX_EPOCH};

use super::*;
use crate::clock::TestClock;

const DAY: Duration = Duration::from_secs(86_400);

fn clock() -> TestClock {
    TestClock::at(UNIX_EPOCH + Duration::from_secs(1_800_000_000))
}

#[test]
fn memory_lasts_its_days_then_expires() {
    let c = clock();
    let (m, problem) = NeverDowngrade::open(Box::new(OnlyInMemory), c.shared());
    assert!(problem.is_none());
    assert!(m.active("example.com").is_none());
    assert!(
        m.remember("Example.COM", AuthMethod::Dane, 30 * DAY)
            .unwrap()
    );
    let r = m.active("example.com").expect("remembered");
    assert_eq!(r.method, AuthMethod::Dane);
    assert_eq!(r.since, 1_800_000_000);
    c.advance(30 * DAY - Duration::from_secs(1));
    assert!(m.active("example.com").is_some(), "still in force");
    c.advance(Duration::from_secs(1));
    assert!(m.active("example.com").is_none(), "expired after 30 days");
    assert!(m.list().is_empty());
}

#[test]
fn deliveries_refresh_at_most_hourly_and_keep_since() {
    let c = clock();
    let (m, _) = NeverDowngrade::open(Box::new(OnlyInMemory), c.shared());
    assert!(m.remember("a.example", AuthMethod::Pkix, 2 * DAY).unwrap());
    c.advance(Duration::from_secs(600));
    assert!(!m.remember("a.example", AuthMethod::Pkix, 2 * DAY).unwrap());
    // A different method is written at once.
    assert!(m.remember("a.example", AuthMethod::Dane, 2 * DAY).unwrap());
    c.advance(REFRESH_EVERY);
    assert!(m.remember("a.example", AuthMethod::Dane, 2 * DAY).unwrap());
    let r = m.active("a.example").unwrap();
    assert_eq!(r.since, 1_800_000_000, "since is the first delivery");
    assert_eq!(r.until, 1_800_000_000 + 600 + 3600 + 2 * 86_400);
    // Expired, then delivered again: a new memory.
    c.advance(3 * DAY);
    assert!(m.remember("a.example", AuthMethod::Dane, 2 * DAY).unwrap());
    assert_eq!(
        m.active("a.example").unwrap().since,
        1_800_000_000 + 600 + 3600 + 3 * 86_400
    );
}

#[test]
fn forget_one_or_all() {
    let c = clock();
    let (m, _) = NeverDowngrade::open(Box::new(OnlyInMemory), c.shared());
    for d in ["a.example", "b.example", "c.example"] {
        m.remember(d, AuthMethod::MtaSts, DAY).unwrap();
    }
    assert_eq!(m.forget(Some("B.example.")).unwrap(), 1);
    assert_eq!(m.forget(Some("b.example")).unwrap(), 0);
    assert_eq!(m.list().len(), 2);
    assert_eq!(m.forget(None).unwrap(), 2);
    assert!(m.list().is_empty());
}

#[test]
fn file_store_survives_a_restart_and_drops_expired_entries() {
    let dir = tempfile::tempdir().unwrap();
    let c = clock();
    {
        let (m, problem) =
            NeverDowngrade::open(Box::new(FileStore::in_dir(dir.path())), c.shared());
        assert!(problem.is_none());
        m.remember("keep.example", AuthMethod::Dane, 30 * DAY)
            .unwrap();
        m.remember("short.example", AuthMethod::Pkix, DAY).unwrap();
    }
    c.advance(2 * DAY);
    let (m, problem) = NeverDowngrade::open(Box::new(FileStore::in_dir(dir.path())), c.shared());
    assert!(problem.is_none());
    let rows = m.list();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].domain, "keep.example");
    assert_eq!(rows[0].entry.method, AuthMethod::Dane);
    assert_eq!(rows[0].entry.since, 1_800_000_000);
    assert!(!dir.path().join("never-downgrade.json.tmp").exists());
}

#[test]
fn damaged_file_is_refused_and_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(FileStore::FILE_NAME);
    for bad in [
        &b"{\"a.example\": {\"method\": \"dane\""[..],
        b"{\"a.example\": {\"method\": \"carrier-pigeon\", \"since\": 1, \"last\": 1, \"until\": 9}}",
        b"{\"not a..domain\": {\"method\": \"dane\", \"since\": 1, \"last\": 1, \"until\": 9}}",
        b"\xff\xfe",
    ] {
        std::fs::write(&file, bad).unwrap();
        let (m, problem) = NeverDowngrade::open(Box::new(FileStore::in_dir(dir.path())), clock().shared());
        let problem = problem.expect("refused").to_string();
        assert!(problem.contains("refused"), "{problem}");
        assert!(problem.contains("moved aside"), "{problem}");
        assert!(m.list().is_empty());
        assert!(!file.exists(), "the damaged file is set aside");
        let aside: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".bad-"))
            .collect();
        assert!(!aside.is_empty());
        let kept = std::fs::read(aside[0].path()).unwrap();
        assert_eq!(kept, bad, "nothing is lost");
        std::fs::remove_file(aside[0].path()).unwrap();
    }
}

#[test]
fn adopting_the_cluster_rows_keeps_what_changed_here_since_the_snapshot() {
    let c = clock();
    let (m, _) = NeverDowngrade::open(Box::new(OnlyInMemory), c.shared());
    m.remember("kept.example", AuthMethod::Pkix, 2 * DAY)
        .unwrap();
    m.remember("forgotten.example", AuthMethod::Pkix, 2 * DAY)
        .unwrap();
    m.remember("dropped.example", AuthMethod::Pkix, 2 * DAY)
        .unwrap();
    let (_, snapshot) = m.snapshot();
    // After the snapshot: one learned, one forgotten here.
    c.advance(Duration::from_secs(10));
    m.remember("new.example", AuthMethod::Dane, 2 * DAY)
        .unwrap();
    m.forget(Some("forgotten.example")).unwrap();
    // The cluster's rows: another node refreshed kept.example with DANE,
    // dropped.example was forgotten elsewhere (no row), a peer learned
    // peer.example; forgotten.example is still there (deleted next round).
    let row = |method, last| Remembered {
        method,
        since: 1_799_000_000,
        last,
        until: 1_800_000_000 + 3 * DAY.as_secs(),
    };
    let rows: BTreeMap<String, Remembered> = [
        ("kept.example", row(AuthMethod::Dane, 1_800_000_005)),
        ("forgotten.example", row(AuthMethod::Pkix, 1_800_000_000)),
        ("peer.example", row(AuthMethod::MtaSts, 1_800_000_001)),
    ]
    .into_iter()
    .map(|(d, r)| (d.to_owned(), r))
    .collect();
    assert!(m.adopt(&rows, &snapshot).unwrap());
    let domains: Vec<String> = m.list().into_iter().map(|r| r.domain).collect();
    assert_eq!(domains, ["kept.example", "new.example", "peer.example"]);
    assert_eq!(m.active("kept.example").unwrap().method, AuthMethod::Dane);
    assert_eq!(m.active("new.example").unwrap().method, AuthMethod::Dane);
    assert!(!m.adopt(&rows, &snapshot).unwrap(), "nothing changed again");
}

#[test]
fn merged_facts_keep_the_earliest_since_and_the_latest_delivery() {
    let a = Remembered {
        method: AuthMethod::Pkix,
        since: 100,
        last: 200,
        until: 900,
    };
    let b = Remembered {
        method: AuthMethod::Dane,
        since: 150,
        last: 300,
        until: 800,
    };
    let m = a.merged(b);
    assert_eq!(
        m,
        Remembered {
            method: AuthMethod::Dane,
            since: 100,
            last: 300,
            until: 900
        }
    );
    assert_eq!(b.merged(a), m);
}
