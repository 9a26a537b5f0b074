//! What nodes learn and alert about, shared through a real PostgreSQL
//! (the testkit's private server): never-downgrade memory and STARTTLS
//! exemptions learned on one node apply on the others after their sync,
//! forgetting and clearing are cluster-wide, the same alert raised on three
//! nodes is delivered once naming the node, and with the database stopped
//! alerts are still delivered and what was learned is pushed once it is
//! back. Several `Cluster` handles with different node names against one
//! server stand for several nodes.

mod alerts_support;

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use alerts_support::{Log, Receivers, WAIT, hooks_for_key};
use portcullis_mta::alerts::{Alert, AlertClass, AlertService, Severity};
use portcullis_mta::cluster::learned::{Learned, LearnedSync};
use portcullis_mta::cluster::{Cluster, ClusterSettings};
use portcullis_mta::config::{ClusterConfig, DatabaseTls};
use portcullis_mta::maillog::MailLog;
use portcullis_mta::never_downgrade::{AuthMethod, FileStore, NeverDowngrade};
use portcullis_policy::{DomainName, HopHost, TlsExemptions};
use portcullis_testkit::postgres::{PostgresOptions, PostgresServer};

fn cluster(pg: &PostgresServer, node: &str, data_dir: &Path) -> Cluster {
    let settings = ClusterSettings::new(
        &ClusterConfig {
            database: pg.url(),
            node: node.into(),
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

/// One node's learned state, kept in its own data directory, with its
/// sync task running.
struct Node {
    dir: tempfile::TempDir,
    memory: Arc<NeverDowngrade>,
    exemptions: Arc<Mutex<TlsExemptions>>,
    sync: Option<LearnedSync>,
}

impl Node {
    fn start(pg: &PostgresServer, name: &str) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let mut node = Node {
            memory: open_memory(dir.path()),
            dir,
            exemptions: Arc::default(),
            sync: None,
        };
        node.restart_sync(pg, name);
        node
    }

    /// A new sync (and memory read from the node's file), as after a
    /// restart of the node.
    fn restart_sync(&mut self, pg: &PostgresServer, name: &str) {
        let learned = Learned::new(
            cluster(pg, name, self.dir.path()),
            self.memory.clone(),
            self.exemptions.clone(),
            MailLog::default(),
        );
        self.sync = Some(LearnedSync::start(learned));
    }

    async fn stop(&mut self) {
        if let Some(s) = self.sync.take() {
            s.stop().await;
        }
    }

    fn exempt(&self, host: &HopHost) -> bool {
        self.exemptions
            .lock()
            .unwrap()
            .is_exempt(host, SystemTime::now())
    }
}

fn open_memory(dir: &Path) -> Arc<NeverDowngrade> {
    let (memory, problem) = NeverDowngrade::open(
        Box::new(FileStore::in_dir(dir)),
        portcullis_mta::clock::system(),
    );
    assert!(problem.is_none(), "{problem:?}");
    Arc::new(memory)
}

const MONTH: Duration = Duration::from_secs(30 * 86400);

/// Polls `cond` until it holds, failing with `what` after [`WAIT`].
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn host(name: &str) -> HopHost {
    HopHost::Name(DomainName::parse(name).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_downgrade_learned_on_one_node_applies_on_the_others_and_forget_is_cluster_wide() {
    let pg = PostgresServer::start(PostgresOptions::default()).unwrap();
    let mut n1 = Node::start(&pg, "n1");
    let mut n2 = Node::start(&pg, "n2");
    let mut n3 = Node::start(&pg, "n3");

    assert!(
        n1.memory
            .remember("Example.NET", AuthMethod::Dane, MONTH)
            .unwrap()
    );
    eventually("n2 and n3 have n1's entry", || {
        n2.memory.active("example.net").is_some() && n3.memory.active("example.net").is_some()
    })
    .await;
    let there = n2.memory.active("example.net").unwrap();
    assert_eq!(there.method, AuthMethod::Dane);
    assert_eq!(there, n1.memory.active("example.net").unwrap());
    // n2 keeps its durable copy: its file has the entry.
    let file = std::fs::read_to_string(n2.dir.path().join(FileStore::FILE_NAME)).unwrap();
    assert!(file.contains("example.net"), "{file}");
    assert_eq!(
        pg.psql("SELECT domain || ' ' || method || ' ' || learned_by FROM never_downgrade")
            .unwrap()
            .trim(),
        "example.net dane n1"
    );

    // Forgotten on n2: gone on n1 and n3, and in the database.
    assert_eq!(n2.memory.forget(Some("example.net")).unwrap(), 1);
    eventually("n1 and n3 forgot it", || {
        n1.memory.active("example.net").is_none() && n3.memory.active("example.net").is_none()
    })
    .await;
    assert_eq!(
        pg.psql("SELECT count(*) FROM never_downgrade")
            .unwrap()
            .trim(),
        "0"
    );
    // And it stays forgotten (no node pushes it back at its next rounds).
    n3.memory
        .remember("other.example", AuthMethod::MtaSts, MONTH)
        .unwrap();
    eventually("n1 has n3's later entry", || {
        n1.memory.active("other.example").is_some()
    })
    .await;
    assert!(n1.memory.active("example.net").is_none());
    assert!(n2.memory.active("example.net").is_none());

    for n in [&mut n1, &mut n2, &mut n3] {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_exemptions_learned_on_one_node_apply_on_the_others_and_clearing_is_cluster_wide()
{
    let pg = PostgresServer::start(PostgresOptions::default()).unwrap();
    let mut n1 = Node::start(&pg, "n1");
    let mut n2 = Node::start(&pg, "n2");
    let mx = host("mx.example.net");
    let ip = HopHost::ip(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)));
    let until = SystemTime::now() + Duration::from_secs(3600);
    {
        let mut ex = n1.exemptions.lock().unwrap();
        ex.record(mx.clone(), until);
        ex.record(ip.clone(), until);
    }
    eventually("n2 exempts both hosts", || n2.exempt(&mx) && n2.exempt(&ip)).await;
    let expiry = n2.exemptions.lock().unwrap().expiry(&mx).unwrap();
    let diff = until
        .duration_since(expiry)
        .unwrap_or_else(|e| e.duration());
    assert!(
        diff < Duration::from_secs(1),
        "expiry carried over: {diff:?}"
    );

    // Cleared on n2 (as `ctl tls exemptions clear` does): gone on n1.
    n2.exemptions.lock().unwrap().clear_all();
    eventually("n1 cleared them too", || !n1.exempt(&mx) && !n1.exempt(&ip)).await;
    assert_eq!(
        pg.psql("SELECT count(*) FROM tls_exemption")
            .unwrap()
            .trim(),
        "0"
    );
    n1.stop().await;
    n2.stop().await;
}

fn alert(key: &str) -> Alert {
    Alert::new(
        AlertClass::Dane,
        Severity::Warning,
        key,
        "Mail to example.net cannot be delivered: every MX host failed DANE.",
    )
}

struct AlertNode {
    _dir: tempfile::TempDir,
    service: AlertService,
    log: Log,
    cluster: Cluster,
}

fn alert_node(pg: &PostgresServer, r: &Receivers, name: &str) -> AlertNode {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::default();
    let service = AlertService::start(
        r.settings(dir.path()),
        portcullis_mta::clock::system(),
        log.mail_log(),
    )
    .unwrap();
    let cluster = cluster(pg, name, dir.path());
    service.join_cluster(cluster.clone());
    AlertNode {
        _dir: dir,
        service,
        log,
        cluster,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_alert_raised_on_three_nodes_is_delivered_once_naming_the_node() {
    let pg = PostgresServer::start(PostgresOptions::default()).unwrap();
    let r = Receivers::start().await;
    let nodes: Vec<AlertNode> = ["n1", "n2", "n3"]
        .iter()
        .map(|n| alert_node(&pg, &r, n))
        .collect();
    for n in &nodes {
        n.service.sink().raise(alert("tls-policy:example.net"));
    }
    // Every node has taken its decision once each logged the alert.
    for n in &nodes {
        n.log.wait_for("[tls-policy:example.net]").await;
    }
    for n in &nodes {
        assert!(n.service.wait_idle(WAIT).await);
    }
    let hooks = hooks_for_key(&r.webhook.wait_for(1).await, "tls-policy:example.net");
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    let text = hooks[0]["text"].as_str().unwrap().to_owned();
    let winner = ["n1", "n2", "n3"]
        .into_iter()
        .find(|n| text.starts_with(&format!("node {n}: ")))
        .unwrap_or_else(|| panic!("the text names no node: {text}"));
    assert!(text.contains("every MX host failed DANE"), "{text}");
    let mails = r.mails(1).await;
    assert_eq!(mails.len(), 1);
    // The two others said who delivers.
    for n in nodes.iter().filter(|n| n.cluster.node() != winner) {
        n.log
            .wait_for(&format!("node {winner} raised it too and delivers it"))
            .await;
    }
    // Any node's shared recent list shows the one alert, with the node.
    let recent = portcullis_mta::cluster::alerts::recent(&nodes[1].cluster, 10)
        .await
        .unwrap();
    assert_eq!(recent.len(), 1, "{recent:?}");
    assert_eq!(recent[0].node, winner);
    assert_eq!(recent[0].notice.alert.key, "tls-policy:example.net");
    assert_eq!(recent[0].notice.alert.text, text);
    // As the status page shows it: the notice's fields and the node.
    let shown = portcullis_mta::cluster::alerts::recent_for_status(&nodes[2].cluster, 10)
        .await
        .expect("the database is reachable");
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0]["node"], winner);
    assert_eq!(shown[0]["key"], "tls-policy:example.net");
    // Each node keeps its own list as well.
    for n in &nodes {
        assert_eq!(n.service.recent().len(), 1);
    }
    // Nothing more arrives late.
    assert_eq!(r.webhook.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_database_stopped_alerts_are_delivered_locally_and_what_was_learned_is_pushed_when_it_is_back()
 {
    let mut pg = PostgresServer::start(PostgresOptions::default()).unwrap();
    let r = Receivers::start().await;
    let a1 = alert_node(&pg, &r, "n1");
    let a2 = alert_node(&pg, &r, "n2");
    let mut n1 = Node::start(&pg, "n1");
    let mut n2 = Node::start(&pg, "n2");
    n1.memory
        .remember("old.example", AuthMethod::Pkix, MONTH)
        .unwrap();
    eventually("n2 has old.example", || {
        n2.memory.active("old.example").is_some()
    })
    .await;

    pg.stop().unwrap();
    // Both nodes deliver the same alert: a duplicate beats a lost alert.
    a1.service.sink().raise(alert("dane:down.example"));
    a2.service.sink().raise(alert("dane:down.example"));
    let hooks = hooks_for_key(&r.webhook.wait_for(2).await, "dane:down.example");
    assert_eq!(hooks.len(), 2, "{hooks:?}");
    let mut named: Vec<String> = hooks
        .iter()
        .map(|h| h["text"].as_str().unwrap()[..8].to_owned())
        .collect();
    named.sort();
    assert_eq!(named, ["node n1:", "node n2:"]);

    // Meanwhile n1 learns one domain and forgets another, then restarts.
    n1.memory
        .remember("late.example", AuthMethod::MtaSts, MONTH)
        .unwrap();
    assert_eq!(n1.memory.forget(Some("old.example")).unwrap(), 1);
    n1.stop().await;
    n1.memory = open_memory(n1.dir.path());
    n1.restart_sync(&pg, "n1");
    assert!(n2.memory.active("late.example").is_none());
    assert!(n2.memory.active("old.example").is_some());

    pg.start_again().unwrap();
    eventually("n2 has late.example and forgot old.example", || {
        n2.memory.active("late.example").is_some() && n2.memory.active("old.example").is_none()
    })
    .await;
    assert!(n1.memory.active("old.example").is_none());

    // The alerts delivered without the database reach the shared list
    // with the node's next notice.
    a1.service.sink().raise(alert("dane:after.example"));
    a1.log.wait_for("[dane:after.example]").await;
    let recent = portcullis_mta::cluster::alerts::recent(&a2.cluster, 10)
        .await
        .unwrap();
    let keys: Vec<(String, String)> = recent
        .iter()
        .map(|c| (c.node.clone(), c.notice.alert.key.clone()))
        .collect();
    for want in [("n1", "dane:down.example"), ("n1", "dane:after.example")] {
        assert!(
            keys.contains(&(want.0.into(), want.1.into())),
            "{want:?} not in {keys:?}"
        );
    }
    n1.stop().await;
    n2.stop().await;
}
