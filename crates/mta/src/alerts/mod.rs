//! Alerts: what the gateway tells its operator before mail stops (SPEC §6
//! "Alerts"). An [`Alert`] has a class, a severity, a text written for a
//! person and a key for de-duplication. Every part of the engine holds a
//! cheap [`AlertSink`] and calls [`AlertSink::raise`]: it never blocks and
//! does no I/O (de-duplication runs under a short lock, see [`dedup`]); what
//! passes becomes a [`Notice`] handed to the alert service ([`service`]),
//! which keeps the recent list ([`recent`]), writes one durable outbox file
//! per pending delivery ([`outbox`]) and sends by mail ([`mail`]) and to
//! an optional HTTPS webhook ([`webhook`]) over a path of its own, beside
//! the main queue. [`sources`] holds the checks that raise alerts on their
//! own (certificate expiry).

pub mod dedup;
mod dispatch;
pub mod health_bridge;
pub mod mail;
pub mod outbox;
pub mod recent;
pub mod service;
pub mod settings;
mod sink;
pub mod sources;
pub mod webhook;

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

pub use service::AlertService;
pub use settings::{AlertSettings, Delivery, Recipient, Subscription};
pub use sink::AlertSink;

/// What an alert is about: recipients subscribe per class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlertClass {
    System,
    Certificate,
    Tls,
    Dane,
    MtaSts,
    Dns,
    Queue,
    Disk,
    Config,
}

impl AlertClass {
    /// Every class, in the order the configuration documents them.
    pub const ALL: [AlertClass; 9] = [
        AlertClass::System,
        AlertClass::Certificate,
        AlertClass::Tls,
        AlertClass::Dane,
        AlertClass::MtaSts,
        AlertClass::Dns,
        AlertClass::Queue,
        AlertClass::Disk,
        AlertClass::Config,
    ];

    /// The name used in the configuration, the mail and the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertClass::System => "system",
            AlertClass::Certificate => "certificate",
            AlertClass::Tls => "tls",
            AlertClass::Dane => "dane",
            AlertClass::MtaSts => "mta-sts",
            AlertClass::Dns => "dns",
            AlertClass::Queue => "queue",
            AlertClass::Disk => "disk",
            AlertClass::Config => "config",
        }
    }

    /// The class named `name`, if there is one.
    pub fn parse(name: &str) -> Option<AlertClass> {
        AlertClass::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

impl std::fmt::Display for AlertClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How urgent: recipients subscribe per severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    Critical,
    Warning,
    Info,
}

impl Severity {
    pub const ALL: [Severity; 3] = [Severity::Critical, Severity::Warning, Severity::Info];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }

    pub fn parse(name: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One alert, as a source raises it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub class: AlertClass,
    pub severity: Severity,
    /// For a person: what happened, what it means, what to do.
    pub text: String,
    /// Alerts with the same key are duplicates of each other (e.g.
    /// `dane:example.com`, `certificate:inbound`).
    pub key: String,
}

impl Alert {
    pub fn new(
        class: AlertClass,
        severity: Severity,
        key: impl Into<String>,
        text: impl Into<String>,
    ) -> Self {
        Alert {
            class,
            severity,
            text: text.into(),
            key: key.into(),
        }
    }
}

/// An alert that passed de-duplication: what is kept in the recent list and
/// delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// Unique per gateway (also the outbox file name's stem).
    pub id: String,
    /// Seconds since the Unix epoch, by the alert clock.
    pub at: u64,
    #[serde(flatten)]
    pub alert: Alert,
    /// Repeats of this key held back since the previous notice of it.
    pub repeats: u32,
}

impl Notice {
    /// `at` as a time.
    pub fn time(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(self.at)
    }

    /// `at` in RFC 3339 (UTC).
    pub fn time_rfc3339(&self) -> String {
        time::OffsetDateTime::from(self.time())
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| self.at.to_string())
    }

    /// One line for the mail log and `ctl alerts`.
    pub fn summary(&self) -> String {
        let repeats = match self.repeats {
            0 => String::new(),
            n => format!(" (held back {n} repeat{} since the last notice)", plural(n)),
        };
        format!(
            "{} {} [{}] {}{repeats}",
            self.alert.severity, self.alert.class, self.alert.key, self.alert.text
        )
    }
}

/// What `portcullis ctl alerts` and `GET /api/alerts` show: the recent
/// alerts, newest first, and the deliveries still pending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertListing {
    pub alerts: Vec<Notice>,
    pub pending: Vec<PendingView>,
    /// Set when the recent list could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// One delivery waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingView {
    pub id: String,
    /// `webhook`, or the recipients.
    pub to: String,
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// Reads the alerts directory (running gateway or not: the service keeps
/// both on disk).
pub fn listing(dir: &std::path::Path) -> AlertListing {
    let (mut alerts, problem) = match recent::read(&dir.join(recent::RECENT_FILE)) {
        Ok(list) => (list, None),
        Err(e) => (
            Vec::new(),
            Some(format!("the recent-alerts list is unreadable: {e}")),
        ),
    };
    alerts.reverse();
    let pending = outbox::Outbox::list(&dir.join("outbox"))
        .into_iter()
        .map(|p| PendingView {
            id: p.notice.id.clone(),
            to: match &p.target {
                outbox::Target::Webhook => "webhook".into(),
                outbox::Target::Mail { recipients } => recipients.join(", "),
            },
            attempts: p.attempts,
            last_error: p.last_error,
        })
        .collect();
    AlertListing {
        alerts,
        pending,
        problem,
    }
}

/// `<data-dir>/alerts`: the recent list and the outbox.
pub fn alerts_dir(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("alerts")
}

pub(crate) fn plural(n: u32) -> &'static str {
    if n == 1 { "" } else { "s" }
}
