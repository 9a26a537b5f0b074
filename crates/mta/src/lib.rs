//! The Portcullis gateway engine.
//!
//! This crate assembles the leaf crates (`smtp-tls`, `dane`, `certstore`,
//! `policy`) into the gateway: listeners, the durable spool, delivery. So far
//! it holds the [`spool`], the durable queue that answers `250` only once a
//! message is on stable storage, and [`dsn`], the bounces it sends.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod config;
pub mod dsn;
pub mod engine;
mod inbound;
pub mod maillog;
pub mod mta_sts_fetch;
mod outbound;
pub mod spool;
