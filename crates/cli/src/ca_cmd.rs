//! `portcullis ca ...`: the CA lists used to verify peers. The system list
//! (Mozilla roots shipped with portcullis) can be disabled, re-enabled and
//! updated from a PEM bundle; the custom list takes the operator's own CAs.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};
use portcullis_certstore::{CaList, CaListKind, Store};

use crate::Global;
use crate::output::{CmdResult, emit, finish, read_file, reason, write_output};

/// Which CA list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Which {
    /// Mozilla root CAs shipped with portcullis (or your update of them).
    System,
    /// CAs you imported.
    Custom,
}

impl From<Which> for CaListKind {
    fn from(w: Which) -> Self {
        match w {
            Which::System => CaListKind::System,
            Which::Custom => CaListKind::Custom,
        }
    }
}

/// CA list commands.
#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Show both lists (state and counts), or the certificates of one list.
    List {
        /// List the certificates of this list (default: a summary of both).
        #[arg(value_enum)]
        which: Option<Which>,
    },
    /// Add the CA certificates of a PEM file to the custom list.
    Import {
        /// PEM (or DER) file with one or more CA certificates.
        file: PathBuf,
    },
    /// Write a list to a PEM text file.
    Export {
        /// Which list.
        #[arg(value_enum)]
        which: Which,
        /// Output file ('-' for standard output).
        #[arg(long, short, value_name = "FILE")]
        out: PathBuf,
    },
    /// Verify peers against this list again.
    Enable {
        /// Which list.
        #[arg(value_enum)]
        which: Which,
    },
    /// Stop verifying peers against this list (its certificates are kept).
    Disable {
        /// Which list.
        #[arg(value_enum)]
        which: Which,
    },
    /// Delete one certificate from the custom list.
    Delete {
        /// Its index in `portcullis ca list custom`, or its SHA-256 fingerprint
        /// (at least 8 hex digits; colons optional).
        selector: String,
    },
    /// Replace the system list with a newer PEM bundle (e.g. Mozilla's), or go back to the shipped one.
    Update {
        /// PEM bundle of root CA certificates.
        #[arg(required_unless_present = "shipped", conflicts_with = "shipped")]
        file: Option<PathBuf>,
        /// Return to the list shipped with this portcullis version.
        #[arg(long)]
        shipped: bool,
    },
}

/// Run a CA command.
pub fn run(global: &Global, cmd: CaCommand) -> ExitCode {
    finish(dispatch(global, cmd))
}

fn dispatch(global: &Global, cmd: CaCommand) -> CmdResult {
    let json = global.json;
    let open = || Store::open(&global.store).map_err(reason);
    let open_or_create = || Store::open_or_create(&global.store).map_err(reason);
    match cmd {
        CaCommand::List { which: None } => {
            let store = open()?;
            let lists = [CaListKind::System, CaListKind::Custom]
                .into_iter()
                .map(|k| store.ca_list(k))
                .collect::<Result<Vec<_>, _>>()
                .map_err(reason)?;
            let summary: Vec<_> = lists
                .iter()
                .map(|l| serde_json::json!({ "list": l.kind, "enabled": l.enabled, "count": l.certs.len(), "source": l.source }))
                .collect();
            emit(json, &summary, || {
                lists
                    .iter()
                    .map(summary_line)
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        CaCommand::List { which: Some(which) } => {
            let list = open()?.ca_list(which.into()).map_err(reason)?;
            emit(json, &list, || {
                let mut s = summary_line(&list);
                s.push('\n');
                for c in &list.certs {
                    s.push_str(&format!(
                        "{:>4}  {}\n      expires {}  SHA-256 {}\n",
                        c.index, c.info.subject, c.info.not_after, c.info.sha256
                    ));
                }
                s
            })
        }
        CaCommand::Import { file } => {
            let data = read_file(&file)?;
            let what = file.display().to_string();
            portcullis_certstore::pem::parse_certs(&data, &what).map_err(reason)?;
            let report = open_or_create()?
                .ca_import_custom(&data, &what)
                .map_err(reason)?;
            emit(json, &report, || {
                let mut s = format!(
                    "added {} CA certificate(s) to the custom list ({} already present)\n",
                    report.added.len(),
                    report.already_present
                );
                for a in &report.added {
                    s.push_str(&format!("  + {}  SHA-256 {}\n", a.subject, a.sha256));
                }
                for w in &report.warnings {
                    s.push_str(&format!("warning: {w}\n"));
                }
                s
            })
        }
        CaCommand::Export { which, out } => {
            let pem = open()?.ca_export(which.into()).map_err(reason)?;
            write_output(&out, pem.as_bytes(), false)?;
            if out.as_os_str() == "-" {
                return Ok(());
            }
            emit(
                json,
                &serde_json::json!({ "list": CaListKind::from(which), "file": out }),
                || {
                    format!(
                        "exported the {} list to {}",
                        CaListKind::from(which),
                        out.display()
                    )
                },
            )
        }
        CaCommand::Enable { which } | CaCommand::Disable { which } => {
            let enable = matches!(cmd, CaCommand::Enable { .. });
            open_or_create()?
                .ca_set_enabled(which.into(), enable)
                .map_err(reason)?;
            emit(
                json,
                &serde_json::json!({ "list": CaListKind::from(which), "enabled": enable }),
                || {
                    format!(
                        "{} list {}",
                        CaListKind::from(which),
                        if enable { "enabled" } else { "disabled" }
                    )
                },
            )
        }
        CaCommand::Delete { selector } => {
            let removed = open()?.ca_delete_custom(&selector).map_err(reason)?;
            emit(json, &removed, || {
                format!(
                    "deleted {} (SHA-256 {}) from the custom list",
                    removed.subject, removed.sha256
                )
            })
        }
        CaCommand::Update { file, shipped } => {
            let store = open_or_create()?;
            if shipped {
                store.ca_reset_system().map_err(reason)?;
                let n = store
                    .ca_list(CaListKind::System)
                    .map_err(reason)?
                    .certs
                    .len();
                return emit(
                    json,
                    &serde_json::json!({ "list": "system", "count": n, "source": "shipped" }),
                    || {
                        format!(
                            "system list reset to the {n} CA certificates shipped with portcullis"
                        )
                    },
                );
            }
            let Some(file) = file else {
                return Err("give a PEM bundle file or --shipped".into());
            };
            let data = read_file(&file)?;
            let n = store
                .ca_update_system(&data, &file.display().to_string())
                .map_err(reason)?;
            emit(
                json,
                &serde_json::json!({ "list": "system", "count": n, "source": file }),
                || {
                    format!(
                        "system list replaced by the {n} CA certificates of {}",
                        file.display()
                    )
                },
            )
        }
    }
}

fn summary_line(l: &CaList) -> String {
    format!(
        "{} list: {}, {} certificate(s), {}",
        l.kind,
        if l.enabled { "enabled" } else { "DISABLED" },
        l.certs.len(),
        l.source
    )
}
