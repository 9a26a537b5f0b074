//! The Rust half of `bench/run.sh`: writes the benchmark's test PKI, runs a
//! TLS-capable SMTP sink, and drives load through a relay (Portcullis or
//! Postfix, the same generator for both), timing every message to its `250`
//! and the whole run until the sink has every accepted message.
//!
//! ```text
//! portcullis-relay-bench pki  --out DIR
//! portcullis-relay-bench run  --relay 127.0.0.1:R --sink 127.0.0.1:S [--tls DIR] [-n N] [-c C]
//! portcullis-relay-bench sink --sink 127.0.0.1:S [--tls DIR] -n N
//! ```
//! `run` prints one `RESULT key=value ...` line; `sink` (for smtp-source
//! runs) prints `SINK delivered=N seconds=T` once N messages arrived.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use portcullis_testkit::Error;
use portcullis_testkit::loadgen::{LoadOptions, run};
use portcullis_testkit::pki::{Leaf, TestPki};
use portcullis_testkit::sink::{Sink, SinkOptions, SinkTls};
use rustls_pki_types::pem::PemObject;

#[derive(Parser)]
#[command(about = "Relay benchmark helper: PKI, TLS-capable sink and load generator")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Writes ca.pem, relay.crt/.key (relay.bench.test) and sink.crt/.key (sink.bench.test).
    Pki {
        #[arg(long)]
        out: PathBuf,
    },
    /// Starts the sink, sends the load through the relay, waits for delivery.
    Run {
        #[arg(long)]
        relay: SocketAddr,
        #[arg(long)]
        sink: SocketAddr,
        /// Directory from `pki`: STARTTLS on both legs (client → relay verified against ca.pem).
        #[arg(long)]
        tls: Option<PathBuf>,
        #[arg(short = 'n', long, default_value_t = 2000)]
        messages: usize,
        #[arg(short = 'c', long, default_value_t = 20)]
        connections: usize,
        #[arg(long, default_value_t = 2000)]
        size: usize,
        /// Give up waiting for delivery after this many seconds.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Only the sink: waits for N messages (for smtp-source runs).
    Sink {
        #[arg(long)]
        sink: SocketAddr,
        #[arg(long)]
        tls: Option<PathBuf>,
        #[arg(short = 'n', long)]
        messages: usize,
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
}

fn sink_options(tls: &Option<PathBuf>) -> Result<SinkOptions, Error> {
    Ok(match tls {
        Some(dir) => SinkOptions::new(SinkTls::Offered(Arc::new(Leaf::from_pem_files(
            &dir.join("sink.crt"),
            &dir.join("sink.key"),
        )?))),
        None => SinkOptions::new(SinkTls::NotOffered),
    })
}

fn ms(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.2}", d.as_secs_f64() * 1000.0))
}

async fn main_async(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Cmd::Pki { out } => {
            std::fs::create_dir_all(&out)
                .map_err(|e| Error::Io(format!("creating {}", out.display()), e))?;
            let pki = TestPki::new()?;
            pki.write_root_pem(&out.join("ca.pem"))?;
            pki.leaf(&["relay.bench.test", "127.0.0.1"])?
                .write_pem(&out, "relay")?;
            pki.leaf(&["sink.bench.test", "127.0.0.1"])?
                .write_pem(&out, "sink")?;
            println!("wrote {}", out.display());
        }
        Cmd::Sink {
            sink,
            tls,
            messages,
            timeout,
        } => {
            let s = Sink::start_on(sink, sink_options(&tls)?).await?;
            s.wait_for_messages(1, Duration::from_secs(timeout)).await?;
            let first = Instant::now();
            s.wait_for_messages(messages, Duration::from_secs(timeout))
                .await?;
            println!(
                "SINK delivered={} seconds_after_first={:.3}",
                s.messages().len(),
                first.elapsed().as_secs_f64()
            );
        }
        Cmd::Run {
            relay,
            sink,
            tls,
            messages,
            connections,
            size,
            timeout,
        } => {
            let s = Sink::start_on(sink, sink_options(&tls)?).await?;
            let mut o = LoadOptions::new(relay);
            o.messages = messages;
            o.connections = connections;
            o.size = size;
            o.from = "load@bench.test".into();
            o.to = "user@sink.bench.test".into();
            if let Some(dir) = &tls {
                let ca = std::fs::read(dir.join("ca.pem"))
                    .map_err(|e| Error::Io(format!("reading {}/ca.pem", dir.display()), e))?;
                let mut roots = rustls::RootCertStore::empty();
                for c in rustls_pki_types::CertificateDer::pem_slice_iter(&ca) {
                    let c = c.map_err(|e| Error::Other(format!("ca.pem: {e}")))?;
                    roots.add(c)?;
                }
                let config =
                    rustls::ClientConfig::builder_with_provider(portcullis_testkit::provider())
                        .with_safe_default_protocol_versions()?
                        .with_root_certificates(roots)
                        .with_no_client_auth();
                o.tls = Some((Arc::new(config), "relay.bench.test".into()));
            }
            let start = Instant::now();
            let report = run(o).await?;
            let accepted = report.accepted();
            let delivered = s
                .wait_for_messages(accepted, Duration::from_secs(timeout))
                .await;
            let end_to_end = start.elapsed();
            let tls_ok = s.messages().iter().filter(|m| m.tls.is_some()).count();
            println!(
                "RESULT accepted={accepted} failed={} delivered={} delivered_tls={tls_ok} \
                 accept_seconds={:.3} end_to_end_seconds={:.3} accept_rate={:.1} relay_rate={:.1} \
                 p50_ms={} p99_ms={}",
                report.sent.len() - accepted,
                s.messages().len(),
                report.elapsed.as_secs_f64(),
                end_to_end.as_secs_f64(),
                report.rate(),
                s.messages().len() as f64 / end_to_end.as_secs_f64().max(1e-9),
                ms(report.latency_quantile(0.5)),
                ms(report.latency_quantile(0.99)),
            );
            if let Some(f) = report.sent.iter().find(|s| !s.accepted) {
                eprintln!("first failure: message {} {}", f.seq, f.outcome);
            }
            delivered?;
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(main_async(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("portcullis-relay-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
