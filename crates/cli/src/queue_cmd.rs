//! `portcullis queue ...`: what is waiting in the spool. Reads the spool
//! log without locking or changing it (`Spool::inspect`), so it works while
//! the gateway runs; a message accepted a moment ago may be missing from
//! one listing and present in the next.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use portcullis_mta::config::{Config, LoadedConfig};
use portcullis_mta::spool::Spool;
use serde::Serialize;

use crate::Global;
use crate::output::{CmdResult, emit, finish};

/// Queue commands.
#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// List queued messages: id (as in the mail log), time received, size,
    /// sender and the recipients still to be delivered. --json for scripts.
    List {
        /// Take the data directory from this configuration file.
        #[arg(long, value_name = "FILE", env = "PORTCULLIS_CONFIG")]
        config: Option<PathBuf>,
        /// The gateway's data directory (the queue is its spool/
        /// subdirectory). Default: from --config, else ./portcullis-data.
        #[arg(long, value_name = "DIR", env = "PORTCULLIS_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
}

/// One queued message as printed.
#[derive(Debug, Serialize)]
struct Row {
    id: String,
    received_at: u64,
    received: String,
    size: u64,
    sender: String,
    recipients: Vec<String>,
    requiretls: bool,
    smtputf8: bool,
}

/// Runs a queue command.
pub fn run(global: &Global, cmd: QueueCommand) -> ExitCode {
    match cmd {
        QueueCommand::List { config, data_dir } => finish(list(global, config, data_dir)),
    }
}

fn list(global: &Global, config: Option<PathBuf>, data_dir: Option<PathBuf>) -> CmdResult {
    let spool_dir = match (data_dir, config) {
        (Some(d), _) => d.join("spool"),
        (None, Some(f)) => LoadedConfig::load(&f)
            .map_err(|r| {
                format!(
                    "cannot read the configuration: {}",
                    r.to_string().replace('\n', "; ")
                )
            })?
            .config
            .spool_dir(),
        (None, None) => Config::builtin_default().spool_dir(),
    };
    let messages = if spool_dir.exists() {
        Spool::inspect(&spool_dir)
            .map_err(|e| format!("cannot read the queue in {}: {e}", spool_dir.display()))?
    } else {
        Vec::new()
    };
    let rows: Vec<Row> = messages
        .iter()
        .map(|m| Row {
            id: m.id.to_string(),
            received_at: m.envelope.received_at,
            received: utc(m.envelope.received_at),
            size: m.size,
            sender: m.envelope.sender.clone(),
            recipients: m
                .pending
                .iter()
                .filter_map(|&i| m.envelope.recipients.get(i as usize).cloned())
                .collect(),
            requiretls: m.envelope.flags.requiretls,
            smtputf8: m.envelope.flags.smtputf8,
        })
        .collect();
    emit(global.json, &rows, || {
        if rows.is_empty() {
            return format!("The queue is empty ({}).", spool_dir.display());
        }
        let mut out = format!(
            "{:<16} {:<20} {:>9}  {}\n",
            "ID", "RECEIVED (UTC)", "BYTES", "FROM -> TO"
        );
        for r in &rows {
            let from = if r.sender.is_empty() { "<>" } else { &r.sender };
            out.push_str(&format!(
                "{:<16} {:<20} {:>9}  <{}> -> {}{}\n",
                r.id,
                r.received,
                r.size,
                from.trim_start_matches('<').trim_end_matches('>'),
                r.recipients
                    .iter()
                    .map(|t| format!("<{t}>"))
                    .collect::<Vec<_>>()
                    .join(", "),
                if r.requiretls { "  [REQUIRETLS]" } else { "" }
            ));
        }
        out.push_str(&format!("{} message(s) queued.", rows.len()));
        out
    })
}

/// `2026-11-23 19:05:00` from Unix seconds.
fn utc(secs: u64) -> String {
    let t = i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok());
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    match t.and_then(|t| t.format(&fmt).ok()) {
        Some(s) => s,
        None => secs.to_string(),
    }
}
