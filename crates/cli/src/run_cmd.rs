//! `portcullis run`: start the gateway and keep it running until SIGTERM or
//! SIGINT, then stop accepting, let open sessions and deliveries finish
//! within the grace delay, and exit 0. Nothing queued is lost: what was not
//! delivered stays in the spool for the next start. SIGHUP reloads the
//! configuration file without a restart (all or nothing: an invalid file
//! leaves the running configuration in force and is reported line by line).
//! Under systemd (`Type=notify`) it says when it is ready, reloading and
//! stopping.
//!
//! Without --config the built-in default runs (a loopback listener on
//! 127.0.0.1:2525 with a demonstration certificate). An invalid
//! configuration is reported line by line and nothing starts; a listener
//! that cannot bind (port taken, no permission) is one error line; either
//! way the exit status is 1.

use std::fs::OpenOptions;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;

use portcullis_mta::admin::Running;
use portcullis_mta::config::{ConfigOrigin, LoadedConfig};
use tracing_subscriber::EnvFilter;

use crate::output::finish;

/// Options of `portcullis run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// The configuration file (TOML; see examples/portcullis.toml). Without
    /// it the built-in default runs: a listener on 127.0.0.1:2525 with
    /// STARTTLS and a demonstration certificate, data in ./portcullis-data.
    #[arg(long, value_name = "FILE", env = "PORTCULLIS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Use this data directory instead of the configured one.
    #[arg(long, value_name = "DIR", env = "PORTCULLIS_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address of the built-in default's listener (default 127.0.0.1:2525;
    /// port 0 picks a free port, printed at start). Only without --config.
    #[arg(long, value_name = "IP:PORT", env = "PORTCULLIS_LISTEN")]
    pub listen: Option<String>,
    /// Ask these DNS resolvers (IP or IP:PORT; repeat for several) instead
    /// of the configured ones or those of /etc/resolv.conf, e.g. a local
    /// validating resolver while you try the gateway out.
    #[arg(long = "resolver", value_name = "IP[:PORT]")]
    pub resolvers: Vec<String>,
}

/// Runs the gateway in the foreground.
pub fn run(args: RunArgs) -> ExitCode {
    if args.listen.is_some() && args.config.is_some() {
        return finish(Err(
            "--listen only changes the built-in default's listener; set listener addresses in the configuration file"
                .into(),
        ));
    }
    let origin = ConfigOrigin {
        file: args.config.clone(),
        data_dir: args.data_dir.clone(),
        listen: args.listen.clone(),
        resolvers: args.resolvers.clone(),
    };
    let loaded = match origin.load() {
        Ok(l) => l,
        Err(report) => return invalid(&report),
    };
    if let Err(e) = init_logging(&loaded) {
        return finish(Err(e));
    }
    let settings = match loaded.to_engine_settings() {
        Ok(s) => s,
        Err(report) => return invalid(&report),
    };
    let source = loaded.source_name.clone();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return finish(Err(format!("cannot start the async runtime: {e}"))),
    };
    let result = runtime.block_on(async move {
        // Watch for signals before anything starts: a SIGTERM that arrives
        // while the listeners bind must stop the gateway gracefully, not
        // kill it with the default action.
        let mut signals = Signals::new()?;
        let running = Running::start(origin, loaded, settings).await?;
        sd_notify("READY=1");
        tracing::info!(
            target: "portcullis",
            "portcullis {} started from {source}; SIGHUP reloads the configuration, SIGTERM or SIGINT stops it",
            env!("CARGO_PKG_VERSION"),
        );
        let signal = loop {
            match signals.recv().await {
                "SIGHUP" => {
                    sd_notify("RELOADING=1");
                    match running.control.reload().await {
                        Ok(summary) => tracing::info!(
                            target: "portcullis",
                            "SIGHUP: configuration reloaded (listeners added {:?}, removed {:?})",
                            summary.listeners_added,
                            summary.listeners_removed
                        ),
                        Err(failure) => tracing::warn!(
                            target: "portcullis",
                            "SIGHUP: {}", failure.error
                        ),
                    }
                    sd_notify("READY=1");
                }
                other => break other,
            }
        };
        sd_notify("STOPPING=1");
        let grace = running.control.grace().await;
        tracing::info!(
            target: "portcullis",
            "{signal} received: no longer accepting connections; open sessions and deliveries have {} s to finish (a second signal stops at once)",
            grace.as_secs()
        );
        // A second signal cuts the grace short: what was answered 250 is on
        // disk already, so stopping now loses nothing accepted.
        tokio::select! {
            () = running.shutdown(grace) => {}
            second = signals.recv_stop() => {
                return Err(format!(
                    "{second} received during the grace delay: stopped without waiting for open sessions; every accepted message stays queued"
                ));
            }
        }
        tracing::info!(target: "portcullis", "stopped; everything not yet delivered stays queued for the next start");
        Ok(())
    });
    // Background tasks (the DNS self-check, a certificate renewal) stop
    // before the verdict is printed, so a failed start ends with its error.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    finish(result)
}

fn sd_notify(state: &str) {
    if let Err(e) = crate::notify::notify(state) {
        tracing::warn!(target: "portcullis", "{e}");
    }
}

/// Prints every problem (one per line), then the one-line error.
fn invalid(report: &portcullis_mta::config::ConfigReport) -> ExitCode {
    eprintln!("{report}");
    finish(Err(format!(
        "{} has {} problem(s); nothing was started",
        report.source,
        report.issues.len()
    )))
}

/// SIGTERM, SIGINT and SIGHUP, registered once.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Result<Self, String> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate())
                .map_err(|e| format!("cannot watch for SIGTERM: {e}"))?,
            int: signal(SignalKind::interrupt())
                .map_err(|e| format!("cannot watch for SIGINT: {e}"))?,
            hup: signal(SignalKind::hangup())
                .map_err(|e| format!("cannot watch for SIGHUP: {e}"))?,
        })
    }

    /// The name of the next signal.
    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
            _ = self.hup.recv() => "SIGHUP",
        }
    }

    /// The next stopping signal (SIGHUP is ignored during the grace delay).
    async fn recv_stop(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// The mail log and the gateway's own messages go to standard error, or to
/// `log.file` (appended). `PORTCULLIS_LOG` (a tracing filter such as
/// `maillog=info,warn`) overrides `log.level`. Below `debug`, the DNS
/// library's own messages are left out: when validation fails it logs
/// whole DNS messages, dozens per lookup, while the gateway already says
/// what went wrong in one line (and once at start, with the fix).
fn init_logging(loaded: &LoadedConfig) -> Result<(), String> {
    let level = &loaded.config.log.level;
    let filter = match std::env::var("PORTCULLIS_LOG") {
        Ok(f) => EnvFilter::try_new(&f).map_err(|e| format!("PORTCULLIS_LOG={f:?}: {e}"))?,
        Err(_) => {
            let quiet_dns = if matches!(level.as_str(), "debug" | "trace") {
                ""
            } else {
                ",hickory_net=off,hickory_resolver=off,hickory_proto=off"
            };
            EnvFilter::try_new(format!("{level}{quiet_dns}"))
                .map_err(|e| format!("log.level {level:?}: {e}"))?
        }
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true);
    let result = match &loaded.config.log.file {
        Some(path) => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("cannot open the log file {}: {e}", path.display()))?;
            builder
                .with_ansi(false)
                .with_writer(Mutex::new(file))
                .try_init()
        }
        None => {
            use std::io::IsTerminal;
            builder
                .with_ansi(std::io::stderr().is_terminal())
                .with_writer(std::io::stderr)
                .try_init()
        }
    };
    result.map_err(|e| format!("cannot set up logging: {e}"))
}
