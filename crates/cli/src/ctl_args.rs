//! The arguments of `portcullis ctl`: one subcommand per operator action,
//! with the help text an operator reads. `ctl_cmd.rs` runs them.

use std::path::PathBuf;

use clap::Subcommand;

/// `ctl` commands.
#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// Listeners, delivery, queue, TLS of the last hour, certificates.
    Status,
    /// Each health gauge (memory, queue, spool free space, sessions) against
    /// its [health] marks, and whether the gateway is in resource
    /// conservation.
    Health,
    /// Stop a listener accepting, or delivery to a destination.
    #[command(subcommand)]
    Suspend(SuspendWhat),
    /// Accept again, or deliver again.
    #[command(subcommand)]
    Resume(ResumeWhat),
    /// Read the configuration file again and apply it without a restart (all
    /// or nothing; problems are printed as FILE:LINE:COL).
    Reload,
    /// The queue (same commands as `portcullis queue`, through the API).
    #[command(subcommand)]
    Queue(QueueWhat),
    /// The temporary STARTTLS exemptions (hosts sent mail in cleartext for an
    /// hour after a failed handshake).
    #[command(subcommand)]
    Tls(TlsWhat),
    /// The MTA-STS policy cache.
    #[command(subcommand, name = "mta-sts")]
    MtaSts(StsWhat),
    /// The never-downgrade memory: domains delivered to with authenticated
    /// TLS, which are deferred rather than sent unauthenticated or in
    /// cleartext while remembered.
    #[command(subcommand, name = "never-downgrade")]
    NeverDowngrade(NeverDowngradeWhat),
    /// The DNS cache (flush: ask the servers again).
    #[command(subcommand)]
    Dns(DnsWhat),
    /// TLS reports (RFC 8460) this gateway sends about its deliveries.
    #[command(subcommand, name = "tls-report")]
    TlsReport(TlsReportWhat),
    /// Export, import or reset the configuration.
    #[command(subcommand)]
    Config(ConfigWhat),
    /// API tokens.
    #[command(subcommand)]
    Token(TokenWhat),
    /// The recent alerts, newest first, and alert deliveries still pending
    /// (read from the data directory when the gateway does not answer).
    Alerts,
    /// The cluster this node belongs to: every node's state, queue size,
    /// configuration version and last heartbeat.
    #[command(subcommand)]
    Cluster(ClusterWhat),
}

#[derive(Debug, Subcommand)]
pub enum SuspendWhat {
    /// Stop accepting connections on a listener; open sessions have --delay
    /// seconds to finish (default: the shutdown grace), then hear 421.
    Listener {
        name: String,
        #[arg(long, value_name = "SECONDS")]
        delay: Option<u64>,
    },
    /// Stop delivering to a domain, the domains below one (.example.com) or
    /// ALL; messages wait in the queue.
    Delivery {
        #[arg(default_value = "ALL")]
        target: String,
        /// On every node of the cluster (kept in the cluster database,
        /// applied by each node within its poll interval).
        #[arg(long)]
        cluster: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ResumeWhat {
    /// Accept connections again.
    Listener { name: String },
    /// Deliver again (the target as it was suspended).
    Delivery {
        #[arg(default_value = "ALL")]
        target: String,
        /// A suspension made with --cluster.
        #[arg(long)]
        cluster: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum QueueWhat {
    /// Queued messages: id, age, size, attempts, next attempt, sender,
    /// recipients still to deliver, last error.
    List,
    /// One message: envelope, per-recipient status, schedule, headers.
    Show {
        /// Message id (hexadecimal, as in the mail log).
        id: String,
    },
    /// Attempt delivery now: one message, every message to a domain, or all.
    #[command(group(clap::ArgGroup::new("which").required(true).args(["id", "domain", "all"])))]
    Retry {
        /// Message id.
        id: Option<String>,
        /// Every message with a recipient in this domain.
        #[arg(long)]
        domain: Option<String>,
        /// Every message not held.
        #[arg(long)]
        all: bool,
    },
    /// Keep a message from being delivered until it is released.
    Hold { id: String },
    /// Release a held message: it is attempted at once.
    Release { id: String },
    /// Remove a message from the queue without telling the sender.
    Delete { id: String },
    /// Return a message to its sender with a delivery status notification
    /// and remove it from the queue.
    Bounce { id: String },
}

#[derive(Debug, Subcommand)]
pub enum TlsReportWhat {
    /// Send one UTC day's reports now, to every report address of every
    /// domain with counts (again, if they were sent already).
    Send {
        /// The UTC day, YYYY-MM-DD.
        #[arg(long, value_name = "YYYY-MM-DD")]
        day: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TlsWhat {
    /// list | clear [HOST]
    #[command(subcommand)]
    Exemptions(ExemptionsWhat),
}

#[derive(Debug, Subcommand)]
pub enum ExemptionsWhat {
    /// Hosts currently sent mail in cleartext, and until when.
    List,
    /// End one host's exemption, or all.
    Clear { host: Option<String> },
}

#[derive(Debug, Subcommand)]
pub enum StsWhat {
    /// list | flush [DOMAIN]
    #[command(subcommand)]
    Cache(CacheWhat),
}

#[derive(Debug, Subcommand)]
pub enum CacheWhat {
    /// Cached policies: domain, mode, id, MX patterns, expiry.
    List,
    /// Forget one domain's policy, or all: the next delivery fetches it again.
    Flush { domain: Option<String> },
}

#[derive(Debug, Subcommand)]
pub enum NeverDowngradeWhat {
    /// Remembered domains: how they were authenticated, since and until when.
    List,
    /// Forget one domain, or all: its next delivery goes as its policy
    /// allows (and is remembered again if authenticated).
    Forget { domain: Option<String> },
}

#[derive(Debug, Subcommand)]
pub enum DnsWhat {
    /// Forget every cached answer.
    Flush,
}

#[derive(Debug, Subcommand)]
pub enum ConfigWhat {
    /// Print the configuration in force. Secrets (API tokens, passphrases,
    /// keys given by value) are masked by default; --encrypt encrypts them
    /// under a passphrase (Argon2id + XChaCha20-Poly1305) so the file can be
    /// imported again; --plain prints them (admin token needed).
    #[command(group(clap::ArgGroup::new("secrets").args(["mask", "encrypt", "plain"])))]
    Export {
        #[arg(long)]
        mask: bool,
        #[arg(long)]
        encrypt: bool,
        #[arg(long)]
        plain: bool,
        /// The passphrase, first line of this file (else $PORTCULLIS_PASSPHRASE).
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
        /// Write here instead of standard output (owner-only).
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Check a configuration and apply it like a reload, then write it to the
    /// gateway's configuration file. With --section, only that section of
    /// FILE is loaded (an empty section clears it).
    Import {
        file: PathBuf,
        #[arg(long, value_name = "NAME")]
        section: Option<String>,
        /// The passphrase of an --encrypt export (else $PORTCULLIS_PASSPHRASE).
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
    },
    /// Return one section to the built-in default and apply it.
    Reset { section: String },
}

#[derive(Debug, Subcommand)]
pub enum TokenWhat {
    /// Make a token; it is printed once (only its hash is kept).
    Create {
        name: String,
        #[arg(long, value_parser = ["read", "admin"], default_value = "read")]
        role: String,
    },
    /// The tokens: name, role, when made (never the token itself).
    List,
    /// Revoke a token: requests carrying it are refused from now on.
    Revoke { name: String },
}

#[derive(Debug, Subcommand)]
pub enum ClusterWhat {
    /// The nodes, their state, queue size and last heartbeat.
    Status,
}
