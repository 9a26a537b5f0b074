//! Portcullis smtp-tls (being written).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod address;
mod client;
mod command;
mod data;
#[cfg(feature = "tokio")]
mod driver;
mod envelope;
mod error;
mod lines;
mod reply;
mod server;
mod tls;

pub use address::{AddressError, ForwardPath, Mailbox, ReversePath};
pub use client::{Capabilities, ClientConfig, ClientEvent, ClientSession, MessageResult, dot_stuff};
pub use command::{Command, CommandError, MAX_COMMAND_LINE};
pub use data::MAX_TEXT_LINE;
pub use envelope::{BodyType, Envelope, MailParams};
pub use error::Error;
pub use reply::{EnhancedCode, Reply, ReplyError};
pub use server::{CloseReason, ServerConfig, ServerEvent, ServerSession, SessionEnd};
pub use tls::{TlsInfo, TlsMode, TlsOutcome};
#[cfg(feature = "tokio")]
pub use driver::{ClientConnection, Delivery, ServerConnection, TlsRequirement, deliver};
