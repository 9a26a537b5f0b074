//! # portcullis-testkit
//!
//! Fixtures for Portcullis end-to-end tests and the relay benchmark, all on
//! loopback and all cleaned up when dropped:
//!
//! - [`pki`]: a throw-away PKI (root → intermediate → leaf; expired, not yet
//!   valid, misnamed and self-signed variants; PEM and DER out).
//! - [`sink`]: a TLS-capable SMTP sink built on `portcullis-smtp-tls` that
//!   records every message with the TLS facts of its session, and can refuse
//!   or break STARTTLS, RCPT or DATA on demand.
//! - [`client`]: one message through a real SMTP client, from a chosen
//!   loopback source address, with or without STARTTLS.
//! - [`loadgen`]: a TLS-capable SMTP load generator that reports which
//!   messages got `250` and how long each took.
//! - [`dns_zone`]: a DNSSEC-signed `test.` zone served by knotd (and
//!   validated by unbound on request), with insecure, bogus, CNAME and
//!   TLSA records built from the sinks' certificates.
//! - [`mta_sts_server`]: an HTTPS server for MTA-STS policy files.
//! - [`pebble`]: Pebble, the ACME test server, on loopback with its own CA
//!   and the test's DNS.
//! - [`postgres`]: a private PostgreSQL server (the cluster state store) in
//!   a temporary directory on a loopback port, stoppable for outage tests.
//! - [`gateway`]: a gateway under test (data dir, certificates imported
//!   with the CLI, generated configuration).
//! - [`runner`]: runs the `portcullis` binary with a config and reads its
//!   mail log; SIGTERM or SIGKILL on demand.
//! - [`tmpfs`]: a small real filesystem (root only) for disk-full tests.
//!
//! Not for production use (`publish = false`): errors are descriptive but
//! the fixtures trust the test that drives them.
//!
//! ## Example
//!
//! A sink offering STARTTLS with a certificate from the test PKI:
//!
//! ```
//! use std::sync::Arc;
//! use portcullis_testkit::pki::TestPki;
//! use portcullis_testkit::sink::{Sink, SinkOptions, SinkTls};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let pki = TestPki::new()?;
//! let leaf = Arc::new(pki.leaf(&["mx.example.test"])?);
//! let sink = Sink::start(SinkOptions::new(SinkTls::Offered(leaf))).await?;
//! assert!(sink.addr().ip().is_loopback());
//! assert!(sink.messages().is_empty());
//! # Ok::<(), portcullis_testkit::Error>(())
//! # }).unwrap();
//! ```
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod client;
pub mod dns_zone;
mod error;
pub mod gateway;
pub mod loadgen;
pub mod mta_sts_server;
pub mod pebble;
pub mod pki;
pub mod postgres;
pub mod runner;
pub mod sink;
mod sink_shim;
pub mod tmpfs;

pub use error::Error;

use std::sync::Arc;

/// The workspace's one crypto provider (aws-lc-rs).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}
