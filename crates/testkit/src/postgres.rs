//! A private PostgreSQL server for tests (Debian package `postgresql`): a
//! fresh cluster in a temporary directory, listening on a free 127.0.0.1
//! port with its socket in that directory, never the system service. It
//! holds a database `portcullis` owned by the role `portcullis` (password
//! `portcullis`); every loopback connection is trusted. With
//! [`PostgresTls`] it also offers TLS; whether a client demands it is the
//! test's choice (`sslmode`).
//!
//! [`PostgresServer::stop`] and [`PostgresServer::start_again`] take the
//! server down and up on the same data and port, for outage tests. The
//! server is stopped (immediate mode) and its directory removed on drop.

mod install;

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::Error;
use install::Install;

/// Whether the PostgreSQL server binaries are installed. Tests should not
/// skip on `false`: [`PostgresServer::start`] says which package is missing.
pub fn postgres_available() -> bool {
    install::bin_dir().is_some()
}

/// How to start the server.
#[derive(Debug, Clone, Default)]
pub struct PostgresOptions {
    /// Offer TLS with this certificate (`ssl = on`); `None`: plaintext only.
    pub tls: Option<PostgresTls>,
}

/// The server's TLS identity.
#[derive(Debug, Clone)]
pub struct PostgresTls {
    /// Certificate chain, leaf first (PEM).
    pub cert_pem: String,
    /// The leaf's private key (PEM).
    pub key_pem: String,
}

/// A running (or deliberately stopped) private server.
#[derive(Debug)]
pub struct PostgresServer {
    install: Install,
    port: u16,
    data: PathBuf,
    log: PathBuf,
    running: bool,
    // Last: removed after Drop has stopped the server.
    dir: tempfile::TempDir,
}

/// The role, its password and its database.
const NAME: &str = "portcullis";

impl PostgresServer {
    /// Creates the cluster, starts the server and creates the
    /// `portcullis` role and database.
    pub fn start(options: PostgresOptions) -> Result<Self, Error> {
        let install = Install::find()?;
        let dir = tempfile::Builder::new()
            .prefix("portcullis-pg")
            .tempdir()
            .map_err(Error::io("creating PostgreSQL's directory"))?;
        install.give(dir.path())?;
        let data = dir.path().join("data");
        run(install
            .server("initdb", dir.path())
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8"])
            // A throw-away cluster: no fsync of the freshly made files.
            .args(["--locale=C", "--no-sync"]))?;
        let port = crate::runner::free_tcp_port()?;
        configure(&install, dir.path(), &data, port, options.tls.as_ref())?;
        let mut server = PostgresServer {
            install,
            port,
            log: dir.path().join("postgres.log"),
            data,
            running: false,
            dir,
        };
        // From here on Drop stops the server if the setup below fails.
        server.start_again()?;
        server.setup_database()?;
        Ok(server)
    }

    fn setup_database(&self) -> Result<(), Error> {
        // Separate -c options: CREATE DATABASE cannot share a transaction.
        let conninfo = format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            self.port
        );
        let mut cmd = self.install.psql(self.dir.path());
        cmd.args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", &conninfo]);
        cmd.args(["-c", &format!("create role {NAME} login password '{NAME}'")]);
        cmd.args(["-c", &format!("create database {NAME} owner {NAME}")]);
        query(&mut cmd, "creating the portcullis role and database", self)?;
        Ok(())
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://portcullis:portcullis@127.0.0.1:PORT/portcullis`.
    pub fn url(&self) -> String {
        format!("postgres://{NAME}:{NAME}@127.0.0.1:{}/{NAME}", self.port)
    }

    /// Stops the server (`pg_ctl stop -m fast -w`); a no-op when stopped.
    pub fn stop(&mut self) -> Result<(), Error> {
        if !self.running {
            return Ok(());
        }
        self.pg_ctl(&["stop", "-m", "fast", "-w"])?;
        self.running = false;
        Ok(())
    }

    /// Starts the server again on the same data and port; a no-op when
    /// running.
    pub fn start_again(&mut self) -> Result<(), Error> {
        if self.running {
            return Ok(());
        }
        let log = self.log.clone();
        self.pg_ctl(&["start", "-w", "-l", &log.to_string_lossy()])
            .map_err(|e| Error::Other(format!("{e}\nserver log:\n{}", self.log_tail(20))))?;
        self.running = true;
        Ok(())
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<String, Error> {
        // pg_ctl start hands the server its own stdout/stderr (-l), so
        // waiting for pg_ctl's output does not wait for the server.
        run(self
            .install
            .server("pg_ctl", self.dir.path())
            .arg("-D")
            .arg(&self.data)
            .args(args))
    }

    /// Runs `sql` as `portcullis` in database `portcullis` (`psql -At`) and
    /// returns its output without the trailing newline.
    pub fn psql(&self, sql: &str) -> Result<String, Error> {
        let conninfo = format!(
            "host=127.0.0.1 port={} user={NAME} dbname={NAME}",
            self.port
        );
        self.psql_with(&conninfo, sql)
    }

    /// Runs `sql` over a libpq connection string of the test's choosing
    /// (say, `sslmode=verify-full`); the password is supplied.
    pub fn psql_with(&self, conninfo: &str, sql: &str) -> Result<String, Error> {
        let mut cmd = self.install.psql(self.dir.path());
        cmd.env("PGPASSWORD", NAME)
            // A hung server fails the query instead of the whole test run.
            .env("PGCONNECT_TIMEOUT", "10")
            .args([
                "-X",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                conninfo,
                "-c",
                sql,
            ]);
        query(&mut cmd, &format!("psql `{sql}`"), self)
    }

    /// The last `n` lines of the server log (for failure messages).
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        // A pid file without `running`: a start that timed out may still
        // have left a server behind.
        if self.running || self.data.join("postmaster.pid").exists() {
            let _ = self.pg_ctl(&["stop", "-m", "immediate", "-w"]);
        }
    }
}

/// Settings appended to initdb's postgresql.conf (later lines win), the
/// whole pg_hba.conf, and the TLS files.
fn configure(
    install: &Install,
    dir: &Path,
    data: &Path,
    port: u16,
    tls: Option<&PostgresTls>,
) -> Result<(), Error> {
    let mut conf = String::from("\n# portcullis-testkit\n");
    let _ = writeln!(conf, "listen_addresses = '127.0.0.1'");
    let _ = writeln!(conf, "port = {port}");
    let _ = writeln!(conf, "unix_socket_directories = '{}'", quote(dir));
    // Tests open pools from several gateways at once.
    let _ = writeln!(conf, "max_connections = 200");
    let mut hba = String::from("local all all trust\n");
    if let Some(tls) = tls {
        let crt = data.join("server.crt");
        let key = data.join("server.key");
        write_private(install, &crt, &tls.cert_pem)?;
        write_private(install, &key, &tls.key_pem)?;
        let _ = writeln!(conf, "ssl = on");
        let _ = writeln!(conf, "ssl_cert_file = '{}'", quote(&crt));
        let _ = writeln!(conf, "ssl_key_file = '{}'", quote(&key));
        hba.push_str("hostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n");
    }
    // `host` also matches TLS connections: plaintext stays allowed, and
    // the client's sslmode decides.
    hba.push_str("host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(data.join("postgresql.conf"))
        .map_err(Error::io("opening postgresql.conf"))?;
    file.write_all(conf.as_bytes())
        .map_err(Error::io("writing postgresql.conf"))?;
    // Truncating initdb's file keeps its owner and mode.
    std::fs::write(data.join("pg_hba.conf"), hba).map_err(Error::io("writing pg_hba.conf"))
}

/// A string literal body for postgresql.conf.
fn quote(path: &Path) -> String {
    path.to_string_lossy().replace('\'', "''")
}

/// Mode 0600, owned by the server's user: the server refuses a key file
/// others can read.
fn write_private(install: &Install, path: &Path, text: &str) -> Result<(), Error> {
    let what = format!("writing {}", path.display());
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(Error::io(what.clone()))?;
    file.write_all(text.as_bytes()).map_err(Error::io(what))?;
    install.give(path)
}

/// Runs a server program; its stdout, or its status and stderr as the
/// error.
fn run(cmd: &mut Command) -> Result<String, Error> {
    let out = spawn(cmd)?;
    if !out.status.success() {
        return Err(Error::Program {
            program: format!("{cmd:?}"),
            detail: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs psql; a failed query is the test's business, not a missing
/// package, so it is reported with psql's stderr and the server's log.
fn query(cmd: &mut Command, what: &str, server: &PostgresServer) -> Result<String, Error> {
    let out = spawn(cmd)?;
    if !out.status.success() {
        return Err(Error::Other(format!(
            "{what} failed ({}): {}\nserver log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            server.log_tail(10)
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.trim_end_matches('\n').to_string())
}

fn spawn(cmd: &mut Command) -> Result<Output, Error> {
    cmd.output().map_err(|e| Error::Program {
        program: format!("{:?}", cmd.get_program()),
        detail: e.to_string(),
    })
}
