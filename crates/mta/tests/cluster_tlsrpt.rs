//! TLS-RPT in a cluster against a real PostgreSQL (the testkit's private
//! server): three nodes' counts for one domain and day are summed in the
//! database; the three report tasks, running their sending rounds at once,
//! send one report with the summed counts (to the sink, by mail, as in
//! `tlsrpt_send.rs`); a batch written while the server is down stays in
//! the outbox and arrives once after the server is back; a batch applied
//! whose acknowledgement was lost is not added again; the TLS reports
//! each node received are listed by any node.

mod engine_support;

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine_support::*;
use mail_parser::MimeHeaders;
use portcullis_dane::dns::ResolverSettings;
use portcullis_mta::alerts::AlertSink;
use portcullis_mta::clock::TestClock;
use portcullis_mta::cluster::tlsrpt::ClusterReports;
use portcullis_mta::cluster::tlsrpt::outbox::{Outbox, outbox_dir};
use portcullis_mta::cluster::tlsrpt::{db, received};
use portcullis_mta::cluster::{Cluster, ClusterSettings};
use portcullis_mta::config::{ClusterConfig, DatabaseTls};
use portcullis_mta::engine::Engine;
use portcullis_mta::maillog::MailLog;
use portcullis_mta::tlsrpt::counts::Pending;
use portcullis_mta::tlsrpt::{
    AggregateStore, DomainDay, FailureKey, FileStore, PolicyKey, Reporting, Session,
    TlsReportSettings, UtcDay,
};
use portcullis_mta::tlsrpt_inbox::{InboxSettings, Intake, ReportInbox, ReportSource, ReportStore};
use portcullis_testkit::dns_zone::ZoneBuilder;
use portcullis_testkit::postgres::{PostgresOptions, PostgresServer};

const DOMAIN: &str = "dest.test";
const REPORTS_TO: &str = "tlsrpt@reports.test";
const PATIENCE: Duration = Duration::from_secs(30);

fn node(url: &str, name: &str, data_dir: &Path) -> Cluster {
    let settings = ClusterSettings::new(
        &ClusterConfig {
            database: url.to_owned(),
            node: name.into(),
            database_tls: DatabaseTls::Off,
            poll_seconds: 1,
            heartbeat_seconds: 1,
            timeout_seconds: 2,
        },
        data_dir.to_owned(),
        Arc::new(rustls::RootCertStore::empty()),
        Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
    )
    .unwrap();
    Cluster::new(settings).unwrap()
}

fn policy_key() -> PolicyKey {
    PolicyKey {
        policy_type: "sts".into(),
        policy_string: vec!["version: STSv1".into(), "mode: enforce".into()],
        mx_host: vec!["mx.dest.test".into()],
    }
}

fn failure_key() -> FailureKey {
    FailureKey {
        result_type: "certificate-expired".into(),
        sending_mta_ip: Some("192.0.2.1".parse().unwrap()),
        receiving_mx_hostname: Some("mx.dest.test".into()),
        receiving_mx_helo: None,
        receiving_ip: None,
    }
}

/// `ok` successful and `failed` failed sessions of `DOMAIN` on `day`.
fn counts(day: UtcDay, ok: usize, failed: usize) -> Pending {
    let mut d = DomainDay::default();
    for _ in 0..ok {
        d.count(Session {
            policy: policy_key(),
            failure: None,
        });
    }
    for _ in 0..failed {
        d.count(Session {
            policy: policy_key(),
            failure: Some(failure_key()),
        });
    }
    let mut p = Pending::new();
    p.insert((day, DOMAIN.to_owned()), d);
    p
}

/// The database's sums for `DOMAIN` on `day`: successful, failed, and the
/// failed sessions under the failure key.
fn sums(pg: &PostgresServer, day: UtcDay) -> String {
    pg.psql(&format!(
        "SELECT p.successful || ' ' || p.failed || coalesce(' ' || f.sessions, '')
         FROM tlsrpt_policy_count p LEFT JOIN tlsrpt_failure_count f USING (day, policy_domain, policy)
         WHERE p.day = '{day}' AND p.policy_domain = '{DOMAIN}'"
    ))
    .unwrap()
}

async fn until<F: FnMut() -> bool>(what: &str, mut done: F) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < PATIENCE, "still waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_counts_are_summed_and_reported_once() {
    let pg = PostgresServer::start(PostgresOptions::default()).unwrap();
    let day = UtcDay::parse("2026-11-30").unwrap();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let names = ["n1", "n2", "n3"];
    let nodes: Vec<Cluster> = names
        .iter()
        .zip(&dirs)
        .map(|(n, d)| node(&pg.url(), n, d.path()))
        .collect();

    // Each node counted its own sessions and pushes them, all at once.
    let reports: Vec<ClusterReports> = nodes
        .iter()
        .map(|c| ClusterReports::new(c.clone(), MailLog::default()))
        .collect();
    for (i, r) in reports.iter().enumerate() {
        r.add(&counts(day, i + 1, 1)).unwrap();
    }
    let (a, b, c) = tokio::join!(reports[0].push(), reports[1].push(), reports[2].push());
    assert_eq!(
        (a.unwrap(), b.unwrap(), c.unwrap()),
        (1, 1, 1),
        "{}",
        pg.log_tail(20)
    );
    for (r, d) in reports.iter().zip(&dirs) {
        assert_eq!(r.waiting().unwrap(), 0);
        assert!(
            std::fs::read_dir(outbox_dir(d.path()))
                .unwrap()
                .next()
                .is_none()
        );
    }
    // 1 + 2 + 3 successful, 1 failed on each node.
    assert_eq!(sums(&pg, day), "6 3 3");
    let loaded = db::load(&nodes[1], day, DOMAIN).await.unwrap().unwrap();
    assert_eq!(loaded.counts.totals(), (6, 3));
    assert_eq!(
        loaded.counts.policies[&policy_key()].failures[&failure_key()],
        3
    );
    assert!(loaded.sent_to.is_empty());

    // The report address of the domain: mail to the sink.
    let sink = Sink::start(SinkOptions::default()).await;
    let ip = Ipv4Addr::LOCALHOST;
    let zone = ZoneBuilder::new()
        .mx(DOMAIN, 10, "mx.dest.test")
        .a("mx.dest.test", ip)
        .mx("reports.test", 10, "mx.reports.test")
        .a("mx.reports.test", ip)
        .txt(
            &format!("_smtp._tls.{DOMAIN}"),
            &format!("v=TLSRPTv1; rua=mailto:{REPORTS_TO}"),
        )
        .start()
        .unwrap();

    // Three engines, started on the day (their tasks' first rounds find
    // nothing due), then half an hour after it ended a round on all three
    // together: while one sends, the others find its turn taken.
    let clock = TestClock::at(day.start() + Duration::from_secs(12 * 3600));
    let mut engines = Vec::new();
    let mut logs = Vec::new();
    for (cluster, dir) in nodes.iter().zip(&dirs) {
        let log = LogCapture::default();
        let mut s = settings(
            dir.path(),
            relay_access("preferred"),
            None,
            policy(
                r#"
                [[destination]]
                domain = "default"
                tls = "preferred"
                "#,
            ),
            rustls::RootCertStore::empty(),
            &log,
        );
        let mut dns = ResolverSettings::new(vec![zone.authoritative_addr()]);
        dns.trust_anchor_file = Some(zone.trust_anchor_file());
        dns.probe_name = Some("test.".into());
        dns.timeout = Duration::from_secs(5);
        s.delivery.dns = Some(dns);
        s.delivery.mx_port = sink.addr.port();
        let engine = Engine::start_in_cluster(s, AlertSink::off(), Some(cluster.clone()))
            .await
            .unwrap();
        engines.push(engine);
        logs.push(log);
    }
    for (engine, dir) in engines.iter().zip(&dirs) {
        engine
            .start_tls_reports(TlsReportSettings {
                reporting: Reporting {
                    organization_name: "Portcullis Test Cluster".into(),
                    contact_info: "mailto:postmaster@gw.test".into(),
                    submitter: "gw.test".into(),
                },
                from: "tls-reports@gw.test".into(),
                dkim: None,
                flush_interval: Duration::from_secs(3600),
                max_delay: Duration::ZERO,
                store_dir: dir.path().join("tls-report"),
                clock: clock.shared(),
            })
            .await;
    }
    clock.set(day.end() + Duration::from_secs(1800));
    let (a, b, c) = tokio::join!(
        engines[0].send_due_tls_reports(),
        engines[1].send_due_tls_reports(),
        engines[2].send_due_tls_reports()
    );
    let asked: Vec<_> = [a, b, c].into_iter().flat_map(|r| r.unwrap()).collect();
    assert!(asked.iter().all(|r| r.outcome.is_ok()), "{asked:?}");
    assert!(asked.len() <= 1, "{asked:?}");

    // Done when the database says so (the sender records it before it
    // gives its turn back); then nobody can send it again.
    let done = || {
        pg.psql(&format!(
            "SELECT array_to_string(sent_to, '|') FROM tlsrpt_report WHERE day = '{day}' AND policy_domain = '{DOMAIN}'"
        ))
        .unwrap()
    };
    until("the report recorded as sent", || {
        done().contains("done: every report address took the report")
    })
    .await;
    assert!(
        done().contains(&format!("mailto:{REPORTS_TO}")),
        "{}",
        done()
    );
    // Another round on every node: nothing more is sent.
    for e in &engines {
        let again = e.send_due_tls_reports().await.unwrap();
        assert!(again.is_empty(), "{again:?}");
    }
    for e in engines {
        e.shutdown(Duration::from_secs(5)).await;
    }
    let mails = sink.received();
    let dump = || {
        logs.iter()
            .map(|l| l.dump())
            .collect::<Vec<_>>()
            .join("\n---\n")
    };
    assert_eq!(mails.len(), 1, "{}", dump());
    let senders: Vec<_> = logs
        .iter()
        .filter(|l| {
            l.find(&["TLS reports: report", "sent to mailto:"])
                .is_some()
        })
        .collect();
    assert_eq!(senders.len(), 1, "{}", dump());

    // The report holds the sums of the three nodes.
    assert!(mails[0].to.iter().any(|t| t.contains(REPORTS_TO)));
    let message = mail_parser::MessageParser::default()
        .parse(&mails[0].body)
        .unwrap();
    let gz = message
        .parts
        .iter()
        .find(|p| {
            p.content_type()
                .is_some_and(|c| c.subtype() == Some("tlsrpt+gzip"))
        })
        .expect("an application/tlsrpt+gzip part")
        .contents()
        .to_vec();
    let report = portcullis_policy::parse_report(&gz, &Default::default()).unwrap();
    assert_eq!(report.report_id, format!("{day}.{DOMAIN}@gw.test"));
    assert_eq!(report.policies.len(), 1);
    let p = &report.policies[0];
    assert_eq!(p.policy.policy_domain, DOMAIN);
    assert_eq!(p.summary.total_successful_session_count, 6);
    assert_eq!(p.summary.total_failure_session_count, 3);
    assert_eq!(p.failure_details.len(), 1);
    assert_eq!(p.failure_details[0].failed_session_count, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_waits_out_a_stopped_server_and_is_added_exactly_once() {
    let mut pg = PostgresServer::start(PostgresOptions::default()).unwrap();
    let day = UtcDay::parse("2026-11-30").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cluster = node(&pg.url(), "n1", dir.path());
    let reports = ClusterReports::new(cluster.clone(), MailLog::default());
    // The schema exists before the server goes away.
    reports.add(&counts(day, 1, 0)).unwrap();
    assert_eq!(reports.push().await.unwrap(), 1);
    assert_eq!(sums(&pg, day), "1 0");

    pg.stop().unwrap();
    reports.add(&counts(day, 2, 1)).unwrap();
    let e = reports.push().await.unwrap_err();
    assert!(e.is_unreachable(), "{e}");
    assert_eq!(reports.waiting().unwrap(), 1);
    assert!(!cluster.is_online());

    pg.start_again().unwrap();
    // The pool may first hand out a connection the restart closed.
    let start = Instant::now();
    loop {
        match reports.push().await {
            Ok(n) => {
                assert_eq!(n, 1);
                break;
            }
            Err(e) => assert!(
                e.is_unreachable() && start.elapsed() < PATIENCE,
                "{e}: {}",
                pg.log_tail(20)
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(reports.waiting().unwrap(), 0);
    assert_eq!(reports.push().await.unwrap(), 0);
    assert_eq!(sums(&pg, day), "3 1 1");

    // A lost acknowledgement: the database added the batch, the node did
    // not hear it and pushes the same batch again.
    let outbox = Outbox::new(outbox_dir(dir.path()), "n1");
    let id = outbox.put(&counts(day, 5, 2)).unwrap();
    let waiting = outbox.waiting().unwrap();
    assert_eq!(waiting.len(), 1);
    let batch = outbox.read(&waiting[0]).unwrap();
    assert_eq!(batch.id, id);
    assert!(db::apply(&cluster, &batch).await.unwrap());
    assert_eq!(sums(&pg, day), "8 3 3");
    assert!(!db::apply(&cluster, &batch).await.unwrap());
    assert_eq!(reports.push().await.unwrap(), 1);
    assert_eq!(reports.waiting().unwrap(), 0);
    assert_eq!(sums(&pg, day), "8 3 3");
    assert_eq!(
        pg.psql(&format!(
            "SELECT count(*) FROM tlsrpt_applied WHERE batch = '{id}'"
        ))
        .unwrap(),
        "1"
    );
}

/// A report another organisation sent us about `domain`, gzipped.
fn received_report(org: &str, domain: &str) -> Vec<u8> {
    let day = UtcDay::parse("2026-11-29").unwrap();
    let who = Reporting {
        organization_name: org.into(),
        contact_info: format!("mailto:tls@{org}"),
        submitter: org.into(),
    };
    let counts = counts(day, 4, 2).remove(&(day, DOMAIN.to_owned())).unwrap();
    portcullis_mta::tlsrpt::report::build(&who, day, domain, &counts)
        .unwrap()
        .gzip
}

fn inbox(dir: &Path) -> ReportInbox {
    ReportInbox::open(
        dir,
        InboxSettings {
            addresses: Vec::new(),
            https: true,
            limits: Default::default(),
        },
    )
    .unwrap()
}

fn take(inbox: &ReportInbox, bytes: &[u8]) -> String {
    let source = ReportSource {
        via: "https".into(),
        peer: "192.0.2.7".into(),
        detail: "application/tlsrpt+gzip".into(),
    };
    match inbox.take(bytes, &source).unwrap() {
        Intake::Stored { id, .. } => id,
        Intake::Refused { reason, .. } => panic!("refused: {reason}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn received_reports_of_every_node_are_listed_by_any_node() {
    let mut pg = PostgresServer::start(PostgresOptions::default()).unwrap();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (n1, n2) = (
        node(&pg.url(), "n1", d1.path()),
        node(&pg.url(), "n2", d2.path()),
    );
    let first = take(
        &inbox(d1.path()),
        &received_report("one.example", "gw.test"),
    );
    let store1 = ReportStore::at(d1.path());
    let mut copied1 = HashSet::new();
    assert_eq!(
        received::copy_new(&n1, &store1, &mut copied1)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        received::copy_new(&n1, &store1, &mut copied1)
            .await
            .unwrap(),
        0
    );
    // A node that restarts (nothing remembered) finds it there already.
    assert_eq!(
        received::copy_new(&n1, &store1, &mut HashSet::new())
            .await
            .unwrap(),
        0
    );
    let (theirs, damaged) = received::reports(&n2).await.unwrap();
    assert!(damaged.is_empty(), "{damaged:?}");
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].0.id, first);
    assert_eq!(theirs[0].1.organization_name, "one.example");
    assert_eq!(
        received::report(&n2, &first)
            .await
            .unwrap()
            .unwrap()
            .source
            .peer,
        "192.0.2.7"
    );

    // Taken in while the database is away: kept on the node's disk, and
    // copied once the database is back.
    pg.stop().unwrap();
    let second = take(
        &inbox(d2.path()),
        &received_report("two.example", "gw.test"),
    );
    let store2 = ReportStore::at(d2.path());
    let mut copied2 = HashSet::new();
    let e = received::copy_new(&n2, &store2, &mut copied2)
        .await
        .unwrap_err();
    assert!(e.is_unreachable(), "{e}");
    pg.start_again().unwrap();
    let start = Instant::now();
    loop {
        match received::copy_new(&n2, &store2, &mut copied2).await {
            Ok(n) => {
                assert_eq!(n, 1);
                break;
            }
            Err(e) => assert!(e.is_unreachable() && start.elapsed() < PATIENCE, "{e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ids: Vec<String> = received::reports(&n1)
        .await
        .unwrap()
        .0
        .into_iter()
        .map(|(s, _)| s.id)
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&first) && ids.contains(&second), "{ids:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mirror_task_copies_a_stored_report_and_stops() {
    let pg = PostgresServer::start(PostgresOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let n1 = node(&pg.url(), "n1", dir.path());
    let mirror = received::ReceivedMirror::start(n1.clone());
    let id = take(
        &inbox(dir.path()),
        &received_report("three.example", "gw.test"),
    );
    // The table exists once the mirror's first query migrated the schema.
    let copied_by = || {
        pg.psql(&format!(
            "SELECT received_by FROM tlsrpt_received WHERE id = '{id}'"
        ))
        .unwrap_or_default()
    };
    let start = Instant::now();
    while copied_by() != "n1" {
        assert!(
            start.elapsed() < PATIENCE,
            "the mirror never copied {id}: {}",
            pg.log_tail(10)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    mirror.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_gateways_unsent_counts_join_the_cluster_once() {
    let pg = PostgresServer::start(PostgresOptions::default()).unwrap();
    let day = UtcDay::parse("2026-11-30").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("tls-report");
    let local = FileStore::new(&store_dir);
    let (d, mut sent) = (counts(day, 2, 1), counts(day, 7, 0));
    local
        .add(day, DOMAIN, &d[&(day, DOMAIN.to_owned())])
        .unwrap();
    let sent = sent.remove(&(day, DOMAIN.to_owned())).unwrap();
    local.add(day, "sent.test", &sent).unwrap();
    local
        .mark_sent(
            day,
            "sent.test",
            "done: every report address took the report",
        )
        .unwrap();
    let reports = ClusterReports::new(node(&pg.url(), "n1", dir.path()), MailLog::default());
    let finished = ["done: every report address took the report"];
    assert_eq!(reports.adopt_local(&store_dir, day, &finished).unwrap(), 1);
    let file = store_dir.join(format!("{day}/{DOMAIN}.json"));
    assert!(!file.exists());
    // A crash after the batch was written, before the file was renamed:
    // moved again under the same id.
    std::fs::rename(
        store_dir.join(format!("{day}/{DOMAIN}.json.in-cluster")),
        &file,
    )
    .unwrap();
    assert_eq!(reports.adopt_local(&store_dir, day, &finished).unwrap(), 1);
    assert_eq!(reports.adopt_local(&store_dir, day, &finished).unwrap(), 0);
    assert_eq!(reports.waiting().unwrap(), 2);
    assert_eq!(reports.push().await.unwrap(), 2);
    assert_eq!(sums(&pg, day), "2 1 1");
    // The report already sent stays with the single gateway's files.
    assert!(store_dir.join(format!("{day}/sent.test.json")).exists());
    assert_eq!(
        pg.psql("SELECT count(*) FROM tlsrpt_report WHERE policy_domain = 'sent.test'")
            .unwrap(),
        "0"
    );
}
