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

/// `println!` that ends the program quietly when standard output is a
/// closed pipe (see `output::out`).
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` with the same handling of a closed pipe.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::out(format_args!($($arg)*))
    };
}

mod acme_cmd;
mod ca_cmd;
mod cert_cmd;
mod check_cmd;
mod cluster_cmd;
mod config_cmd;
mod ctl_alerts;
mod ctl_args;
mod ctl_client;
mod ctl_cmd;
mod ctl_health;
mod ctl_never_downgrade;
mod ctl_print;
mod dane_cmd;
mod docs_cmd;
mod notify;
mod output;
mod queue_cmd;
mod queue_print;
mod run_cmd;
mod sts_cmd;
mod tls_report_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Options before the command. `--store` concerns `cert` and `ca` only
/// (they also take it after the command); `--json` works everywhere and
/// is refused where a command's output is not a result.
#[derive(Debug, Clone, clap::Args)]
pub struct Global {
    /// Certificate store directory, for `cert` and `ca`. Default:
    /// $PORTCULLIS_STORE, else ./portcullis-data/certs. Commands that add
    /// something create it (mode 0700) if missing; the others report that it
    /// is missing. Clear the directory's owner-write bit (chmod u-w) to make
    /// the store read-only.
    #[arg(
        long,
        env = "PORTCULLIS_STORE",
        default_value = "./portcullis-data/certs",
        value_name = "DIR"
    )]
    pub store: PathBuf,

    /// Print JSON instead of text (for scripts).
    #[arg(long, global = true)]
    pub json: bool,
}

/// `--store` where it means something: after `cert` or `ca`.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreOption {
    /// Certificate store directory (overrides the one given before the
    /// command, $PORTCULLIS_STORE and ./portcullis-data/certs).
    #[arg(
        long = "store",
        id = "command_store",
        global = true,
        value_name = "DIR"
    )]
    pub store: Option<PathBuf>,
}

/// `portcullis cert …` with its store option.
#[derive(Debug, clap::Args)]
pub struct CertGroup {
    #[command(flatten)]
    store: StoreOption,
    #[command(subcommand)]
    command: cert_cmd::CertCommand,
}

/// `portcullis ca …` with its store option.
#[derive(Debug, clap::Args)]
pub struct CaGroup {
    #[command(flatten)]
    store: StoreOption,
    #[command(subcommand)]
    command: ca_cmd::CaCommand,
}

impl Global {
    /// These options with the store given after the command, if any.
    fn with(&self, store: &StoreOption) -> Global {
        Global {
            store: store.store.clone().unwrap_or_else(|| self.store.clone()),
            json: self.json,
        }
    }
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
pub(crate) struct Cli {
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
    Cert(CertGroup),
    /// CA lists the gateway trusts when it verifies peers (system and custom).
    Ca(CaGroup),
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
    /// MTA-STS for our own domains: the DNS records announcing the policies
    /// the gateway serves ([mta-sts.hosting]).
    #[command(subcommand)]
    Sts(sts_cmd::StsCommand),
    /// TLS reports (RFC 8460) other organisations sent about our domains
    /// ([tls-report-inbox]): who saw failures to which of our MX, by result
    /// type and day; one report in full.
    #[command(subcommand)]
    TlsReport(tls_report_cmd::TlsReportCommand),
    /// Several gateways sharing one PostgreSQL database (configuration, TLS
    /// reports, MTA-STS cache, exemptions, alerts): set a node up, list the
    /// nodes.
    #[command(subcommand)]
    Cluster(cluster_cmd::ClusterCommand),
    /// Print a shell completion script (install: see the README).
    Completions(docs_cmd::CompletionsArgs),
    /// Write the manual pages (portcullis.1 and one per command) to a directory.
    Man(docs_cmd::ManArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.global.json;
    match cli.command {
        Command::Run(_) if json => output::finish(output::no_json(
            "run starts the gateway; its mail log goes to the configured log",
        )),
        Command::Run(args) => run_cmd::run(args),
        Command::Ctl { at, command } => ctl_cmd::run(&cli.global, &at, command),
        Command::Config(cmd) => config_cmd::run(cmd, json),
        Command::Queue(cmd) => queue_cmd::run(&cli.global, cmd),
        Command::Cert(g) => cert_cmd::run(&cli.global.with(&g.store), g.command),
        Command::Ca(g) => ca_cmd::run(&cli.global.with(&g.store), g.command),
        Command::Dane(cmd) => dane_cmd::run(&cli.global, cmd),
        Command::Check(args) => check_cmd::run(&cli.global, args),
        Command::Sts(cmd) => sts_cmd::run(cmd, json),
        Command::TlsReport(cmd) => tls_report_cmd::run(&cli.global, cmd),
        Command::Cluster(cmd) => cluster_cmd::run(&cli.global, cmd),
        Command::Completions(args) => docs_cmd::completions(args, json),
        Command::Man(args) => docs_cmd::man(args, json),
    }
}
