//! `portcullis config ...`: check a configuration file before (re)starting
//! the gateway with it, and print the built-in default as a starting point.
//! `validate` prints every problem as `FILE:LINE:COL: key.path: message`
//! (the format editors and CI annotate) and exits 1; a valid file gets a
//! short summary of what it configures and exit 0.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use portcullis_mta::config::{Config, LoadedConfig};

use serde::Serialize;

use crate::output::{emit, finish, no_json};

/// Configuration commands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check a configuration file: TOML syntax, types, unknown keys, addresses,
    /// patterns, open relays, contradictory destination entries, and that every
    /// certificate it names is in the certificate store (<data-dir>/certs).
    /// Nothing is changed. Each problem is printed as FILE:LINE:COL: key: message;
    /// the exit status is 1 if there is any.
    Validate {
        /// The configuration file (TOML).
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Print the built-in default configuration (what `portcullis run` uses
    /// without --config) as TOML, to start your own file from.
    PrintDefault,
}

/// Runs a config command; `json` asks for a JSON result.
pub fn run(cmd: ConfigCommand, json: bool) -> ExitCode {
    match cmd {
        ConfigCommand::Validate { file } => validate(&file, json),
        ConfigCommand::PrintDefault if json => finish(no_json(
            "print-default prints the configuration as TOML, which is already machine-readable",
        )),
        ConfigCommand::PrintDefault => finish(
            toml::to_string_pretty(&Config::builtin_default())
                .map(|t| out!("{t}"))
                .map_err(|e| format!("cannot print the default: {e}")),
        ),
    }
}

/// `config validate --json`.
#[derive(Debug, Serialize)]
struct Validation {
    file: String,
    valid: bool,
    /// The summary of a valid file.
    summary: Option<String>,
    problems: Vec<Problem>,
}

#[derive(Debug, Serialize)]
struct Problem {
    file: String,
    line: Option<usize>,
    column: Option<usize>,
    key: String,
    message: String,
}

fn validate(file: &std::path::Path, json: bool) -> ExitCode {
    let checked = LoadedConfig::load(file).and_then(|l| l.validate().map(|()| l));
    match checked {
        Ok(loaded) if json => finish(emit(
            true,
            &Validation {
                file: file.display().to_string(),
                valid: true,
                summary: Some(summary(&loaded)),
                problems: Vec::new(),
            },
            String::new,
        )),
        Ok(loaded) => {
            outln!("{}", summary(&loaded));
            ExitCode::SUCCESS
        }
        Err(report) => {
            if json {
                let problems = report
                    .issues
                    .iter()
                    .map(|i| Problem {
                        file: report.source.clone(),
                        line: i.position.map(|p| p.0),
                        column: i.position.map(|p| p.1),
                        key: i.path.clone(),
                        message: i.message.clone(),
                    })
                    .collect();
                let _ = emit(
                    true,
                    &Validation {
                        file: file.display().to_string(),
                        valid: false,
                        summary: None,
                        problems,
                    },
                    String::new,
                );
            } else {
                eprintln!("{report}");
            }
            finish(Err(format!(
                "{} has {} problem(s); fix them and run `portcullis config validate` again",
                file.display(),
                report.issues.len()
            )))
        }
    }
}

/// What a valid file configures, in a few lines.
pub fn summary(loaded: &LoadedConfig) -> String {
    let c = &loaded.config;
    let mut s = format!("{}: valid\n", loaded.source_name);
    let _ = writeln!(
        s,
        "  host name {}; data directory {} (certificates in certs/, queue in spool/)",
        c.hostname,
        c.data_dir.display()
    );
    for l in &c.listener {
        let tls = if !l
            .hat
            .policy
            .values()
            .any(|p| p.tls != portcullis_policy::InboundTls::Off)
        {
            "no STARTTLS".to_owned()
        } else {
            match &l.certificate {
                Some(name) => format!("STARTTLS with certificate {name:?}"),
                None => "STARTTLS with the demonstration certificate (testing only)".to_owned(),
            }
        };
        let kind = match l.kind {
            portcullis_policy::ListenerKind::Public => "public",
            portcullis_policy::ListenerKind::Private => "private",
        };
        let _ = writeln!(
            s,
            "  listener {:?} on {} ({kind}; {} sender group(s); accepts mail for {}), {tls}",
            l.name,
            l.address,
            l.hat.sender_group.len(),
            if l.rat.accept.is_empty() {
                "no domain (relay only)".to_owned()
            } else {
                l.rat.accept.join(", ")
            }
        );
    }
    let resolvers = if c.dns.resolvers.is_empty() {
        "the system's (/etc/resolv.conf)".to_owned()
    } else {
        c.dns
            .resolvers
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(
        s,
        "  {} destination entries, {} SMTP route(s), DNS resolvers: {resolvers}",
        c.outbound.destination.len(),
        c.route.len()
    );
    if let Some(h) = &c.mta_sts.hosting {
        let _ = writeln!(
            s,
            "  MTA-STS policies served on https://{} for {} (records: `portcullis sts publish`)",
            h.address,
            h.domains
                .iter()
                .map(|d| format!("{} ({})", d.domain, d.mode))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let _ = write!(
        s,
        "  queue lifetime {} s, retries after {} s doubling up to {} s; shutdown grace {} s",
        c.queue.lifetime_seconds,
        c.queue.retry_first_seconds,
        c.queue.retry_max_seconds,
        c.shutdown_grace_seconds
    );
    s
}
