//! Pebble, Let's Encrypt's ACME test server (Debian package `pebble`), on
//! loopback: its own HTTPS certificate from a [`TestPki`] made here, its
//! challenge ports pointed where the test says (the gateway's HTTP-01
//! listener), names resolved by a DNS server the test controls (the
//! testkit's zone: `-dnsserver`), and `PEBBLE_VA_NOSLEEP=1` so validation
//! starts at once. Nothing leaves the machine. Killed when dropped.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::pki::TestPki;

/// A running Pebble.
#[derive(Debug)]
pub struct Pebble {
    child: Child,
    listen: SocketAddr,
    ca_file: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16, Error> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(Error::io("finding a free port"))?;
    Ok(l.local_addr()
        .map_err(Error::io("finding a free port"))?
        .port())
}

impl Pebble {
    /// Starts Pebble validating HTTP-01 on `http_port` and TLS-ALPN-01 on
    /// `tls_port` of each name's address, resolving names at `dns`.
    pub fn start(dns: SocketAddr, http_port: u16, tls_port: u16) -> Result<Self, Error> {
        let dir = tempfile::tempdir().map_err(Error::io("creating Pebble's directory"))?;
        let pki = TestPki::new()?;
        let leaf = pki.leaf(&["localhost", "127.0.0.1"])?;
        let (cert, key) = leaf.write_pem(dir.path(), "pebble")?;
        let ca_file = dir.path().join("pebble-ca.pem");
        pki.write_root_pem(&ca_file)?;
        let listen = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let management = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let config = dir.path().join("pebble.json");
        let json = format!(
            r#"{{"pebble": {{"listenAddress": "{listen}", "managementListenAddress": "{management}",
  "certificate": "{}", "privateKey": "{}", "httpPort": {http_port}, "tlsPort": {tls_port},
  "ocspResponderURL": "", "externalAccountBindingRequired": false}}}}"#,
            cert.display(),
            key.display()
        );
        std::fs::write(&config, json).map_err(Error::io("writing Pebble's configuration"))?;
        let log = dir.path().join("pebble.log");
        let out = std::fs::File::create(&log).map_err(Error::io("creating Pebble's log"))?;
        let err = out
            .try_clone()
            .map_err(Error::io("creating Pebble's log"))?;
        let child = Command::new("pebble")
            .arg("-config")
            .arg(&config)
            .arg("-dnsserver")
            .arg(dns.to_string())
            .env("PEBBLE_VA_NOSLEEP", "1")
            // No random "bad nonce" refusals: the tests are about challenges.
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| Error::Program {
                program: "pebble".into(),
                detail: e.to_string(),
            })?;
        let mut pebble = Pebble {
            child,
            listen,
            ca_file,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(listen).is_err() {
            if let Ok(Some(status)) = pebble.child.try_wait() {
                return Err(Error::Program {
                    program: "pebble".into(),
                    detail: format!("exited with {status}: {}", pebble.log_text()),
                });
            }
            if Instant::now() > deadline {
                return Err(Error::Timeout(
                    Duration::from_secs(20),
                    format!("Pebble to listen on {listen}"),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(pebble)
    }

    /// The ACME directory URL.
    pub fn directory(&self) -> String {
        format!("https://{}/dir", self.listen)
    }

    /// PEM file of the CA of Pebble's own HTTPS certificate.
    pub fn server_ca_file(&self) -> &std::path::Path {
        &self.ca_file
    }

    /// What Pebble logged so far (for failure messages).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A free TCP port on 127.0.0.1 (for Pebble's challenge ports).
pub fn free_tcp_port() -> Result<u16, Error> {
    free_port()
}
