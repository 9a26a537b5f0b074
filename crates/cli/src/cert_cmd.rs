//! `portcullis cert ...`: the certificates the gateway presents. Create a key
//! and self-signed certificate, make the CSR for a CA, install what the CA
//! signed (with intermediates), import/export PEM and PKCS#12, list, show,
//! delete, and find what expires soon.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};
use portcullis_certstore::{ChainProblem, EntryView, KeySpec, SelfSignedRequest, Store, Timestamp};

use crate::Global;
use crate::output::{CmdResult, emit, finish, read_file, reason, write_output};

/// File formats for import and export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// PEM text (certificates, and the key when asked).
    Pem,
    /// PKCS#12 (.p12/.pfx) protected by a passphrase.
    Pkcs12,
}

/// Where a PKCS#12 passphrase comes from. Never from the command line, where
/// other users could read it in the process list.
#[derive(Debug, Clone, clap::Args)]
pub struct Passphrase {
    /// Read the PKCS#12 passphrase from the first line of this file.
    #[arg(long, value_name = "FILE", conflicts_with = "passphrase_env")]
    passphrase_file: Option<PathBuf>,
    /// Read the PKCS#12 passphrase from this environment variable.
    #[arg(long, value_name = "VAR")]
    passphrase_env: Option<String>,
}

impl Passphrase {
    fn get(&self) -> Result<String, String> {
        if let Some(path) = &self.passphrase_file {
            let text = String::from_utf8(read_file(path)?)
                .map_err(|_| format!("passphrase file {} is not UTF-8 text", path.display()))?;
            return Ok(text.lines().next().unwrap_or("").to_owned());
        }
        if let Some(var) = &self.passphrase_env {
            return std::env::var(var)
                .map_err(|_| format!("environment variable {var} is not set"));
        }
        Err("a PKCS#12 file needs a passphrase: give --passphrase-file FILE or --passphrase-env VAR".into())
    }
}

/// Certificate commands.
#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Create a new key and a self-signed certificate under NAME.
    ///
    /// The self-signed certificate lets TLS work at once (peers that do not
    /// verify accept it). Then run `cert csr NAME` and send the request to a CA.
    Create {
        /// Name of the entry in the store (letters, digits, '.', '_', '-').
        name: String,
        /// Common name: the host name peers connect to, e.g. mx1.example.com.
        #[arg(long, value_name = "FQDN")]
        cn: String,
        /// Organisation (O), e.g. "Example Ltd".
        #[arg(long)]
        org: Option<String>,
        /// Organisational unit (OU).
        #[arg(long)]
        unit: Option<String>,
        /// Locality or city (L).
        #[arg(long)]
        locality: Option<String>,
        /// State or province (ST).
        #[arg(long)]
        state: Option<String>,
        /// Two-letter ISO 3166 country code (C), e.g. DE, GB, US, JP.
        #[arg(long)]
        country: Option<String>,
        /// Days until the certificate expires (1 to 3650).
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Additional subject alternative name (DNS name or IP address); repeat for more.
        /// The common name is always included.
        #[arg(long = "san", value_name = "NAME")]
        sans: Vec<String>,
        /// Key type: rsa2048, rsa3072, rsa4096, ec-p256, ec-p384.
        #[arg(long, default_value = "rsa2048", value_parser = parse_key)]
        key: KeySpec,
        /// Accept names that are not fully qualified domain names (e.g. "localhost").
        #[arg(long)]
        no_fqdn_check: bool,
    },
    /// Print (or write) a certificate signing request for NAME's key.
    ///
    /// The request carries the subject and names of the current certificate.
    /// Send it to your CA, then install the answer with `cert install-signed`.
    Csr {
        /// Entry name.
        name: String,
        /// Generate a new key for this request (renewal with a fresh key). The
        /// current certificate stays in use until the signed one is installed.
        #[arg(long, value_name = "TYPE", value_parser = parse_key)]
        new_key: Option<KeySpec>,
        /// Write the CSR to FILE instead of standard output.
        #[arg(long, short, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Install the certificate your CA signed, with its intermediates.
    ///
    /// Give the files the CA sent (certificate, intermediates or a bundle, in
    /// any order). The certificate must be for NAME's key; it replaces the
    /// self-signed one. The chain is put in order (leaf first) and missing,
    /// duplicate or unrelated intermediates are reported.
    InstallSigned {
        /// Entry name.
        name: String,
        /// PEM or DER files: the signed certificate and its intermediates.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Import an existing certificate and key (PEM or PKCS#12) as NAME.
    Import {
        /// Entry name.
        name: String,
        /// PEM file (certificate chain, may include the key) or PKCS#12 file.
        file: PathBuf,
        /// PEM private key, when it is not in FILE.
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        /// Input format; guessed from the content when omitted.
        #[arg(long, value_enum)]
        format: Option<Format>,
        #[command(flatten)]
        passphrase: Passphrase,
        /// Replace an existing entry of the same name.
        #[arg(long)]
        replace: bool,
    },
    /// Export NAME's chain (and key) as PEM or PKCS#12.
    Export {
        /// Entry name.
        name: String,
        /// Output file ('-' for standard output).
        #[arg(long, short, value_name = "FILE")]
        out: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value = "pem")]
        format: Format,
        /// PEM only: include the private key (unencrypted!). PKCS#12 always includes it, encrypted.
        #[arg(long)]
        with_key: bool,
        /// PKCS#12 only: 3DES/SHA-1 encryption for old Windows or Java versions.
        #[arg(long)]
        legacy: bool,
        #[command(flatten)]
        passphrase: Passphrase,
    },
    /// List all certificates with their expiry and warnings.
    List {
        /// Warn about certificates expiring within this many days.
        #[arg(long, default_value_t = 30)]
        warn_days: u32,
    },
    /// Show one certificate: subject, SANs, issuer, validity, key, fingerprints, chain, warnings.
    Show {
        /// Entry name.
        name: String,
        /// Warn about certificates expiring within this many days.
        #[arg(long, default_value_t = 30)]
        warn_days: u32,
        /// Also print the pending CSR in PEM.
        #[arg(long)]
        csr: bool,
    },
    /// Delete a certificate and its key from the store.
    Delete {
        /// Entry name.
        name: String,
    },
    /// Obtain a certificate for NAME from an ACME CA (RFC 8555), e.g. Let's Encrypt.
    ///
    /// Keeps NAME's key (a published TLSA 3 1 1 record stays valid); creates
    /// NAME with a new key first when it does not exist. The CA checks that
    /// you control each --domain: with http-01 it fetches
    /// http://DOMAIN/.well-known/acme-challenge/… from the listener this
    /// command runs on --http-listen (port 80 by default).
    ///
    /// Example: portcullis cert acme mx1 --domain mx1.example.com --contact mailto:postmaster@example.com
    Acme {
        /// Entry name.
        name: String,
        /// A name for the certificate (the first is the common name); repeat.
        #[arg(long = "domain", required = true, value_name = "NAME")]
        domains: Vec<String>,
        /// Key type when NAME is created.
        #[arg(long, default_value = "ec-p256", value_parser = parse_key)]
        key: KeySpec,
        /// Certify the staged next key of a DANE rollover instead of the served key.
        #[arg(long)]
        next_key: bool,
        #[command(flatten)]
        acme: crate::acme_cmd::AcmeArgs,
    },
    /// List certificates that expire within DAYS (or have expired); exit status 3 if any.
    Expiring {
        /// Horizon in days.
        #[arg(long, default_value_t = 30)]
        days: u32,
    },
}

fn parse_key(s: &str) -> Result<KeySpec, String> {
    s.parse().map_err(reason)
}

/// Run a certificate command.
pub fn run(global: &Global, cmd: CertCommand) -> ExitCode {
    if let CertCommand::Expiring { days } = cmd {
        return expiring(global, days);
    }
    finish(dispatch(global, cmd))
}

fn open(global: &Global) -> Result<Store, String> {
    Store::open(&global.store).map_err(reason)
}

fn open_or_create(global: &Global) -> Result<Store, String> {
    Store::open_or_create(&global.store).map_err(reason)
}

fn dispatch(global: &Global, cmd: CertCommand) -> CmdResult {
    let json = global.json;
    match cmd {
        CertCommand::Acme {
            name,
            domains,
            key,
            next_key,
            acme,
        } => crate::acme_cmd::obtain(global, &name, &domains, key, next_key, &acme),
        CertCommand::Create {
            name,
            cn,
            org,
            unit,
            locality,
            state,
            country,
            days,
            sans,
            key,
            no_fqdn_check,
        } => {
            let req = SelfSignedRequest {
                common_name: cn,
                organization: org,
                unit,
                locality,
                state,
                country: country.map(|c| c.to_ascii_uppercase()),
                days,
                sans,
                key,
                check_fqdn: !no_fqdn_check,
            };
            // Validate before creating the store directory: a typo must not leave anything behind.
            req.validate().map_err(reason)?;
            let store = open_or_create(global)?;
            let view = store.create_self_signed(&name, &req).map_err(reason)?;
            emit(json, &view, || {
                format!(
                    "created {name:?}: self-signed certificate and {} key\nnext: portcullis cert csr {name} --out {name}.csr, and send the CSR to your CA\n\n{}",
                    view.key,
                    describe(&view)
                )
            })
        }
        CertCommand::Csr { name, new_key, out } => {
            let store = open(global)?;
            let csr = store.make_csr(&name, new_key).map_err(reason)?;
            match out {
                Some(path) => {
                    write_output(&path, csr.as_bytes(), false)?;
                    emit(
                        json,
                        &serde_json::json!({ "name": name, "csr_file": path, "new_key": new_key.is_some() }),
                        || {
                            format!(
                                "wrote the CSR for {name:?} to {}; send it to your CA, then run `portcullis cert install-signed {name} FILE...`",
                                path.display()
                            )
                        },
                    )
                }
                None if json => emit(
                    true,
                    &serde_json::json!({ "name": name, "csr_pem": csr }),
                    String::new,
                ),
                None => {
                    out!("{csr}");
                    Ok(())
                }
            }
        }
        CertCommand::InstallSigned { name, files } => {
            let store = open(global)?;
            let mut input = Vec::new();
            for f in &files {
                input.extend(read_file(f)?);
                input.push(b'\n');
            }
            let what = files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ");
            let report = store.install_signed(&name, &input, &what).map_err(reason)?;
            if report.staged_for_rollover {
                return emit(json, &report, || {
                    format!(
                        "installed the next key's certificate for {name:?}: it is served once the next key's TLSA record is published (portcullis dane rollover {name} --status)\n"
                    )
                });
            }
            emit(json, &report, || {
                let mut s = format!(
                    "installed the signed certificate for {name:?} (chain of {})\n",
                    report.entry.chain.len()
                );
                for p in &report.problems {
                    if matches!(
                        p,
                        ChainProblem::Duplicate { .. } | ChainProblem::Unrelated { .. }
                    ) {
                        s.push_str(&format!("note: {p}\n"));
                    }
                }
                if report.switched_to_new_key {
                    s.push_str("the renewal key made by `cert csr --new-key` is now in use\n");
                }
                s.push('\n');
                s.push_str(&describe(&report.entry));
                s
            })
        }
        CertCommand::Import {
            name,
            file,
            key,
            format,
            passphrase,
            replace,
        } => {
            let data = read_file(&file)?;
            let what = file.display().to_string();
            let format = format.unwrap_or_else(|| guess_format(&data));
            let key_data = key.as_deref().map(read_file).transpose()?;
            let pass = match format {
                Format::Pkcs12 => passphrase.get()?,
                Format::Pem => String::new(),
            };
            // A new store is only created once the input has been read successfully:
            // bad input must not leave an empty store behind.
            if Store::open(&global.store).is_err() {
                match format {
                    Format::Pkcs12 => {
                        portcullis_certstore::pkcs12::read(&data, &pass, &what).map(drop)
                    }
                    Format::Pem => portcullis_certstore::pem::parse(&data, &what).map(drop),
                }
                .map_err(reason)?;
            }
            let store = open_or_create(global)?;
            let report = match format {
                Format::Pkcs12 => store.import_pkcs12(&name, &data, &pass, &what, replace),
                Format::Pem => store.import_pem(&name, &data, key_data.as_deref(), &what, replace),
            }
            .map_err(reason)?;
            emit(json, &report, || {
                format!("imported {name:?}\n\n{}", describe(&report.entry))
            })
        }
        CertCommand::Export {
            name,
            out,
            format,
            with_key,
            legacy,
            passphrase,
        } => {
            let store = open(global)?;
            let (bytes, secret) = match format {
                Format::Pem => (
                    store
                        .export_pem(&name, with_key)
                        .map_err(reason)?
                        .into_bytes(),
                    with_key,
                ),
                Format::Pkcs12 => (
                    store
                        .export_pkcs12(&name, &passphrase.get()?, legacy)
                        .map_err(reason)?,
                    true,
                ),
            };
            write_output(&out, &bytes, secret)?;
            if out.as_os_str() == "-" {
                return Ok(());
            }
            emit(
                json,
                &serde_json::json!({ "name": name, "file": out, "format": format!("{format:?}").to_lowercase(), "with_key": secret }),
                || {
                    format!(
                        "exported {name:?} to {}{}",
                        out.display(),
                        if secret {
                            " (contains the private key; keep it safe)"
                        } else {
                            ""
                        }
                    )
                },
            )
        }
        CertCommand::List { warn_days } => {
            let store = open(global)?;
            let views = store.list(warn_days).map_err(reason)?;
            emit(json, &views, || {
                if views.is_empty() {
                    return "no certificates in the store (create one with `portcullis cert create`)".into();
                }
                let mut s = format!(
                    "{:<20} {:<32} {:<24} {:<16} WARNINGS\n",
                    "NAME", "SUBJECT CN", "EXPIRES", "KEY"
                );
                for v in &views {
                    let leaf = v.leaf();
                    s.push_str(&format!(
                        "{:<20} {:<32} {:<24} {:<16} {}\n",
                        v.name,
                        leaf.and_then(|l| l.common_name.clone()).unwrap_or_default(),
                        leaf.map(|l| l.not_after.to_string()).unwrap_or_default(),
                        v.key.to_string(),
                        v.warnings
                            .iter()
                            .map(|w| w.kind)
                            .collect::<Vec<_>>()
                            .join(",")
                    ));
                }
                s
            })
        }
        CertCommand::Show {
            name,
            warn_days,
            csr,
        } => {
            let store = open(global)?;
            let view = store.show(&name, warn_days).map_err(reason)?;
            emit(json, &view, || {
                let mut s = describe(&view);
                if csr && let Some(p) = &view.pending {
                    s.push('\n');
                    s.push_str(&p.csr_pem);
                }
                s
            })
        }
        CertCommand::Delete { name } => {
            let store = open(global)?;
            store.delete(&name).map_err(reason)?;
            emit(json, &serde_json::json!({ "deleted": name }), || {
                format!("deleted {name:?}")
            })
        }
        CertCommand::Expiring { .. } => Ok(()),
    }
}

fn expiring(global: &Global, days: u32) -> ExitCode {
    let result =
        open(global).and_then(|s| s.expiring_within(days, Timestamp::now()).map_err(reason));
    match result {
        Err(e) => finish(Err(e)),
        Ok(notices) => {
            let printed = emit(global.json, &notices, || {
                if notices.is_empty() {
                    return format!("no certificate expires within {days} days");
                }
                notices
                    .iter()
                    .map(|n| {
                        format!(
                            "{:<9} {:<20} {} expires {} ({} days)",
                            format!("{:?}", n.severity).to_lowercase(),
                            n.name,
                            n.subject,
                            n.not_after,
                            n.days_left
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            match printed {
                Err(e) => finish(Err(e)),
                // Exit status 3 lets a cron job alert without parsing the output.
                Ok(()) if !notices.is_empty() => ExitCode::from(3),
                Ok(()) => ExitCode::SUCCESS,
            }
        }
    }
}

fn guess_format(data: &[u8]) -> Format {
    let looks_like_pem = data.windows(11).any(|w| w == b"-----BEGIN ");
    if looks_like_pem || portcullis_certstore::CertInfo::from_der(data, "").is_ok() {
        Format::Pem
    } else {
        Format::Pkcs12
    }
}

/// The text `show` prints for an entry.
pub fn describe(v: &EntryView) -> String {
    let mut s = format!(
        "Name:        {}{}\n",
        v.name,
        if v.demo {
            " (demonstration certificate)"
        } else {
            ""
        }
    );
    s.push_str(&format!(
        "Key:         {} (SPKI SHA-256 {})\n",
        v.key, v.key_spki_sha256
    ));
    for (i, c) in v.chain.iter().enumerate() {
        let role = if i == 0 {
            "Certificate".to_owned()
        } else {
            format!("Chain [{i}]")
        };
        s.push_str(&format!("{role}:\n"));
        s.push_str(&format!("  Subject:   {}\n", c.subject));
        if !c.sans.is_empty() {
            s.push_str(&format!("  SANs:      {}\n", c.sans.join(", ")));
        }
        s.push_str(&format!(
            "  Issuer:    {}{}\n",
            c.issuer,
            if c.self_signed { " (self-signed)" } else { "" }
        ));
        s.push_str(&format!(
            "  Valid:     {} to {}\n",
            c.not_before, c.not_after
        ));
        s.push_str(&format!("  Key:       {}\n", c.key));
        s.push_str(&format!("  SHA-256:   {}\n", c.sha256));
        s.push_str(&format!("  SPKI SHA-256: {}\n", c.spki_sha256));
    }
    if let Some(p) = &v.pending {
        s.push_str(&format!(
            "Pending CSR: made {}{}\n",
            p.created,
            if p.new_key { " for a new key" } else { "" }
        ));
    }
    if v.warnings.is_empty() {
        s.push_str("Warnings:    none\n");
    } else {
        s.push_str("Warnings:\n");
        for w in &v.warnings {
            s.push_str(&format!("  - {}\n", w.message));
        }
    }
    s
}
