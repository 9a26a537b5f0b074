//! The Portcullis gateway engine.
//!
//! This crate assembles the leaf crates (`smtp-tls`, `dane`, `certstore`,
//! `policy`) into the gateway. One module per job:
//!
//! - [`config`]: the TOML file, checked and turned into [`settings`];
//! - [`settings`]: the validated values everything else reads;
//! - [`engine`]: starts the parts from the settings and stops them;
//! - [`dns`]: the one resolver every DNS question goes through;
//! - `inbound`: listeners and SMTP sessions; `outbound`: the delivery
//!   scheduler and the transport that executes each hop's policy decision;
//! - [`spool`]: the durable queue that answers `250` only once a message is
//!   on stable storage; [`dsn`]: the bounces it sends; [`control`]: the
//!   queue commands operators run, online (control socket) or offline;
//! - [`maillog`]: one line per event; [`mta_sts_fetch`]: MTA-STS policy
//!   fetches over HTTPS;
//! - [`operate`]: what an operator does to a running engine (reload,
//!   suspend, resume, status); [`suspension`]: what is suspended, kept
//!   across restarts; [`metrics`]: the mail path's counters.
//! - [`acme`]: certificates from an ACME CA (HTTP-01, TLS-ALPN-01).
//! - [`clock`]: the wall clock timed decisions read, movable in tests.
//! - [`cluster`]: several gateways sharing one PostgreSQL database.
//! - [`tlsrpt_inbox`]: TLS reports (RFC 8460) received about our domains.
//! - [`never_downgrade`]: domains delivered to with authenticated TLS,
//!   never sent to unauthenticated while remembered (opt-in).
//! - [`health`]: gauges against thresholds, and resource conservation.
//! - [`alerts`]: what the operator is told, de-duplicated, kept and sent
//!   over a path of its own.
//! - [`tlsrpt`]: TLS-RPT (RFC 8460) session counts, daily aggregates and
//!   the reports sent to recipient domains.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod acme;
pub mod admin;
pub mod alerts;
pub mod cert_manager;
pub mod check;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod control;
pub mod dane_check;
pub mod dns;
pub mod dsn;
mod durable;
pub mod engine;
mod error;
pub mod health;
mod https_listener;
mod inbound;
pub mod maillog;
pub mod metrics;
pub mod mta_sts_fetch;
pub mod never_downgrade;
pub mod operate;
mod outbound;
pub mod settings;
pub mod spool;
pub mod sts_host;
pub mod suspension;
pub mod tlsrpt;
pub mod tlsrpt_inbox;
