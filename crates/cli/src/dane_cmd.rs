//! `portcullis dane …`: TLSA record generation for operators who publish
//! records, and a verifier to debug a DANE deployment offline (a TLSA set
//! plus the chain a server presents → the verdict an MTA would reach).
//!
//! Exit codes of `verify`: 0 the chain is authenticated, 1 it is not (or the
//! set has no usable record), 2 the input could not be read.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use portcullis_dane::generate::{tlsa_for_chain, zone_line};
use portcullis_dane::pki_types::{CertificateDer, UnixTime};
use portcullis_dane::{
    MatchOptions, ReferenceNames, TlsaRecord, TlsaSet, Verdict, certs_from_pem_or_der, match_chain,
};

/// DANE (TLSA) tools.
#[derive(Debug, Subcommand)]
pub enum DaneCommand {
    /// Print the TLSA record (zone-file line) for a certificate.
    ///
    /// Example: portcullis dane tlsa --usage 3 --selector 1 --matching 1 cert.pem
    Tlsa {
        /// Certificate usage: 3 DANE-EE (the server's own certificate), 2 DANE-TA
        /// (an issuing CA), 1 PKIX-EE, 0 PKIX-TA.
        #[arg(long, default_value_t = 3)]
        usage: u8,
        /// Selector: 1 public key (survives certificate renewal with the same key),
        /// 0 full certificate.
        #[arg(long, default_value_t = 1)]
        selector: u8,
        /// Matching type: 1 SHA-256, 2 SHA-512, 0 exact content.
        #[arg(long, default_value_t = 1)]
        matching: u8,
        /// Owner name for the zone-file line, e.g. _25._tcp.mx.example.com
        /// (default: "@").
        #[arg(long)]
        name: Option<String>,
        /// Which certificate of the file to use (0 = first). Default: the first
        /// for usages 1 and 3, the last (top of the chain) for usages 0 and 2.
        #[arg(long)]
        depth: Option<usize>,
        /// PEM file (one certificate or a chain, leaf first) or a DER certificate.
        cert: PathBuf,
    },
    /// Change NAME's key without breaking DANE: a two-step rollover.
    ///
    /// Makes the next key (once), gets its certificate (--acme-domain …, or
    /// --csr FILE then `cert install-signed`), and prints the TLSA RRset to
    /// publish: the current and the next key. The running gateway switches
    /// to the next key only after it has seen the next key's record,
    /// DNSSEC-validated, for twice its TTL. --status looks now.
    ///
    /// Example: portcullis dane rollover mx1 --acme-domain mx1.example.com
    Rollover {
        /// Entry name.
        name: String,
        /// Type of the next key.
        #[arg(long, default_value = "ec-p256", value_parser = parse_key)]
        key: portcullis_certstore::KeySpec,
        /// Write a CSR for the next key to FILE (for a CA other than ACME).
        #[arg(long, value_name = "FILE")]
        csr: Option<PathBuf>,
        /// Get the next key's certificate by ACME for these names; repeat.
        #[arg(long = "acme-domain", value_name = "NAME")]
        acme_domains: Vec<String>,
        #[command(flatten)]
        acme: crate::acme_cmd::AcmeArgs,
        /// Look up the next key's TLSA records now (needs --config with [dns])
        /// and switch if they have been seen long enough.
        #[arg(long)]
        status: bool,
        /// Abandon the rollover and delete the next key.
        #[arg(long, conflicts_with_all = ["csr", "acme_domains", "status"])]
        abort: bool,
        /// Port of the TLSA records.
        #[arg(long, default_value_t = 25)]
        port: u16,
        #[command(flatten)]
        store: crate::StoreOption,
    },
    /// Compare what DNS publishes for NAME's MX names with the key served.
    ///
    /// Looks up _25._tcp.<host> TLSA for every DNS name on NAME's certificate
    /// (or each --host) through the gateway's resolver (--config [dns]),
    /// DNSSEC-validated, and says what to fix. Exit status 0 all good, 1
    /// something to fix.
    Check {
        /// Entry name.
        name: String,
        /// An MX host name to check instead of the certificate's; repeat.
        #[arg(long = "host", value_name = "HOST")]
        hosts: Vec<String>,
        /// Port of the TLSA records.
        #[arg(long, default_value_t = 25)]
        port: u16,
        /// Gateway configuration whose [dns] is used.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        #[command(flatten)]
        store: crate::StoreOption,
    },
    /// Check a server's certificate chain against TLSA records, as an MTA would.
    ///
    /// Example: portcullis dane verify --tlsa "3 1 1 ab12…" --chain chain.pem --name mx.example.com
    Verify {
        /// A TLSA record in presentation format ("3 1 1 <hex>"); repeat for a set.
        #[arg(long = "tlsa", required = true, value_name = "RECORD")]
        tlsa: Vec<String>,
        /// PEM file with the chain the server presents, leaf first.
        #[arg(long)]
        chain: PathBuf,
        /// Reference name: the MX host name, and the TLSA base domain after
        /// CNAME expansion; repeat for several.
        #[arg(long = "name", required = true, value_name = "HOST")]
        names: Vec<String>,
        /// Do not check names for DANE-EE(3) matches. This is what RFC 7672
        /// prescribes for SMTP; without it, DANE-EE names are checked as
        /// OpenSSL does by default.
        #[arg(long)]
        no_ee_namecheck: bool,
    },
}

/// `dane tlsa --json`.
#[derive(Debug, serde::Serialize)]
struct TlsaOut {
    usage: u8,
    selector: u8,
    matching: u8,
    /// The record's presentation form: `3 1 1 <hex>`.
    record: String,
    /// The zone-file line.
    zone_line: String,
}

/// `dane verify --json`.
#[derive(Debug, serde::Serialize)]
struct VerifyOut {
    verified: bool,
    /// The verdict in words.
    verdict: String,
    /// Records of the set that take no part in matching, and why.
    unusable: Vec<Unusable>,
}

#[derive(Debug, serde::Serialize)]
struct Unusable {
    record: String,
    reason: String,
}

/// Runs a `dane` subcommand (`--store` matters to `rollover` and `check`
/// only, `--json` to all).
pub fn run(global: &crate::Global, cmd: DaneCommand) -> ExitCode {
    let json = global.json;
    match cmd {
        DaneCommand::Rollover {
            name,
            key,
            csr,
            acme_domains,
            acme,
            status,
            abort,
            port,
            store,
        } => crate::output::finish(crate::acme_cmd::rollover(
            &global.with(&store),
            &name,
            key,
            csr.as_deref(),
            &acme_domains,
            &acme,
            status,
            abort,
            port,
        )),
        DaneCommand::Check {
            name,
            hosts,
            port,
            config,
            store,
        } => crate::acme_cmd::check(&global.with(&store), &name, &hosts, port, config.as_deref()),
        DaneCommand::Tlsa {
            usage,
            selector,
            matching,
            name,
            depth,
            cert,
        } => tlsa(
            usage,
            selector,
            matching,
            name.as_deref(),
            depth,
            &cert,
            json,
        ),
        DaneCommand::Verify {
            tlsa,
            chain,
            names,
            no_ee_namecheck,
        } => verify(&tlsa, &chain, &names, no_ee_namecheck, json),
    }
}

fn parse_key(s: &str) -> Result<portcullis_certstore::KeySpec, String> {
    s.parse()
        .map_err(|e: portcullis_certstore::Error| e.to_string())
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    certs_from_pem_or_der(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

fn tlsa(
    usage: u8,
    selector: u8,
    matching: u8,
    name: Option<&str>,
    depth: Option<usize>,
    cert: &Path,
    json: bool,
) -> ExitCode {
    let chain = match read_chain(cert) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let depth = depth.unwrap_or(match usage {
        0 | 2 => chain.len().saturating_sub(1),
        _ => 0,
    });
    match tlsa_for_chain(&chain, depth, usage, selector, matching) {
        Ok(record) if json => {
            let value = TlsaOut {
                usage,
                selector,
                matching,
                record: record.to_string(),
                zone_line: zone_line(&record, name),
            };
            match crate::output::emit(true, &value, String::new) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Ok(record) => {
            outln!("{}", zone_line(&record, name));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}: {e}", cert.display());
            ExitCode::from(2)
        }
    }
}

fn verify(
    records: &[String],
    chain: &Path,
    names: &[String],
    no_ee_namecheck: bool,
    json: bool,
) -> ExitCode {
    let mut set = Vec::new();
    for (i, text) in records.iter().enumerate() {
        match text.parse::<TlsaRecord>() {
            Ok(r) => set.push(r),
            Err(e) => {
                eprintln!("error: --tlsa #{} {text:?}: {e}", i + 1);
                return ExitCode::from(2);
            }
        }
    }
    let chain = match read_chain(chain) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let set = TlsaSet::new(set);
    let unusable: Vec<Unusable> = set
        .classify(false)
        .into_iter()
        .filter_map(|(r, why)| {
            why.map(|w| Unusable {
                record: r.to_string(),
                reason: w.to_string(),
            })
        })
        .collect();
    if !json {
        for u in &unusable {
            outln!("note: TLSA {} is unusable: {}", u.record, u.reason);
        }
    }
    let options = MatchOptions {
        pkix_trust_anchors: None,
        check_dane_ee_names: !no_ee_namecheck,
    };
    let verdict = match_chain(
        &set,
        &chain,
        &ReferenceNames::new(names),
        UnixTime::now(),
        &options,
    );
    let verified = matches!(verdict, Verdict::Matched(_));
    if json {
        let value = VerifyOut {
            verified,
            verdict: verdict.to_string(),
            unusable,
        };
        if let Err(e) = crate::output::emit(true, &value, String::new) {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    } else if verified {
        outln!("verified: {verdict}");
    } else {
        outln!("not verified: {verdict}");
    }
    if verified {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
