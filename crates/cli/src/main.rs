//! The `portcullis` command: a thin clap front-end over the Portcullis crates.
//! One module per command group (`cert_cmd`, `ca_cmd`), each with a `run` that
//! returns the process exit code; `output` prints human text or JSON and the
//! one-line errors. Adding a group is one enum variant and one match arm.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
// Doc comments here are `--help` text for operators, who read `<hex>` and
// `<data-dir>` as placeholders, not as HTML, and `[dns]` or `[acme]` as
// sections of the configuration file, not as links.
#![allow(rustdoc::invalid_html_tags, rustdoc::broken_intra_doc_links)]

mod acme_cmd;
mod ca_cmd;
mod cert_cmd;
mod check_cmd;
mod config_cmd;
mod ctl_args;
mod ctl_client;
mod ctl_cmd;
mod ctl_print;
mod dane_cmd;
mod notify;
mod output;
mod queue_cmd;
mod queue_print;
mod run_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Options every command understands.
#[derive(Debug, Clone, clap::Args)]
pub struct Global {
    /// Certificate store directory. Default: $PORTCULLIS_STORE, else
    /// ./portcullis-data/certs. Commands that add something create it (mode
    /// 0700) if missing; the others report that it is missing. Clear the
    /// directory's owner-write bit (chmod u-w) to make the store read-only.
    #[arg(
        long,
        global = true,
        env = "PORTCULLIS_STORE",
        default_value = "./portcullis-data/certs",
        value_name = "DIR"
    )]
    pub store: PathBuf,

    /// Print JSON instead of text (for scripts).
    #[arg(long, global = true)]
    pub json: bool,
}

/// Portcullis SMTP security gateway: run it, check its configuration and queue,
/// manage its certificates and trusted CAs.
///
/// Typical flow for a public certificate: `cert create` (key + self-signed
/// certificate), `cert csr` (send the request to your CA), `cert install-signed`
/// (the certificate and intermediates the CA returned), `cert show` (check the
/// chain and the warnings).
#[derive(Debug, Parser)]
#[command(name = "portcullis", version, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    global: Global,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway in the foreground until SIGTERM or SIGINT (then stop
    /// accepting and let open sessions finish within the grace delay, 30 s by
    /// default); SIGHUP reloads the configuration file. Without --config: a
    /// loopback listener on 127.0.0.1:2525 with a demonstration certificate,
    /// the admin listener on loopback, data in ./portcullis-data.
    Run(run_cmd::RunArgs),
    /// Control the running gateway through its admin API: status, suspend and
    /// resume listeners and delivery, reload, queue, STARTTLS exemptions,
    /// MTA-STS cache, DNS cache, configuration export/import, API tokens.
    Ctl {
        #[command(flatten)]
        at: ctl_cmd::CtlAt,
        #[command(subcommand)]
        command: ctl_args::CtlCommand,
    },
    /// Configuration file: validate one, or print the built-in default.
    #[command(subcommand)]
    Config(config_cmd::ConfigCommand),
    /// The queue of accepted messages not yet delivered: list, show, retry, hold,
    /// release, delete, bounce (through the running gateway, or on the spool
    /// files when it is stopped), check and salvage the spool files.
    #[command(subcommand)]
    Queue(queue_cmd::QueueCommand),
    /// Certificates the gateway presents: create, CSR, install, import, export, list, show, delete.
    #[command(subcommand)]
    Cert(cert_cmd::CertCommand),
    /// CA lists the gateway trusts when it verifies peers (system and custom).
    #[command(subcommand)]
    Ca(ca_cmd::CaCommand),
    /// Check a mail domain's TLS from this gateway: MX and DNSSEC, TLSA,
    /// STARTTLS, certificates, DANE, MTA-STS, TLS-RPT and the delivery
    /// decision, one verdict per line. Exit status 0 good, 1 warnings, 2
    /// failures, 3 the check could not run.
    ///
    /// Example: portcullis check example.com --config /etc/portcullis/portcullis.toml
    Check(check_cmd::CheckArgs),
    /// DANE: TLSA records for a certificate, check a chain or what DNS publishes, key rollover.
    #[command(subcommand)]
    Dane(dane_cmd::DaneCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run_cmd::run(args),
        Command::Ctl { at, command } => ctl_cmd::run(&cli.global, &at, command),
        Command::Config(cmd) => config_cmd::run(cmd),
        Command::Queue(cmd) => queue_cmd::run(&cli.global, cmd),
        Command::Cert(cmd) => cert_cmd::run(&cli.global, cmd),
        Command::Ca(cmd) => ca_cmd::run(&cli.global, cmd),
        Command::Dane(cmd) => dane_cmd::run(&cli.global, cmd),
        Command::Check(args) => check_cmd::run(&cli.global, args),
    }
}
