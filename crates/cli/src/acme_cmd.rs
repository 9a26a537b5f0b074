//! `portcullis cert acme` and `portcullis dane rollover|check`: the commands
//! that talk to an ACME CA or ask DNS, the way the running gateway does
//! (`portcullis-mta`'s `acme`, `dane_check` and `cert_manager` modules, the
//! resolver from the configuration's `[dns]`). Each starts a small async
//! runtime of its own.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use portcullis_certstore::{KeySpec, OrderKey, SelfSignedRequest, Store, Timestamp, TlsSettings};
use portcullis_mta::acme::{
    AcmeClient, AcmeSettings, ChallengeKind, Challenges, Http01Listener, Http01Responder,
    OrderRequest, TlsAlpnResponder,
};
use portcullis_mta::cert_manager::{RolloverProgress, describe, rollover_step};
use portcullis_mta::config::LoadedConfig;
use portcullis_mta::dns::Resolver;
use serde::Serialize;

use crate::Global;
use crate::output::{CmdResult, emit, read_file, reason, write_output};

/// How to reach the ACME CA and answer its challenges.
#[derive(Debug, Clone, clap::Args)]
pub struct AcmeArgs {
    /// ACME directory URL. Default: [acme] directory of --config, else
    /// Let's Encrypt's production directory.
    #[arg(long, value_name = "URL")]
    directory: Option<String>,
    /// PEM file with the CA of the ACME server's own HTTPS certificate (a
    /// private or test CA), trusted besides the store's CA lists.
    #[arg(long, value_name = "FILE")]
    directory_ca: Option<PathBuf>,
    /// Contact for the ACME account (mailto:postmaster@example.com); repeat.
    #[arg(long, value_name = "URI")]
    contact: Vec<String>,
    /// Challenge type the CA validates.
    #[arg(long, default_value = "http-01", value_parser = ["http-01", "tls-alpn-01"])]
    challenge: String,
    /// Where the HTTP-01 challenge listener binds while the order runs (the
    /// CA connects to port 80 of each name). Default: [acme] http-listen of
    /// --config, else 0.0.0.0:80. Stop a running gateway's challenge
    /// listener first, or let the gateway renew.
    #[arg(long, value_name = "IP:PORT")]
    http_listen: Option<SocketAddr>,
    /// Where a temporary TLS-ALPN-01 listener binds (the CA connects to
    /// port 443 of each name).
    #[arg(long, value_name = "IP:PORT", default_value = "0.0.0.0:443")]
    tls_alpn_listen: SocketAddr,
    /// Gateway configuration: its [dns] resolves the CA's host, its [acme]
    /// gives the defaults above.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

fn load_config(path: Option<&Path>) -> Result<LoadedConfig, String> {
    match path {
        Some(p) => LoadedConfig::load(p).map_err(|r| r.to_string()),
        None => Ok(LoadedConfig::builtin()),
    }
}

fn resolver(config: &LoadedConfig) -> Result<Option<Resolver>, String> {
    match config.resolver_settings().map_err(|r| r.to_string())? {
        Some(s) => Resolver::new(&s).map(Some).map_err(reason),
        None => Ok(None),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

/// What `cert acme` prints with --json.
#[derive(Serialize)]
struct Obtained<'a> {
    name: &'a str,
    domains: &'a [String],
    directory: &'a str,
    next_key: bool,
    report: portcullis_certstore::InstallReport,
}

/// Runs one ACME order for `name` (created with a new key if missing).
pub fn obtain(
    global: &Global,
    name: &str,
    domains: &[String],
    key: KeySpec,
    next_key: bool,
    args: &AcmeArgs,
) -> CmdResult {
    let store = Store::open_or_create(&global.store).map_err(reason)?;
    if !store.contains(name) {
        let Some(first) = domains.first() else {
            return Err("give at least one --domain".into());
        };
        let mut req = SelfSignedRequest::new(first.clone());
        req.sans = domains.get(1..).unwrap_or_default().to_vec();
        req.key = key;
        store.create_self_signed(name, &req).map_err(reason)?;
        eprintln!(
            "created {name:?} with a new {key} key and a self-signed certificate until the CA's arrives"
        );
    }
    let config = load_config(args.config.as_deref())?;
    let acme_config = config.config.acme.clone();
    let mut settings = AcmeSettings::new(
        args.directory
            .clone()
            .or_else(|| acme_config.as_ref().map(|a| a.directory.clone()))
            .unwrap_or_else(|| AcmeSettings::LETS_ENCRYPT.to_owned()),
    );
    settings.contact = if args.contact.is_empty() {
        acme_config
            .as_ref()
            .map(|a| a.contact.clone())
            .unwrap_or_default()
    } else {
        args.contact.clone()
    };
    let ca_file = args
        .directory_ca
        .clone()
        .or_else(|| acme_config.as_ref().and_then(|a| a.server_ca_file.clone()));
    if let Some(f) = ca_file {
        settings.server_roots =
            portcullis_certstore::pem::parse_certs(&read_file(&f)?, &f.display().to_string())
                .map_err(reason)?;
    }
    let challenge: ChallengeKind = args.challenge.parse()?;
    let http_listen = args
        .http_listen
        .or_else(|| {
            acme_config
                .as_ref()
                .and_then(|a| a.http_listen.parse().ok())
        })
        .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 80)));
    let request = OrderRequest {
        entry: name.to_owned(),
        domains: domains.to_vec(),
        key: if next_key {
            OrderKey::Next
        } else {
            OrderKey::Current
        },
        challenge,
    };
    let rt = runtime()?;
    let report = rt.block_on(async {
        let resolver = resolver(&config)?;
        let client = AcmeClient::new(settings.clone(), &store, resolver).map_err(reason)?;
        let mut challenges = Challenges::default();
        let mut _http = None;
        let mut _tls = None;
        match challenge {
            ChallengeKind::Http01 => {
                let responder = Http01Responder::default();
                let listener = Http01Listener::bind(http_listen, responder.clone())
                    .await
                    .map_err(|e| {
                        format!("cannot bind the HTTP-01 challenge listener on {http_listen}: {e} (--http-listen)")
                    })?;
                eprintln!("HTTP-01 challenge listener on {}", listener.local_addr());
                challenges.http01 = Some(responder);
                _http = Some(listener);
            }
            _ => {
                let (responder, task) = tls_alpn_listener(&store, name, args.tls_alpn_listen).await?;
                challenges.tls_alpn01 = Some(responder);
                _tls = Some(task);
            }
        }
        eprintln!(
            "ordering a certificate for {} from {} ({challenge})…",
            domains.join(", "),
            settings.directory
        );
        let result = client.obtain(&store, &request, &challenges).await.map_err(reason);
        if let Some(t) = _tls {
            t.abort();
        }
        result
    })?;
    emit(
        global.json,
        &Obtained {
            name,
            domains,
            directory: &settings.directory,
            next_key,
            report: report.clone(),
        },
        || {
            let leaf = report.entry.leaf();
            let until = leaf.map(|l| l.not_after.to_string()).unwrap_or_default();
            if report.staged_for_rollover {
                format!(
                    "obtained the next key's certificate for {name:?} ({}), valid until {until}; it is served once the next key's TLSA record is published (portcullis dane rollover {name} --status)\n",
                    domains.join(", ")
                )
            } else {
                format!(
                    "installed a certificate for {name:?} ({}) from {}, valid until {until}\nkey kept: TLSA 3 1 1 {} stays valid\n",
                    domains.join(", "),
                    settings.directory,
                    portcullis_mta::dane_check::tlsa_data(&report.entry.key_spki_sha256)
                )
            }
        },
    )
}

/// A TLS listener that answers only TLS-ALPN-01 validation handshakes (the
/// gateway has no HTTPS listener of its own to mount the responder on yet).
async fn tls_alpn_listener(
    store: &Store,
    name: &str,
    addr: SocketAddr,
) -> Result<(Arc<TlsAlpnResponder>, tokio::task::JoinHandle<()>), String> {
    let settings = TlsSettings::default();
    let (_, live) = store.live_server_config(name, &settings).map_err(reason)?;
    let provider = settings.provider().map_err(reason)?;
    let responder = Arc::new(TlsAlpnResponder::new(live, provider));
    let config = responder
        .clone()
        .server_config(&settings.protocol_versions().map_err(reason)?, Vec::new())
        .map_err(reason)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        format!("cannot bind the TLS-ALPN-01 listener on {addr}: {e} (--tls-alpn-listen)")
    })?;
    eprintln!("TLS-ALPN-01 challenge listener on {addr}");
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ =
                    tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(tcp))
                        .await;
            });
        }
    });
    Ok((responder, task))
}

/// What `dane rollover` prints with --json.
#[derive(Serialize)]
struct RolloverPlan {
    name: String,
    current_key_spki_sha256: String,
    next_key_spki_sha256: String,
    publish: Vec<String>,
    status: Option<String>,
}

/// `dane rollover NAME`: start (or show) a two-step key rollover.
#[allow(clippy::too_many_arguments)]
pub fn rollover(
    global: &Global,
    name: &str,
    key: KeySpec,
    csr: Option<&Path>,
    acme_domains: &[String],
    acme: &AcmeArgs,
    status: bool,
    abort: bool,
    port: u16,
) -> CmdResult {
    let store = Store::open(&global.store).map_err(reason)?;
    if abort {
        store.abort_rollover(name).map_err(reason)?;
        return emit(
            global.json,
            &serde_json::json!({"name": name, "aborted": true}),
            || {
                format!(
                    "rollover of {name:?} aborted: the next key is deleted; keep publishing the current key's record\n"
                )
            },
        );
    }
    let entry = store.entry(name).map_err(reason)?;
    if entry.next.is_none() {
        let next = store.begin_rollover(name, key).map_err(reason)?;
        eprintln!(
            "rollover of {name:?} started: next key {} ({key})",
            next.key.spki_sha256()
        );
    }
    if let Some(path) = csr {
        let pem = store.next_key_csr(name).map_err(reason)?;
        write_output(path, pem.as_bytes(), false)?;
        eprintln!(
            "CSR for the next key written to {}: send it to your CA, then `portcullis cert install-signed {name} FILE…`",
            path.display()
        );
    }
    if !acme_domains.is_empty() {
        obtain(global, name, acme_domains, key, true, acme)?;
    }
    let entry = store.entry(name).map_err(reason)?;
    let next = entry.next.as_ref().ok_or("the rollover has ended")?;
    let hosts = portcullis_mta::dane_check::host_names(&entry);
    let mut publish = Vec::new();
    for host in &hosts {
        for (what, spki) in [
            ("current", entry.key.spki_sha256()),
            ("next", next.key.spki_sha256()),
        ] {
            publish.push(format!(
                "_{port}._tcp.{host}. IN TLSA 3 1 1 {}   ; {what} key",
                portcullis_mta::dane_check::tlsa_data(&spki)
            ));
        }
    }
    let status_text = if status {
        let config = load_config(acme.config.as_deref())?;
        let rt = runtime()?;
        let progress: Result<RolloverProgress, String> = rt.block_on(async {
            let resolver =
                resolver(&config)?.ok_or("no DNS resolver: give --config with [dns] resolvers")?;
            rollover_step(&store, &resolver, name, port, Timestamp::now())
                .await
                .map_err(reason)
        });
        Some(describe(&progress?))
    } else {
        None
    };
    let plan = RolloverPlan {
        name: name.to_owned(),
        current_key_spki_sha256: portcullis_mta::dane_check::tlsa_data(&entry.key.spki_sha256()),
        next_key_spki_sha256: portcullis_mta::dane_check::tlsa_data(&next.key.spki_sha256()),
        publish,
        status: status_text,
    };
    emit(global.json, &plan, || {
        let mut s = format!(
            "publish this TLSA RRset (both records) and keep it until the switch:\n{}\n",
            plan.publish.join("\n")
        );
        if next.chain.is_empty() {
            s.push_str("the next key has no certificate yet: `portcullis dane rollover NAME --acme-domain …`, or --csr FILE and `cert install-signed`\n");
        }
        s.push_str("the running gateway switches to the next key once every record above has been seen, DNSSEC-validated, for twice its TTL; then remove the current key's record\n");
        if let Some(st) = &plan.status {
            s.push_str(&format!("status: {st}\n"));
        }
        s
    })
}

/// `dane check NAME`: DNS against the served (and next) key.
pub fn check(
    global: &Global,
    name: &str,
    hosts: &[String],
    port: u16,
    config: Option<&Path>,
) -> std::process::ExitCode {
    let result = (|| {
        let store = Store::open(&global.store).map_err(reason)?;
        let config = load_config(config)?;
        let rt = runtime()?;
        rt.block_on(async {
            let resolver =
                resolver(&config)?.ok_or("no DNS resolver: give --config with [dns] resolvers")?;
            portcullis_mta::dane_check::check_entry(&resolver, &store, name, hosts, port)
                .await
                .map_err(reason)
        })
    })();
    let checks = match result {
        Ok(c) => c,
        Err(e) => return crate::output::finish(Err(e)),
    };
    let ok = checks.iter().all(|c| c.problems.is_empty());
    let printed = emit(global.json, &checks, || {
        let mut s = String::new();
        for c in &checks {
            s.push_str(&format!(
                "{}: TLSA at {} ({}, addresses {}{})\n",
                c.host,
                c.tlsa_name,
                c.dnssec,
                c.address_dnssec,
                c.ttl.map(|t| format!(", TTL {t}s")).unwrap_or_default()
            ));
            for r in &c.records {
                let what = match (r.matches_current, r.matches_next) {
                    (true, true) => "matches the served and the next key",
                    (true, false) => "matches the served key",
                    (false, true) => "matches the next key",
                    (false, false) => "matches no key of this certificate",
                };
                s.push_str(&format!("  {}  {what}\n", r.record));
            }
            if c.problems.is_empty() {
                s.push_str("  ok: DANE senders can authenticate the served key\n");
            }
            for p in &c.problems {
                s.push_str(&format!("  fix: {p}\n"));
            }
        }
        s
    });
    match (printed, ok) {
        (Err(e), _) => crate::output::finish(Err(e)),
        (Ok(()), true) => std::process::ExitCode::SUCCESS,
        (Ok(()), false) => std::process::ExitCode::from(1),
    }
}
