//! The TLS report inbox: RFC 8460 reports other organisations send about
//! our domains, taken in by mail (to the `[tls-report-inbox]` addresses, on
//! any listener, instead of relaying) and by `POST /tlsrpt` on the admin
//! listener, then parsed, stored and summarised for the operator who hears
//! "we could not reach you over TLS".
//!
//! - `store.rs`: the reports under `<data-dir>/tls-reports/` (each written,
//!   fsynced and renamed into place; a refused one kept aside with why);
//! - `summary.rs`: per sending organisation, our MX, result type and day;
//!   what `portcullis tls-report list` and the status page show;
//! - `mail.rs`: the report part of a report mail (mail-parser).
//!
//! The inbox never answers "accepted" before the report (or the refused
//! bytes with their reason) is on stable storage.

mod mail;
mod store;
mod summary;

use std::path::Path;
use std::sync::{Arc, RwLock};

use portcullis_policy::{ReportError, ReportLimits, TlsReport};
use serde::{Deserialize, Serialize};

pub use mail::report_part;
pub use store::{RefusedReport, ReportStore, STORE_DIR, StoredReport, with_report};
pub use summary::{FailureRow, ReportRow, Summary, SummaryFilter, summarize};

/// What the inbox is configured with (`[tls-report-inbox]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxSettings {
    /// Mail addresses whose mail is taken as reports (lower case).
    pub addresses: Vec<String>,
    /// Reports are accepted by `POST /tlsrpt` on the admin listener.
    pub https: bool,
    /// Size caps of one report.
    pub limits: ReportLimits,
}

/// Where a report came from, kept with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ReportSource {
    /// `smtp` or `https`.
    pub via: String,
    /// The client's address.
    pub peer: String,
    /// For mail: the envelope sender and the session id; for HTTPS: the
    /// content type.
    pub detail: String,
}

/// What became of a report.
#[derive(Debug)]
pub enum Intake {
    /// Parsed and stored under this id.
    Stored {
        /// The store id (`portcullis tls-report show ID`).
        id: String,
        /// The report.
        report: Box<TlsReport>,
        /// A report with the same organisation and report-id was already
        /// stored (a retried mail): it was replaced.
        replaced: bool,
    },
    /// Refused; the bytes and the reason are kept aside under this id.
    Refused {
        /// The refused-report id.
        id: String,
        /// Why.
        reason: String,
    },
}

/// The mail-log words for a stored report, after "stored as": the id and
/// what the report says, the same for mail and POST.
pub fn stored_summary(id: &str, report: &TlsReport, replaced: bool) -> String {
    let totals = report.totals();
    format!(
        "{id}{}: organisation {:?}, day {}, {} successful and {} failed session(s)",
        if replaced {
            " (replacing an earlier copy)"
        } else {
            ""
        },
        report.organization_name,
        report.day(),
        totals.total_successful_session_count,
        totals.total_failure_session_count
    )
}

/// The running inbox.
#[derive(Debug)]
pub struct ReportInbox {
    settings: InboxSettings,
    store: ReportStore,
}

/// Where the inbox is attached once the running gateway has one: the
/// engine's listeners and the admin listener read it per message.
pub type InboxSlot = Arc<RwLock<Option<Arc<ReportInbox>>>>;

/// The inbox `[tls-report-inbox]` asks for, its store opened; `None`
/// when the section is absent.
pub fn open_configured(config: &crate::config::Config) -> Result<Option<Arc<ReportInbox>>, String> {
    let Some(section) = &config.tls_report_inbox else {
        return Ok(None);
    };
    ReportInbox::open(&config.data_dir, section.settings())
        .map(|inbox| Some(Arc::new(inbox)))
        .map_err(|e| {
            format!(
                "cannot open the TLS report store {}: {e}",
                config.data_dir.join(STORE_DIR).display()
            )
        })
}

impl ReportInbox {
    /// Opens (creating) the store under `data_dir`.
    pub fn open(data_dir: &Path, settings: InboxSettings) -> std::io::Result<ReportInbox> {
        Ok(ReportInbox {
            store: ReportStore::create(data_dir)?,
            settings,
        })
    }

    /// The settings.
    pub fn settings(&self) -> &InboxSettings {
        &self.settings
    }

    /// The store.
    pub fn store(&self) -> &ReportStore {
        &self.store
    }

    /// Whether mail to `address` is for the inbox.
    pub fn is_inbox_address(&self, address: &str) -> bool {
        let address = address.to_ascii_lowercase();
        self.settings.addresses.contains(&address)
    }

    /// Parses `bytes` (gzip or JSON) and stores the report, or keeps the
    /// bytes aside with the reason. Blocking (fsync): call it off the
    /// async threads. `Err` only when nothing could be written.
    pub fn take(&self, bytes: &[u8], source: &ReportSource) -> std::io::Result<Intake> {
        let parsed = portcullis_policy::tlsrpt_report::decode_report(bytes, &self.settings.limits)
            .and_then(|json| {
                let report = portcullis_policy::parse_report_json(&json)?;
                Ok((json, report))
            });
        match parsed {
            Ok((json, report)) => {
                let (id, replaced) = self.store.store(&json, &report, source)?;
                Ok(Intake::Stored {
                    id,
                    report: Box::new(report),
                    replaced,
                })
            }
            Err(e) => {
                // Bytes past the cap are not kept: that is what the cap is for.
                let keep = (bytes.len() as u64 <= self.settings.limits.max_received_bytes)
                    .then_some(bytes);
                self.refuse(keep, &e, source)
            }
        }
    }

    /// Keeps a refused report aside: its bytes, when there are any within
    /// the cap, and the reason.
    pub fn refuse(
        &self,
        bytes: Option<&[u8]>,
        error: &ReportError,
        source: &ReportSource,
    ) -> std::io::Result<Intake> {
        self.refuse_because(bytes, error.kind(), &error.to_string(), source)
    }

    /// [`refuse`](Self::refuse) for a reason found before parsing (no
    /// report part in a mail, say).
    pub fn refuse_because(
        &self,
        bytes: Option<&[u8]>,
        kind: &str,
        reason: &str,
        source: &ReportSource,
    ) -> std::io::Result<Intake> {
        let id = self.store.keep_refused(bytes, kind, reason, source)?;
        Ok(Intake::Refused {
            id,
            reason: reason.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests;
