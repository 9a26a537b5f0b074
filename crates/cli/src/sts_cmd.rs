//! `portcullis sts publish`: the DNS records that announce the MTA-STS
//! policies the gateway hosts (`[mta-sts.hosting]`): per domain the
//! `_mta-sts.<domain>` TXT record, whose `id` is a digest of the policy text
//! (so it changes exactly when the served policy does: publish it again
//! after every such change), and the `_smtp._tls.<domain>` TXT record when
//! TLS report addresses are configured. Printed in zone-file syntax, or
//! as JSON.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use portcullis_mta::config::LoadedConfig;
use portcullis_mta::sts_host::{HostedPolicy, POLICY_PATH};
use serde::Serialize;

use crate::output::{CmdResult, emit, finish};

/// MTA-STS for the domains the gateway receives mail for.
#[derive(Debug, Subcommand)]
pub enum StsCommand {
    /// Print the DNS records announcing the hosted MTA-STS policies
    /// ([mta-sts.hosting] of the configuration): `_mta-sts.<domain>` TXT with
    /// an id derived from the policy (it changes whenever the policy does),
    /// and `_smtp._tls.<domain>` TXT when tls-report-rua is set. Nothing is
    /// changed; publish them in your DNS.
    ///
    /// Example: portcullis sts publish --config /etc/portcullis/portcullis.toml
    Publish {
        /// The configuration file. Default: the built-in configuration
        /// (which hosts no policy).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

/// `sts publish --json`: one entry per hosted domain.
#[derive(Debug, Serialize)]
struct Published {
    domain: String,
    policy_url: String,
    policy: String,
    records: Vec<Record>,
}

#[derive(Debug, Serialize)]
struct Record {
    name: String,
    r#type: &'static str,
    value: String,
}

/// Runs an `sts` command.
pub fn run(cmd: StsCommand, json: bool) -> ExitCode {
    match cmd {
        StsCommand::Publish { config } => finish(publish(config, json)),
    }
}

fn publish(config: Option<PathBuf>, json: bool) -> CmdResult {
    let loaded = match &config {
        Some(path) => LoadedConfig::load(path).map_err(|r| r.to_string())?,
        None => LoadedConfig::builtin(),
    };
    if loaded.config.mta_sts.hosting.is_none() {
        return Err(format!(
            "{} hosts no MTA-STS policy; add [mta-sts.hosting] and a [[mta-sts.hosting.domain]] (see examples/portcullis.toml)",
            config.map_or_else(
                || "the built-in configuration".to_owned(),
                |p| p.display().to_string()
            )
        ));
    }
    let policies = loaded.hosted_policies().map_err(|r| r.to_string())?;
    let published: Vec<Published> = policies.iter().map(published).collect();
    emit(json, &published, || human(&policies, &published))
}

fn published(p: &HostedPolicy) -> Published {
    let mut records = Vec::new();
    let (name, value) = p.sts_record();
    records.push(Record {
        name,
        r#type: "TXT",
        value,
    });
    if let Some((name, value)) = p.tlsrpt_record() {
        records.push(Record {
            name,
            r#type: "TXT",
            value,
        });
    }
    Published {
        domain: p.domain.as_str().to_owned(),
        policy_url: format!("https://{}{POLICY_PATH}", p.policy_host()),
        policy: p.policy_text(),
        records,
    }
}

fn human(policies: &[HostedPolicy], published: &[Published]) -> String {
    let mut text = String::new();
    for (p, out) in policies.iter().zip(published) {
        let _ = writeln!(
            text,
            "; {}: mode {}, {} mx pattern(s), max_age {} s; served at {} ({} must resolve to this gateway)",
            out.domain,
            p.policy.mode().as_str(),
            p.policy.mx().len(),
            p.policy.max_age(),
            out.policy_url,
            p.policy_host()
        );
        for r in &out.records {
            let _ = writeln!(text, "{}. IN TXT \"{}\"", r.name, r.value);
        }
    }
    text
}
