//! TLS reporting, sending side (RFC 8460): delivery counts every TLS
//! session to a recipient domain ([`counts::SessionCounter`], in memory on
//! the mail path); a task beside the mail path adds the counts to durable
//! daily aggregates ([`store`]) and, once a UTC day has ended plus a random
//! delay, builds each policy domain's report ([`report`]) and sends it to
//! the addresses of the domain's `_smtp._tls` record: by mail, DKIM-signed
//! ([`mail`]), or by HTTPS POST ([`deliver`]). Report mail goes its own way
//! (never through the counted delivery path), so reports are never
//! themselves counted or reported.

mod backend;
pub mod counts;
pub mod day;
pub mod deliver;
pub mod mail;
pub mod report;
mod running;
pub mod service;
pub mod store;

pub use counts::{DomainDay, FailureKey, PolicyKey, Session, SessionCounter};
pub use day::{BadDay, UtcDay};
pub use report::Reporting;
pub use service::{ReportHandle, ReportService, SendResult, TlsReportSettings};
pub use store::{AggregateStore, FileStore, StoreError, StoredDay};
