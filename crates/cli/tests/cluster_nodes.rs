//! Three gateway processes (the real binary) sharing one real PostgreSQL
//! server on loopback: set up with `portcullis cluster init|join`, a
//! configuration imported on node 1 with `ctl config import` reaches nodes
//! 2 and 3 and routes their next deliveries, `portcullis cluster status`
//! and `ctl cluster status` list the nodes, and with PostgreSQL stopped for 30 s in the middle of
//! a stream of messages every message is still accepted and delivered,
//! the nodes say the database went away and came back.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use portcullis_smtp_tls::TlsRequirement;
use portcullis_testkit::client::{SendOptions, send};
use portcullis_testkit::gateway::GatewayFixture;
use portcullis_testkit::pki::TestPki;
use portcullis_testkit::postgres::{PostgresOptions, PostgresServer};
use portcullis_testkit::runner::{Gateway, free_tcp_port, portcullis_binary};
use portcullis_testkit::sink::{Sink, SinkOptions, SinkTls};

struct Node {
    name: String,
    fx: GatewayFixture,
    admin: SocketAddr,
}

impl Node {
    fn new(name: &str, pki: &TestPki) -> Node {
        let fx = GatewayFixture::new().unwrap();
        fx.import_certificate("admin", &pki.leaf(&["admin.test"]).unwrap())
            .unwrap();
        Node {
            name: name.into(),
            fx,
            admin: SocketAddr::from(([127, 0, 0, 1], free_tcp_port().unwrap())),
        }
    }

    /// What differs per node: data, listener, log, admin listener, and
    /// the link to the database.
    fn file_text(&self, database: &str) -> String {
        format!(
            "data-dir = \"{data}\"\n\n[[listener]]\nname = \"inbound\"\naddress = \"{listen}\"\n{listener}\n{hat}\n\
             [log]\nfile = \"{log}\"\n\n[admin]\naddress = \"{admin}\"\ncertificate = \"admin\"\n\n\
             [cluster]\ndatabase = \"{database}\"\nnode = \"{name}\"\ndatabase-tls = \"off\"\n\
             poll-seconds = 1\nheartbeat-seconds = 1\ntimeout-seconds = 2\n",
            data = self.fx.data_dir().display(),
            listen = self.fx.listen,
            listener = self.fx.listener,
            hat = self.fx.hat,
            log = self.fx.log_file().display(),
            admin = self.admin,
            name = self.name,
        )
    }

    fn file(&self) -> PathBuf {
        self.fx.dir().join("portcullis.toml")
    }

    fn start(&self, database: &str) -> Gateway {
        Gateway::start(
            &portcullis_binary().unwrap(),
            self.fx.dir(),
            &self.file_text(database),
            &[self.fx.listen, self.admin],
            Some(self.fx.log_file()),
        )
        .unwrap()
    }

    fn cli(&self, args: &[&str]) -> Output {
        Command::new(portcullis_binary().unwrap())
            .args(args)
            .env_remove("PORTCULLIS_CONFIG")
            .env_remove("PORTCULLIS_DATA_DIR")
            .output()
            .unwrap()
    }
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The configuration every node shares, routing `dest.test` to `sink`.
fn shared(fx: &GatewayFixture, sink: SocketAddr) -> String {
    format!(
        "hostname = \"gateway.test\"\nshutdown-grace-seconds = 5\n\n[queue]\n{}\n[delivery]\n{}\n\
         [mta-sts]\n{}\n[dns]\n{}\n[[route]]\ndomain = \"dest.test\"\nhosts = [\"{sink}\"]\n",
        fx.queue, fx.delivery, fx.mta_sts, fx.dns
    )
}

async fn accepted(node: &Node, subject: &str) -> bool {
    let options = SendOptions {
        requirement: TlsRequirement::None,
        ..SendOptions::default()
    };
    match send(
        node.fx.listen,
        "alice@local.test",
        &["bob@dest.test"],
        subject,
        &options,
    )
    .await
    {
        Ok(d) => d.result.is_accepted(),
        Err(_) => false,
    }
}

/// `cluster status --json` until `done` holds (at most a minute).
fn status_until(
    node: &Node,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let file = node.file().display().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = node.cli(&["--json", "cluster", "status", "--config", &file]);
        if out.status.success() {
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            if done(&v) {
                return v;
            }
            assert!(Instant::now() < deadline, "{what}: {v}");
        } else {
            assert!(
                Instant::now() < deadline,
                "{what}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_share_configuration_and_ride_out_a_database_outage() {
    let mut pg = PostgresServer::start(PostgresOptions::default()).unwrap();
    let url = pg.url();
    let pki = TestPki::new().unwrap();
    let first = Sink::start(SinkOptions::new(SinkTls::NotOffered))
        .await
        .unwrap();
    let second = Sink::start(SinkOptions::new(SinkTls::NotOffered))
        .await
        .unwrap();
    let nodes: Vec<Node> = ["n1", "n2", "n3"]
        .iter()
        .map(|n| Node::new(n, &pki))
        .collect();

    // Set-up: node 1 stores the shared configuration, 2 and 3 join.
    for n in &nodes {
        std::fs::write(n.file(), n.file_text(&url)).unwrap();
    }
    let shared_file = nodes[0].fx.dir().join("shared.toml");
    std::fs::write(&shared_file, shared(&nodes[0].fx, first.addr())).unwrap();
    let init = ok(
        nodes[0].cli(&[
            "cluster",
            "init",
            "--config",
            &nodes[0].file().display().to_string(),
            &shared_file.display().to_string(),
        ]),
        "cluster init",
    );
    assert!(init.contains("version 1"), "{init}");
    let again = nodes[1].cli(&[
        "cluster",
        "init",
        "--config",
        &nodes[1].file().display().to_string(),
        &shared_file.display().to_string(),
    ]);
    assert!(!again.status.success(), "a second init must be refused");
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("has a configuration already"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    for n in &nodes[1..] {
        let out = ok(
            n.cli(&[
                "cluster",
                "join",
                "--config",
                &n.file().display().to_string(),
            ]),
            "cluster join",
        );
        assert!(out.contains(&format!("node {} joined", n.name)), "{out}");
    }
    let mut gateways: Vec<Gateway> = nodes.iter().map(|n| n.start(&url)).collect();
    status_until(&nodes[0], "three running nodes on version 1", |v| {
        v["nodes"].as_array().is_some_and(|a| {
            a.len() == 3
                && a.iter()
                    .all(|n| n["state"] == "running" && n["config_version"] == 1)
        })
    });

    assert!(accepted(&nodes[1], "before the import").await);
    first
        .wait_for_messages(1, Duration::from_secs(60))
        .await
        .unwrap();

    // A new shared configuration imported through node 1's admin API.
    let changed = nodes[0].fx.dir().join("changed.toml");
    std::fs::write(&changed, shared(&nodes[0].fx, second.addr())).unwrap();
    ok(
        nodes[0].cli(&[
            "ctl",
            "--data-dir",
            &nodes[0].fx.data_dir().display().to_string(),
            "config",
            "import",
            &changed.display().to_string(),
        ]),
        "ctl config import",
    );
    for (n, gw) in nodes.iter().zip(&gateways).skip(1) {
        gw.wait_for_line(
            &[
                "configuration version 2",
                &format!("applied on node {}", n.name),
            ],
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    }
    assert!(accepted(&nodes[1], "after the import, node 2").await);
    assert!(accepted(&nodes[2], "after the import, node 3").await);
    second
        .wait_for_messages(2, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(first.messages().len(), 1, "the old route is no longer used");
    status_until(&nodes[2], "every node on version 2", |v| {
        v["config_version"] == 2
            && v["nodes"]
                .as_array()
                .is_some_and(|a| a.iter().all(|n| n["config_version"] == 2))
    });

    // The same through node 2's admin API.
    let listed = ok(
        nodes[1].cli(&[
            "ctl",
            "--data-dir",
            &nodes[1].fx.data_dir().display().to_string(),
            "cluster",
            "status",
        ]),
        "ctl cluster status",
    );
    assert!(
        listed.contains("shared configuration version 2"),
        "{listed}"
    );
    for n in ["n1", "n2", "n3"] {
        assert!(
            listed
                .lines()
                .any(|l| l.starts_with(n) && l.contains("running")),
            "{listed}"
        );
    }

    // And in node 3's status (the status page and /api/status).
    let status: serde_json::Value = serde_json::from_str(&ok(
        nodes[2].cli(&[
            "ctl",
            "--data-dir",
            &nodes[2].fx.data_dir().display().to_string(),
            "--json",
            "status",
        ]),
        "ctl status",
    ))
    .unwrap();
    assert_eq!(
        status["cluster"].as_array().map(Vec::len),
        Some(3),
        "{status}"
    );

    // A delivery suspension for the whole cluster, made on node 1, holds
    // on node 3 until node 2 lifts it.
    let ctl = |n: &Node, args: &[&str]| {
        let dir = n.fx.data_dir().display().to_string();
        let mut all = vec!["ctl", "--data-dir", dir.as_str()];
        all.extend_from_slice(args);
        ok(n.cli(&all), &format!("ctl {args:?} on {}", n.name))
    };
    ctl(
        &nodes[0],
        &["suspend", "delivery", "elsewhere.test", "--cluster"],
    );
    let suspended_on_3 = |want: bool| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v: serde_json::Value =
                serde_json::from_str(&ctl(&nodes[2], &["--json", "status"])).unwrap();
            let has = v["delivery_suspended_cluster"]
                .as_array()
                .is_some_and(|a| a.iter().any(|t| t[0] == "elsewhere.test"));
            if has == want {
                return;
            }
            assert!(Instant::now() < deadline, "cluster suspension {want}: {v}");
            std::thread::sleep(Duration::from_millis(300));
        }
    };
    suspended_on_3(true);
    ctl(
        &nodes[1],
        &["resume", "delivery", "elsewhere.test", "--cluster"],
    );
    suspended_on_3(false);

    // PostgreSQL away for 30 s while mail flows through all three nodes.
    let stopped_at = Instant::now();
    pg.stop().unwrap();
    let mut sent = 0;
    while stopped_at.elapsed() < Duration::from_secs(30) {
        let node = &nodes[sent % 3];
        assert!(
            accepted(node, &format!("during the outage {sent}")).await,
            "message {sent} refused by {} while the database was down",
            node.name
        );
        sent += 1;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for gw in &gateways {
        gw.wait_for_line(
            &["cluster: the cluster database is unreachable"],
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    }
    pg.start_again().unwrap();
    for gw in &gateways {
        gw.wait_for_line(
            &["cluster: database reachable again"],
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    }
    second
        .wait_for_messages(2 + sent, Duration::from_secs(120))
        .await
        .unwrap();
    assert_eq!(
        second.messages().len(),
        2 + sent,
        "nothing lost, nothing twice"
    );

    for gw in &mut gateways {
        gw.terminate(Duration::from_secs(30));
    }
    status_until(&nodes[0], "three stopped nodes", |v| {
        v["nodes"]
            .as_array()
            .is_some_and(|a| a.iter().all(|n| n["state"] == "stopped"))
    });
}
