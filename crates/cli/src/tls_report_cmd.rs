//! `portcullis tls-report list|show`: the TLS reports (RFC 8460) other
//! organisations sent about our domains, read from the report store in the
//! data directory (`tls-reports/`), whether or not the gateway runs. `list`
//! is the view to open when a partner says "we could not reach you over
//! TLS": per day, sending organisation, our MX and result type, the failed
//! sessions; then the refused reports with why. `show` prints one report
//! as the sender wrote it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use portcullis_mta::config::{Config, LoadedConfig};
use portcullis_mta::control::utc;
use portcullis_mta::tlsrpt_inbox::{ReportStore, SummaryFilter, summarize};

use crate::Global;
use crate::output::{CmdResult, emit, finish};

/// Where the report store is.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportsAt {
    /// Take the data directory from this configuration file.
    #[arg(long, value_name = "FILE", env = "PORTCULLIS_CONFIG")]
    config: Option<PathBuf>,
    /// The gateway's data directory (reports are in its tls-reports/).
    /// Default: from --config, else ./portcullis-data.
    #[arg(long, value_name = "DIR", env = "PORTCULLIS_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

/// TLS report commands.
#[derive(Debug, Subcommand)]
pub enum TlsReportCommand {
    /// The received reports, the failed sessions per day, sending
    /// organisation, our MX and result type, and the refused reports.
    List {
        /// Only reports for this UTC day (YYYY-MM-DD).
        #[arg(long, value_name = "DAY")]
        day: Option<String>,
        /// Only this policy domain of ours.
        #[arg(long, value_name = "DOMAIN")]
        domain: Option<String>,
        /// Only reports from this organisation (its organization-name).
        #[arg(long, value_name = "NAME")]
        organization: Option<String>,
        #[command(flatten)]
        at: ReportsAt,
    },
    /// One report: how it arrived, then the report as the sender wrote it.
    Show {
        /// The report's id, as `list` prints it.
        id: String,
        #[command(flatten)]
        at: ReportsAt,
    },
}

fn data_dir(at: &ReportsAt) -> Result<PathBuf, String> {
    if let Some(d) = &at.data_dir {
        return Ok(d.clone());
    }
    let config = match &at.config {
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
    Ok(config.data_dir)
}

/// Runs a `tls-report` command.
pub fn run(global: &Global, cmd: TlsReportCommand) -> ExitCode {
    finish(match cmd {
        TlsReportCommand::List {
            day,
            domain,
            organization,
            at,
        } => list(
            global.json,
            &at,
            SummaryFilter {
                day,
                domain,
                organization,
            },
        ),
        TlsReportCommand::Show { id, at } => show(global.json, &at, &id),
    })
}

fn list(json: bool, at: &ReportsAt, filter: SummaryFilter) -> CmdResult {
    if let Some(day) = &filter.day {
        let ok = day.len() == 10
            && day.bytes().enumerate().all(|(i, b)| {
                if i == 4 || i == 7 {
                    b == b'-'
                } else {
                    b.is_ascii_digit()
                }
            });
        if !ok {
            return Err(format!("--day {day:?} is not a day (write YYYY-MM-DD)"));
        }
    }
    let dir = data_dir(at)?;
    let store = ReportStore::at(&dir);
    if !store.dir().exists() {
        return Err(format!(
            "no TLS report store in {} (configure [tls-report-inbox] and run the gateway; reports arrive by mail or POST /tlsrpt)",
            dir.display()
        ));
    }
    let (reports, damaged) = store.reports();
    let summary = summarize(&reports, store.refused(), damaged, &filter);
    emit(json, &summary, || summary.to_text())
}

fn show(json: bool, at: &ReportsAt, id: &str) -> CmdResult {
    let dir = data_dir(at)?;
    let (stored, report) = ReportStore::at(&dir).report(id)?;
    emit(json, &stored, || {
        let totals = report.totals();
        let pretty = serde_json::to_string_pretty(&stored.report).unwrap_or_default();
        format!(
            "Report {}\n  organisation:  {}\n  contact:       {}\n  report-id:     {}\n  period:        {} to {}\n  sessions:      {} successful, {} failed\n  received:      {} via {} from {} ({})\n\n{pretty}\n",
            stored.id,
            report.organization_name,
            report.contact_info,
            report.report_id,
            report.date_range.start_datetime,
            report.date_range.end_datetime,
            totals.total_successful_session_count,
            totals.total_failure_session_count,
            utc(stored.received_at),
            stored.source.via,
            stored.source.peer,
            stored.source.detail,
        )
    })
}
