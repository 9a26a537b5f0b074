//! `portcullis check DOMAIN`: a mail domain's TLS from this gateway's point
//! of view (`portcullis-mta`'s `check`), printed as a table a person reads
//! at a glance (verdicts coloured when stdout is a terminal) or as JSON;
//! progress goes to stderr. Exit status: 0 all good, 1 warnings, 2
//! failures, 3 the check could not run (bad domain, bad configuration).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use portcullis_mta::check::{CheckOptions, DomainReport, Finding, Severity, check_domain};
use portcullis_mta::config::LoadedConfig;
use serde::Serialize;

use crate::Global;

/// Arguments of `check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The mail domain to check (its MX hosts are probed on port 25, or the
    /// [delivery] mx-port and [[route]] entries of --config).
    domain: String,
    /// Gateway configuration: its [dns], destination controls, routes, CA
    /// lists and MTA-STS settings are what the check uses. Default: the
    /// built-in configuration.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Deadline of each probe (a connection with its SMTP exchange, a policy
    /// fetch), in seconds.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    timeout: u64,
}

#[derive(Serialize)]
struct Output<'a> {
    report: &'a DomainReport,
    findings: Vec<Finding>,
    worst: Severity,
}

const COULD_NOT_RUN: u8 = 3;

/// Runs the check.
pub fn run(global: &Global, args: CheckArgs) -> ExitCode {
    let fail = |why: String| {
        eprintln!("portcullis: error: {why}");
        ExitCode::from(COULD_NOT_RUN)
    };
    let loaded = match &args.config {
        Some(p) => match LoadedConfig::load(p) {
            Ok(l) => l,
            Err(r) => return fail(r.to_string()),
        },
        None => LoadedConfig::builtin(),
    };
    let settings = match loaded.to_engine_settings() {
        Ok(s) => s,
        Err(r) => return fail(r.to_string()),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(format!("cannot start the async runtime: {e}")),
    };
    let options = CheckOptions {
        timeout: Duration::from_secs(args.timeout.max(1)),
    };
    let progress = |line: &str| eprintln!("checking {line}…");
    let report = match runtime.block_on(check_domain(&settings, &args.domain, &options, &progress))
    {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let findings = report.findings();
    let worst = report.worst();
    if global.json {
        let out = Output {
            report: &report,
            findings,
            worst,
        };
        match serde_json::to_string_pretty(&out) {
            Ok(text) => outln!("{text}"),
            Err(e) => return fail(format!("cannot print JSON: {e}")),
        }
    } else {
        out!(
            "{}",
            table(&report.domain, &findings, std::io::stdout().is_terminal())
        );
    }
    ExitCode::from(match worst {
        Severity::Info | Severity::Ok => 0,
        Severity::Warn => 1,
        Severity::Fail => 2,
    })
}

fn paint(s: Severity, colour: bool) -> String {
    let label = format!("{:<4}", s.label());
    if !colour {
        return label;
    }
    let code = match s {
        Severity::Ok => "32",
        Severity::Warn => "33",
        Severity::Fail => "1;31",
        Severity::Info => "2",
    };
    format!("\x1b[{code}m{label}\x1b[0m")
}

/// The findings as aligned columns: verdict, check, subject, result, reason.
fn table(domain: &str, findings: &[Finding], colour: bool) -> String {
    let width = |get: fn(&Finding) -> &str, head: &str| {
        findings
            .iter()
            .map(|f| get(f).chars().count())
            .chain([head.len()])
            .max()
            .unwrap_or(0)
    };
    let wc = width(|f| &f.check, "CHECK");
    let ws = width(|f| &f.subject, "HOST");
    let wr = width(|f| &f.result, "RESULT").min(60);
    let mut out = format!("TLS check of {domain} from this gateway\n\n");
    out.push_str(&format!(
        "{:<4}  {:<wc$}  {:<ws$}  {:<wr$}  WHY\n",
        "", "CHECK", "HOST", "RESULT"
    ));
    for f in findings {
        let result: String = if f.result.chars().count() > wr {
            f.result.chars().take(wr - 1).chain(['…']).collect()
        } else {
            f.result.clone()
        };
        out.push_str(&format!(
            "{}  {:<wc$}  {:<ws$}  {:<wr$}  {}\n",
            paint(f.severity, colour),
            f.check,
            f.subject,
            result,
            f.reason
        ));
    }
    let worst = findings
        .iter()
        .map(|f| f.severity)
        .max()
        .unwrap_or(Severity::Info);
    out.push_str(&format!(
        "\nverdict: {}\n",
        match worst {
            Severity::Fail =>
                "FAIL — mail to this domain would not be delivered, or not protected as it asks",
            Severity::Warn => "WARN — mail goes out, but something should be fixed",
            _ => "OK",
        }
    ));
    out
}
