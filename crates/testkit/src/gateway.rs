//! A gateway under test: a temporary directory with the data dir, the
//! certificate store filled through the real CLI (`portcullis cert import`,
//! `portcullis ca import`), and a TOML configuration assembled from the
//! parts a test cares about. [`GatewayFixture::start`] hands it to
//! [`crate::runner::Gateway`].
//!
//! The generated file keeps to `examples/portcullis.toml`: one listener on
//! loopback with a HAT and RAT, destination controls, routes, DNS, MTA-STS,
//! queue timings and the mail log in a file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;
use crate::pki::Leaf;
use crate::runner::{Gateway, free_tcp_port, portcullis_binary};

/// Files and settings of one gateway under test.
#[derive(Debug)]
pub struct GatewayFixture {
    binary: PathBuf,
    dir: tempfile::TempDir,
    /// Where the listener binds.
    pub listen: SocketAddr,
    /// Extra TOML appended to the generated configuration (destinations,
    /// routes, `[dns]`, `[mta-sts]`, ...).
    pub extra: String,
    /// `[[listener]]` body lines after name/address (kind, certificate, rat).
    pub listener: String,
    /// HAT: sender groups and policies (TOML, `[[listener.hat...]]`).
    pub hat: String,
    /// `[queue]` body.
    pub queue: String,
    /// `[delivery]` body.
    pub delivery: String,
    /// `[mta-sts]` body (default: disabled).
    pub mta_sts: String,
    /// `[dns]` body (default: a loopback resolver that refuses every query,
    /// so no test reaches the host's resolver).
    pub dns: String,
    /// The data directory (default: `data` in the fixture's directory; a
    /// disk-full test puts it on a small filesystem).
    pub data: PathBuf,
}

impl GatewayFixture {
    /// A fixture with the `portcullis` binary found by
    /// [`portcullis_binary`], a free listener port, a relay-for-loopback
    /// HAT with TLS `off`, quick retries and no MTA-STS.
    pub fn new() -> Result<Self, Error> {
        let binary = portcullis_binary()?;
        let dir = tempfile::tempdir().map_err(Error::io("creating the gateway directory"))?;
        let listen = SocketAddr::from(([127, 0, 0, 1], free_tcp_port()?));
        let data = dir.path().join("data");
        Ok(Self {
            binary,
            dir,
            listen,
            extra: String::new(),
            listener: "kind = \"private\"\nrat.accept = [\"local.test\"]\n".into(),
            hat: relay_hat("off"),
            queue: "retry-first-seconds = 1\nretry-max-seconds = 2\n".into(),
            delivery: "connect-timeout-seconds = 10\ncommand-timeout-seconds = 30\ndata-timeout-seconds = 30\n".into(),
            mta_sts: "enabled = false\n".into(),
            // Never the host's resolver: a loopback port where nothing
            // answers (tests that need DNS set their own servers).
            dns: format!("resolvers = [\"127.0.0.1:{}\"]\n", closed_udp_port()?),
            data,
        })
    }

    /// The fixture's directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The data directory (`data-dir`).
    pub fn data_dir(&self) -> PathBuf {
        self.data.clone()
    }

    /// The mail-log file.
    pub fn log_file(&self) -> PathBuf {
        self.dir.path().join("mail.log")
    }

    /// Runs `portcullis ARGS` with this gateway's certificate store and
    /// returns what it printed and its status, whatever the status.
    pub fn run_cli(&self, args: &[&str]) -> Result<std::process::Output, Error> {
        let store = self.data_dir().join("certs");
        Command::new(&self.binary)
            .arg("--store")
            .arg(&store)
            .args(args)
            .output()
            .map_err(|e| Error::Program {
                program: self.binary.display().to_string(),
                detail: e.to_string(),
            })
    }

    /// Runs `portcullis queue ARGS --config <this gateway's file>`.
    pub fn queue(&self, args: &[&str]) -> Result<std::process::Output, Error> {
        let config = self.dir.path().join("portcullis.toml");
        let config = config.display().to_string();
        let mut all = vec!["queue"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--config", &config]);
        self.run_cli(&all)
    }

    fn cli(&self, args: &[&str]) -> Result<String, Error> {
        let out = self.run_cli(args)?;
        if !out.status.success() {
            return Err(Error::Program {
                program: format!("portcullis {}", args.join(" ")),
                detail: format!(
                    "{}: {}{}",
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Imports `leaf` into the certificate store as `name` with
    /// `portcullis cert import`.
    pub fn import_certificate(&self, name: &str, leaf: &Leaf) -> Result<(), Error> {
        let (crt, key) = leaf.write_pem(self.dir.path(), &format!("import-{name}"))?;
        let (crt, key) = (crt.display().to_string(), key.display().to_string());
        self.cli(&["cert", "import", name, &crt, "--key", &key])
            .map(|_| ())
    }

    /// Adds a CA (PEM) to the custom CA list with `portcullis ca import`.
    pub fn trust_ca(&self, pem: &str) -> Result<(), Error> {
        let path = self.dir.path().join(format!(
            "ca-{}.pem",
            std::fs::read_dir(self.dir.path()).map_or(0, |d| d.count())
        ));
        std::fs::write(&path, pem).map_err(Error::io(format!("writing {}", path.display())))?;
        self.cli(&["ca", "import", &path.display().to_string()])
            .map(|_| ())
    }

    /// The configuration text.
    pub fn config(&self) -> String {
        format!(
            "hostname = \"gateway.test\"\ndata-dir = \"{data}\"\nshutdown-grace-seconds = 5\n\n\
             [[listener]]\nname = \"inbound\"\naddress = \"{listen}\"\n{listener}\n{hat}\n\
             [queue]\n{queue}\n[delivery]\n{delivery}\n[mta-sts]\n{mta_sts}\n[dns]\n{dns}\n\
             [log]\nfile = \"{log}\"\n\n{extra}\n",
            data = self.data_dir().display(),
            listen = self.listen,
            listener = self.listener,
            hat = self.hat,
            queue = self.queue,
            delivery = self.delivery,
            mta_sts = self.mta_sts,
            dns = self.dns,
            log = self.log_file().display(),
            extra = self.extra,
        )
    }

    /// Validates the configuration with `portcullis config validate`.
    pub fn validate(&self) -> Result<(), Error> {
        let path = self.dir.path().join("portcullis.toml");
        std::fs::write(&path, self.config())
            .map_err(Error::io(format!("writing {}", path.display())))?;
        self.cli(&["config", "validate", &path.display().to_string()])
            .map(|_| ())
    }

    /// Writes the configuration and starts the gateway.
    pub fn start(&self) -> Result<Gateway, Error> {
        Gateway::start(
            &self.binary,
            self.dir.path(),
            &self.config(),
            &[self.listen],
            Some(self.log_file()),
        )
    }
}

/// A loopback UDP port nothing listens on.
fn closed_udp_port() -> Result<u16, Error> {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .map_err(Error::io("finding a free UDP port"))
}

/// A HAT that relays for 127.0.0.0/8 with the given TLS mode
/// (`off`, `preferred`, `required`).
pub fn relay_hat(tls: &str) -> String {
    format!(
        "[[listener.hat.sender-group]]\nname = \"LOCAL\"\nmatch = [\"127.0.0.0/8\"]\npolicy = \"RELAYED\"\n\n\
         [listener.hat.policy.RELAYED]\naction = \"relay\"\ntls = \"{tls}\"\nmax-connections-per-host = 1000\n"
    )
}

/// A route of `domain` (or `default`) to `hosts` (`"127.0.0.1:2525"`,
/// `"mx.example.test"`).
pub fn route(domain: &str, hosts: &[String]) -> String {
    let hosts: Vec<String> = hosts.iter().map(|h| format!("\"{h}\"")).collect();
    format!(
        "[[route]]\ndomain = \"{domain}\"\nhosts = [{}]\n",
        hosts.join(", ")
    )
}

/// An `[[outbound.destination]]` entry.
pub fn destination(domain: &str, tls: &str, dane: &str, mta_sts: bool) -> String {
    format!(
        "[[outbound.destination]]\ndomain = \"{domain}\"\ntls = \"{tls}\"\ndane = \"{dane}\"\nmta-sts = {mta_sts}\n"
    )
}
