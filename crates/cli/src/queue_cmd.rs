//! `portcullis queue ...`: the queue of accepted messages, like Postfix's
//! `postqueue`/`postsuper`. While the gateway runs, every command goes
//! through its control socket (`control.sock` in the data directory) and
//! acts on the running queue; while it is stopped, the command reads or
//! changes the spool files itself (taking the spool's lock for a change, so
//! there is only ever one writer) and the next start acts on the change.
//! `check` and `salvage` work on the files: `check` only reads (exit 3 on
//! damage that stops the gateway), `salvage` needs the gateway stopped.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use portcullis_mta::config::{Config, LoadedConfig};
use portcullis_mta::control::socket::{CallError, call};
use portcullis_mta::control::{QueueRequest, RetryWhat, SOCKET_NAME, offline};
use portcullis_mta::spool::{Spool, SpoolOptions};

use crate::Global;
use crate::output::{emit, finish};
use crate::queue_print;

/// Exit status when the spool has damage that stops the gateway.
const DAMAGED: u8 = 3;

/// Where the gateway keeps its queue.
#[derive(Debug, Clone, clap::Args)]
pub struct QueueAt {
    /// Take the data directory (and spool settings) from this configuration
    /// file.
    #[arg(long, value_name = "FILE", env = "PORTCULLIS_CONFIG")]
    config: Option<PathBuf>,
    /// The gateway's data directory (the queue is its spool/ subdirectory,
    /// the control socket its control.sock). Default: from --config, else
    /// ./portcullis-data.
    #[arg(long, value_name = "DIR", env = "PORTCULLIS_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

/// Queue commands.
#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// List queued messages: id (as in the mail log), age, size, attempts,
    /// next attempt, sender, recipients still to deliver, last error.
    List(QueueAt),
    /// One message: envelope, per-recipient status, schedule, headers.
    Show {
        /// Message id (hexadecimal, as in the mail log).
        id: String,
        #[command(flatten)]
        at: QueueAt,
    },
    /// Attempt delivery now: one message, every message to a domain, or all.
    #[command(group(clap::ArgGroup::new("which").required(true).args(["id", "domain", "all"])))]
    Retry {
        /// Message id.
        id: Option<String>,
        /// Every message with a recipient in this domain.
        #[arg(long, value_name = "DOMAIN")]
        domain: Option<String>,
        /// Every message not held.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        at: QueueAt,
    },
    /// Keep a message from being delivered until it is released.
    Hold {
        id: String,
        #[command(flatten)]
        at: QueueAt,
    },
    /// Release a held message: it is attempted at once.
    Release {
        id: String,
        #[command(flatten)]
        at: QueueAt,
    },
    /// Remove a message from the queue without telling the sender.
    Delete {
        id: String,
        #[command(flatten)]
        at: QueueAt,
    },
    /// Return a message to its sender with a delivery status notification
    /// and remove it from the queue.
    Bounce {
        id: String,
        #[command(flatten)]
        at: QueueAt,
    },
    /// Read every spool file and report damage; changes nothing. Exit 3 when
    /// damage would stop the gateway from starting.
    Check(QueueAt),
    /// Rebuild a damaged spool: keep every message that still reads, move
    /// the damaged files aside. The gateway must be stopped.
    Salvage(QueueAt),
}

/// Where the queue of this gateway is.
pub(crate) struct Place {
    pub data_dir: PathBuf,
    pub spool_dir: PathBuf,
    pub hostname: String,
    pub options: SpoolOptions,
}

fn place(at: &QueueAt) -> Result<Place, String> {
    let mut config = match &at.config {
        Some(f) => {
            LoadedConfig::load(f)
                .map_err(|r| {
                    format!(
                        "cannot read the configuration: {}",
                        r.to_string().replace('\n', "; ")
                    )
                })?
                .config
        }
        None => Config::builtin_default(),
    };
    if let Some(d) = &at.data_dir {
        config.data_dir = d.clone();
    }
    Ok(Place {
        spool_dir: config.spool_dir(),
        data_dir: config.data_dir.clone(),
        hostname: config.hostname.clone(),
        options: config.spool.options(),
    })
}

/// Runs a queue command.
pub fn run(global: &Global, cmd: QueueCommand) -> ExitCode {
    let (at, request) = match cmd {
        QueueCommand::Check(at) => return check(global, &at),
        QueueCommand::Salvage(at) => return finish(salvage(global, &at)),
        QueueCommand::List(at) => (at, QueueRequest::List),
        QueueCommand::Show { id, at } => (at, QueueRequest::Show { id }),
        QueueCommand::Retry {
            id,
            domain,
            all,
            at,
        } => {
            let target = match (id, domain, all) {
                (Some(id), _, _) => RetryWhat::Id(id),
                (_, Some(d), _) => RetryWhat::Domain(d),
                _ => RetryWhat::All,
            };
            (at, QueueRequest::Retry { target })
        }
        QueueCommand::Hold { id, at } => (at, QueueRequest::Hold { id }),
        QueueCommand::Release { id, at } => (at, QueueRequest::Release { id }),
        QueueCommand::Delete { id, at } => (at, QueueRequest::Delete { id }),
        QueueCommand::Bounce { id, at } => (at, QueueRequest::Bounce { id }),
    };
    request_queue(global, &at, request)
}

fn request_queue(global: &Global, at: &QueueAt, request: QueueRequest) -> ExitCode {
    let place = match place(at) {
        Ok(p) => p,
        Err(e) => return finish(Err(e)),
    };
    let socket = place.data_dir.join(SOCKET_NAME);
    match call(&socket, &request) {
        Ok(Ok(reply)) => finish(queue_print::reply(global.json, &reply, true)),
        Ok(Err(reason)) => finish(Err(reason)),
        Err(CallError::NotRunning(_)) => {
            match offline::handle(&place.spool_dir, &place.options, &place.hostname, request) {
                Ok(done) => {
                    let printed = queue_print::reply(global.json, &done.reply, false);
                    if printed.is_err() {
                        return finish(printed);
                    }
                    match queue_print::damage_warning(&done.damage, &place.spool_dir) {
                        Some(warning) => {
                            eprintln!("portcullis: error: {warning}");
                            ExitCode::from(DAMAGED)
                        }
                        None => ExitCode::SUCCESS,
                    }
                }
                Err(e) => finish(Err(e)),
            }
        }
        Err(e) => finish(Err(e.to_string())),
    }
}

fn check(global: &Global, at: &QueueAt) -> ExitCode {
    let place = match place(at) {
        Ok(p) => p,
        Err(e) => return finish(Err(e)),
    };
    if !place.spool_dir.exists() {
        return finish(Err(format!(
            "there is no spool at {}",
            place.spool_dir.display()
        )));
    }
    let report = match Spool::check(&place.spool_dir) {
        Ok(r) => r,
        Err(e) => return finish(Err(e.to_string())),
    };
    let damaged = report.fatal().next().is_some();
    if let Err(e) = queue_print::check(global.json, &report, &place.spool_dir) {
        return finish(Err(e));
    }
    if damaged {
        ExitCode::from(DAMAGED)
    } else {
        ExitCode::SUCCESS
    }
}

fn salvage(global: &Global, at: &QueueAt) -> Result<(), String> {
    let place = place(at)?;
    let report = Spool::salvage(&place.spool_dir, &place.options).map_err(|e| match e {
        portcullis_mta::spool::SpoolError::Locked(dir) => format!(
            "the gateway is running (it holds the lock of {}); stop it first: salvage rebuilds \
             the spool the gateway refuses to open",
            dir.display()
        ),
        other => other.to_string(),
    })?;
    emit(global.json, &report, || queue_print::salvage(&report))
}
