//! Runs the real `portcullis` binary for end-to-end tests: writes its
//! configuration, starts `portcullis run --config FILE`, waits until its
//! listeners accept connections, collects every line it writes (stdout,
//! stderr, and optionally a mail-log file) and stops it with SIGTERM
//! (graceful) or SIGKILL (crash). The process is killed when dropped.
//!
//! The binary is found through [`portcullis_binary`]: the
//! `PORTCULLIS_BIN` environment variable, or `portcullis` next to the
//! running test's `deps/` directory (`target/<profile>/portcullis`), which
//! `cargo test --workspace` builds.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::Error;

/// Locates the `portcullis` binary (see the module docs).
pub fn portcullis_binary() -> Result<PathBuf, Error> {
    if let Some(p) = std::env::var_os("PORTCULLIS_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(Error::io("locating the test executable"))?;
    // target/<profile>/deps/<test>  →  target/<profile>/portcullis
    let candidates = exe
        .ancestors()
        .skip(1)
        .take(3)
        .map(|d| d.join("portcullis"))
        .collect::<Vec<_>>();
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| {
            Error::Other(format!(
                "the portcullis binary is not built (looked at {candidates:?}); run \
                 `cargo build -p portcullis-cli` with the same target directory, or set PORTCULLIS_BIN"
            ))
        })
}

/// A free TCP port on 127.0.0.1 (free when checked; bind it soon).
pub fn free_tcp_port() -> Result<u16, Error> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(Error::io("binding a probe listener"))?;
    Ok(l.local_addr()
        .map_err(Error::io("reading a probe address"))?
        .port())
}

#[derive(Debug, Default)]
struct Log {
    lines: Mutex<Vec<String>>,
}

/// A running gateway process.
#[derive(Debug)]
pub struct Gateway {
    child: Option<Child>,
    config: PathBuf,
    binary: PathBuf,
    log: Arc<Log>,
    changed: watch::Sender<u64>,
    log_file: Option<PathBuf>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill();
    }
}

fn pump(stream: impl std::io::Read + Send + 'static, log: Arc<Log>, changed: watch::Sender<u64>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            log.lines
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(line);
            changed.send_modify(|n| *n += 1);
        }
    });
}

impl Gateway {
    /// Writes `config_toml` to `dir/portcullis.toml`, starts the binary and
    /// waits (up to 60 s) until every address in `listeners` accepts a TCP
    /// connection. `log_file` is read along with stdout/stderr when the
    /// config sends the mail log to a file.
    pub fn start(
        binary: &Path,
        dir: &Path,
        config_toml: &str,
        listeners: &[SocketAddr],
        log_file: Option<PathBuf>,
    ) -> Result<Self, Error> {
        let config = dir.join("portcullis.toml");
        std::fs::write(&config, config_toml)
            .map_err(Error::io(format!("writing {}", config.display())))?;
        let (changed, _) = watch::channel(0);
        let mut gw = Self {
            child: None,
            config,
            binary: binary.to_path_buf(),
            log: Arc::new(Log::default()),
            changed,
            log_file,
        };
        gw.restart(listeners)?;
        Ok(gw)
    }

    /// Starts the process again with the same configuration (after
    /// [`Gateway::kill`] or [`Gateway::terminate`]); log lines accumulate.
    pub fn restart(&mut self, listeners: &[SocketAddr]) -> Result<(), Error> {
        self.kill();
        let mut child = Command::new(&self.binary)
            .arg("run")
            .arg("--config")
            .arg(&self.config)
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::Program {
                program: self.binary.display().to_string(),
                detail: e.to_string(),
            })?;
        if let Some(out) = child.stdout.take() {
            pump(out, Arc::clone(&self.log), self.changed.clone());
        }
        if let Some(err) = child.stderr.take() {
            pump(err, Arc::clone(&self.log), self.changed.clone());
        }
        self.child = Some(child);
        let timeout = Duration::from_secs(60);
        let deadline = Instant::now() + timeout;
        for addr in listeners {
            while TcpStream::connect_timeout(addr, Duration::from_millis(200)).is_err() {
                if let Some(status) = self
                    .child
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten())
                {
                    std::thread::sleep(Duration::from_millis(100));
                    return Err(Error::Program {
                        program: "portcullis run".into(),
                        detail: format!(
                            "exited with {status} before listening on {addr}; output:\n{}",
                            self.lines().join("\n")
                        ),
                    });
                }
                if Instant::now() > deadline {
                    return Err(Error::Timeout(
                        timeout,
                        format!(
                            "portcullis to listen on {addr}; output:\n{}",
                            self.lines().join("\n")
                        ),
                    ));
                }
                std::thread::sleep(Duration::from_millis(25));
            }
        }
        Ok(())
    }

    /// The process id while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Every line so far: stdout and stderr as they came, then the log file.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = self
            .log
            .lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(text) = self
            .log_file
            .as_ref()
            .and_then(|f| std::fs::read_to_string(f).ok())
        {
            lines.extend(text.lines().map(str::to_string));
        }
        lines
    }

    /// The last `n` lines, joined (for failure messages).
    pub fn tail(&self, n: usize) -> String {
        let lines = self.lines();
        lines
            .get(lines.len().saturating_sub(n)..)
            .unwrap_or_default()
            .join("\n")
    }

    /// Lines containing every one of `needles`.
    pub fn lines_with(&self, needles: &[&str]) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .collect()
    }

    /// Waits until a line contains every one of `needles`; returns it.
    pub async fn wait_for_line(
        &self,
        needles: &[&str],
        timeout: Duration,
    ) -> Result<String, Error> {
        let mut rx = self.changed.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(line) = self.lines_with(needles).into_iter().next() {
                return Ok(line);
            }
            // The log file is not watched: poll it too.
            let tick = tokio::time::sleep(Duration::from_millis(100));
            tokio::select! {
                _ = rx.changed() => {}
                _ = tick => {}
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(Error::Timeout(timeout, format!(
                        "a log line with {needles:?}; last lines of the log:\n{}",
                        self.tail(100)
                    )));
                }
            }
        }
    }

    /// Sends SIGTERM and waits up to `grace` for a clean exit, then SIGKILL.
    /// Returns the exit status (`None` if it had to be killed).
    pub fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// SIGKILL now (a crash), and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The configuration file in use.
    pub fn config_path(&self) -> &Path {
        &self.config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_that_exits_before_listening_is_reported_with_its_output() {
        let dir = tempfile::tempdir().unwrap();
        let port = free_tcp_port().unwrap();
        let e = Gateway::start(
            Path::new("/bin/false"),
            dir.path(),
            "# empty\n",
            &[SocketAddr::from(([127, 0, 0, 1], port))],
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("before listening"), "{e}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("portcullis.toml")).unwrap(),
            "# empty\n"
        );
    }

    #[test]
    fn a_missing_binary_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let e = Gateway::start(
            Path::new("/nonexistent/portcullis"),
            dir.path(),
            "",
            &[],
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/portcullis"), "{e}");
    }
}
