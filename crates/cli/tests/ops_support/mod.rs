//! A gateway with its HTTPS admin listener, for the operations tests: the
//! testkit's fixture (real binary, real certificate store), an admin
//! certificate issued by the test PKI for `admin.test` (so curl verifies
//! it against the test root instead of skipping verification), a read-only
//! token in the file, the admin token the gateway writes at first start,
//! the signed test zone as the only resolver, and helpers for curl and
//! `portcullis ctl`. Every wait has a deadline.
#![allow(dead_code)] // each test binary uses part of it

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use portcullis_testkit::dns_zone::{DnsZone, ZoneBuilder};
use portcullis_testkit::gateway::GatewayFixture;
use portcullis_testkit::pki::TestPki;
use portcullis_testkit::runner::{Gateway, free_tcp_port, portcullis_binary};

/// The read-only token given in `[[admin.token]]`.
pub const READ_TOKEN: &str = "read-only-token-for-the-operations-tests-0123";

/// A fixture with its admin listener configured.
pub struct Rig {
    pub fx: GatewayFixture,
    pub pki: TestPki,
    pub zone: DnsZone,
    pub admin: SocketAddr,
    pub root_pem: PathBuf,
}

impl Rig {
    /// A fixture, not started: the admin listener on a free loopback port
    /// with a certificate for `admin.test`, and the signed test zone as
    /// resolver. Tests add routes and destinations to `fx.extra`.
    pub fn new() -> Rig {
        let pki = TestPki::new().unwrap();
        let zone = ZoneBuilder::new().start().unwrap();
        let mut fx = GatewayFixture::new().unwrap();
        fx.dns = format!(
            "resolvers = [\"{}\"]\ntrust-anchor-file = \"{}\"\ntimeout-seconds = 3\n",
            zone.authoritative_addr(),
            zone.ksk_anchor_file().display()
        );
        let admin = SocketAddr::from(([127, 0, 0, 1], free_tcp_port().unwrap()));
        fx.import_certificate("admin", &pki.leaf(&["admin.test"]).unwrap())
            .unwrap();
        let root_pem = fx.dir().join("admin-root.pem");
        pki.write_root_pem(&root_pem).unwrap();
        Rig {
            fx,
            pki,
            zone,
            admin,
            root_pem,
        }
    }

    /// `[admin]` of this rig (append to the configuration last).
    pub fn admin_toml(&self) -> String {
        format!(
            "[admin]\naddress = \"{}\"\ncertificate = \"admin\"\n\n[[admin.token]]\nname = \"reader\"\nrole = \"read\"\ntoken = \"{READ_TOKEN}\"\n",
            self.admin
        )
    }

    /// The configuration text with `[admin]`.
    pub fn config(&self) -> String {
        format!("{}\n{}", self.fx.config(), self.admin_toml())
    }

    /// The configuration file's path.
    pub fn config_path(&self) -> PathBuf {
        self.fx.dir().join("portcullis.toml")
    }

    /// Writes the configuration and starts the gateway; returns once the
    /// SMTP and admin listeners accept connections and `endpoint.json`
    /// (what `ctl` reads; written just after the admin listener is bound,
    /// before systemd hears READY=1) is there.
    pub fn start(&self) -> Gateway {
        let listeners = [self.fx.listen, self.admin];
        let gw = Gateway::start(
            &portcullis_binary().unwrap(),
            self.fx.dir(),
            &self.config(),
            &listeners,
            Some(self.fx.log_file()),
        )
        .unwrap();
        wait_file(&self.fx.data_dir().join("admin").join("endpoint.json"));
        gw
    }

    /// Starts the stopped gateway again with the file as it is now.
    pub fn restart(&self, gw: &mut Gateway) {
        gw.restart(&[self.fx.listen, self.admin]).unwrap();
        wait_file(&self.fx.data_dir().join("admin").join("endpoint.json"));
    }

    /// The admin token the gateway wrote at first start.
    pub fn admin_token(&self) -> String {
        let file = self.fx.data_dir().join("admin").join("ctl-token");
        let text = wait_file(&file);
        text.lines().next().unwrap().trim().to_owned()
    }

    /// `curl` against the admin listener, verifying its certificate with
    /// the test root; the source address is `source` (127.0.0.0/8).
    pub fn curl_from(
        &self,
        source: &str,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Http {
        let port = self.admin.port();
        let mut c = Command::new("curl");
        c.args(["-sS", "--max-time", "60", "--interface", source])
            .arg("--cacert")
            .arg(&self.root_pem)
            .args(["--resolve", &format!("admin.test:{port}:127.0.0.1")])
            .args(["-X", method, "-w", "\n%{http_code}"]);
        if let Some(t) = token {
            c.args(["-H", &format!("Authorization: Bearer {t}")]);
        }
        if let Some(b) = body {
            c.args(["-H", "Content-Type: application/json", "--data-binary", b]);
        }
        c.arg(format!("https://admin.test:{port}{path}"));
        let out = c
            .output()
            .expect("curl must be installed (scripts/install-test-deps.sh)");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "curl {method} {path} failed: {}{text}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (body, status) = text.rsplit_once('\n').unwrap();
        Http {
            status: status.trim().parse().unwrap(),
            body: body.to_owned(),
        }
    }

    /// `curl` from 127.0.0.1.
    pub fn curl(&self, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> Http {
        self.curl_from("127.0.0.1", method, path, token, body)
    }

    /// `portcullis ctl ARGS` with this gateway's data directory (the
    /// no-set-up path: endpoint.json and ctl-token).
    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new(portcullis_binary().unwrap())
            .arg("ctl")
            .arg("--data-dir")
            .arg(self.fx.data_dir())
            .args(args)
            .env_remove("PORTCULLIS_CONFIG")
            .env_remove("PORTCULLIS_URL")
            .env_remove("PORTCULLIS_TOKEN_FILE")
            .output()
            .unwrap()
    }

    /// `ctl ARGS`, which must succeed; its standard output.
    pub fn ctl_ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(
            out.status.success(),
            "portcullis ctl {args:?}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Http {
    pub status: u16,
    pub body: String,
}

impl Http {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Waits (at most a minute) for `file` to exist; its text.
pub fn wait_file(file: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(t) = std::fs::read_to_string(file)
            && !t.trim().is_empty()
        {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "{} did not appear within a minute",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls `f` (at most `secs` seconds) until it returns `Some`.
pub fn eventually<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "within {secs} s: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sends SIGHUP to `pid`.
pub fn sighup(pid: u32) {
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
}
