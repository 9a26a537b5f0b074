//! The alerts the gateway raises about itself: certificates in use
//! expiring (checked at start and then daily by the alert clock), the
//! spool refusing to open, a listener that cannot bind, DNSSEC broken
//! through the configured resolvers, a reload that failed, a changed CA
//! list. (TLS policy failing for every MX is raised by delivery,
//! `outbound/tls_alert.rs`.) Each function builds one alert written for
//! the operator, with what to do.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use portcullis_certstore::{Store, Timestamp};
use rustls::RootCertStore;

use super::{Alert, AlertClass, AlertSink, Severity};
use crate::error::StartError;
use crate::spool::SpoolError;

/// Certificates expiring within this many days are a warning...
pub const WARN_DAYS: u64 = 30;
/// ...within this many critical (and expired ones too).
pub const CRITICAL_DAYS: u64 = 5;

/// The spool could not be opened at start (damage, lock, permissions).
pub fn spool_failed(alerts: &AlertSink, dir: &Path, e: &SpoolError) {
    alerts.raise(Alert::new(
        AlertClass::Queue,
        Severity::Critical,
        "spool:open",
        format!(
            "The gateway cannot start: the queue in {} could not be opened: {e}. No mail is received or delivered until this is fixed.",
            dir.display()
        ),
    ));
}

/// Damage the spool got past at start: a damaged header (no message lost,
/// but the disk or something writing to it misbehaves) is a warning; a
/// torn tail (a write never acknowledged, cut off after an unclean stop)
/// is information.
pub fn spool_damage_at_open(alerts: &AlertSink, damage: &[crate::spool::Damage]) {
    use crate::spool::DamageKind;
    let describe = |kind: DamageKind| -> Vec<String> {
        damage
            .iter()
            .filter(|d| d.kind == kind)
            .map(|d| {
                format!(
                    "{} bytes {}-{}: {}",
                    d.file.display(),
                    d.start,
                    d.end,
                    d.reason
                )
            })
            .collect()
    };
    let headers = describe(DamageKind::Header);
    if !headers.is_empty() {
        alerts.raise(Alert::new(
            AlertClass::Queue,
            Severity::Warning,
            "spool:header-damage",
            format!(
                "The queue started, but {} damaged spool header(s) were found: {}. No message was lost (the key is kept in several places), but something damaged files on disk: check the disk and the filesystem (dmesg, smartctl), and `portcullis queue check`.",
                headers.len(),
                headers.join("; ")
            ),
        ));
    }
    let torn = describe(DamageKind::TornTail);
    if !torn.is_empty() {
        alerts.raise(Alert::new(
            AlertClass::Queue,
            Severity::Info,
            "spool:torn-tail",
            format!(
                "The gateway was not stopped cleanly: {} unfinished write(s) at the end of the spool were cut off at start ({}). They were never acknowledged, so no accepted message was lost.",
                torn.len(),
                torn.join("; ")
            ),
        ));
    }
}

/// Engine start failed after the spool opened (a listener that cannot bind).
pub fn start_failed(alerts: &AlertSink, e: &StartError) {
    if let StartError::Bind { .. } = e {
        listener_bind_failed(alerts, e);
    }
}

fn listener_bind_failed(alerts: &AlertSink, e: &StartError) {
    let StartError::Bind { name, address, .. } = e else {
        return;
    };
    alerts.raise(Alert::new(
        AlertClass::System,
        Severity::Critical,
        format!("listener:{name}"),
        format!(
            "{e}. No mail is accepted on {address}; free the address (another program may hold it) or change listener {name:?} in the configuration, then start or reload."
        ),
    ));
}

/// Resuming a suspended listener failed (its address could not be bound).
pub fn listener_resume_failed(alerts: &AlertSink, name: &str, why: &str) {
    alerts.raise(Alert::new(
        AlertClass::System,
        Severity::Critical,
        format!("listener:{name}"),
        format!(
            "Listener {name:?} could not be resumed: {why}. It stays suspended and accepts no mail; free its address (another program may hold it) and resume it again (`portcullis ctl resume listener {name}`)."
        ),
    ));
}

/// The configuration of a reload was refused (the file has problems): the
/// gateway keeps running with the settings it had.
pub fn reload_refused(alerts: &AlertSink, error: &str, first_problem: Option<&str>) {
    let first = first_problem.map(|p| format!(" ({p})")).unwrap_or_default();
    alerts.raise(Alert::new(
        AlertClass::Config,
        Severity::Warning,
        "reload",
        format!(
            "A configuration reload was refused and changed nothing: {error}{first}. The gateway runs on with the settings it had; fix the file and reload again (`portcullis ctl reload`)."
        ),
    ));
}

/// A reload was refused: the gateway keeps running with the old settings.
pub fn reload_failed(alerts: &AlertSink, e: &StartError) {
    if let StartError::Bind { .. } = e {
        listener_bind_failed(alerts, e);
    }
    alerts.raise(Alert::new(
        AlertClass::Config,
        Severity::Warning,
        "reload",
        format!(
            "A configuration reload failed and changed nothing: {e}. The gateway runs on with the settings it had; fix the problem and reload again (`portcullis ctl reload`)."
        ),
    ));
}

/// The DNSSEC self-check at start found no DNSSEC through the resolvers.
pub fn dnssec_broken(alerts: &AlertSink, servers: &str, why: &str) {
    alerts.raise(Alert::new(
        AlertClass::Dns,
        Severity::Critical,
        "dns:dnssec",
        format!(
            "DNSSEC does not work through the configured resolvers ({servers}): {why}. Until it does, no answer is DNSSEC-secure: DANE cannot be used and destinations that require it get no mail. Reload after the fix; this is said once per start."
        ),
    ));
}

/// Each trust anchor as its subject and key.
fn anchors(s: &RootCertStore) -> std::collections::BTreeSet<Vec<u8>> {
    s.roots
        .iter()
        .map(|a| [a.subject.as_ref(), a.subject_public_key_info.as_ref()].concat())
        .collect()
}

/// The file in the alerts directory that remembers the CA lists in force.
pub const CA_LIST_FILE: &str = "ca-lists.json";

/// Compares the CA lists in force now with those of the last run (kept in
/// `<alerts-dir>/ca-lists.json`, hex of each anchor): a change made while
/// the gateway was stopped (`portcullis ca`) is told at start. The first
/// run only records them.
pub fn ca_list_at_start(
    alerts: &AlertSink,
    dir: &Path,
    roots: &RootCertStore,
) -> Result<(), String> {
    let path = dir.join(CA_LIST_FILE);
    let now: Vec<String> = anchors(roots).iter().map(|a| hex(a.as_slice())).collect();
    let before: Option<Vec<String>> = match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).ok(),
        Err(_) => None,
    };
    if let Some(before) = before {
        let old: std::collections::BTreeSet<&String> = before.iter().collect();
        let new: std::collections::BTreeSet<&String> = now.iter().collect();
        if old != new {
            raise_ca_change(
                alerts,
                new.difference(&old).count(),
                old.difference(&new).count(),
                new.len(),
                "since the gateway last ran",
            );
        }
    }
    let bytes = serde_json::to_vec(&now).map_err(|e| e.to_string())?;
    super::recent::write_durably(&path, &bytes)
        .map_err(|e| format!("cannot record the CA lists in {}: {e}", path.display()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares the CA lists in force before and after a reload.
pub fn ca_list_compared(
    alerts: &AlertSink,
    before: &Arc<RootCertStore>,
    after: &Arc<RootCertStore>,
) {
    let (old, new) = (anchors(before), anchors(after));
    if old == new {
        return;
    }
    raise_ca_change(
        alerts,
        new.difference(&old).count(),
        old.difference(&new).count(),
        new.len(),
        "at the last reload",
    );
}

fn raise_ca_change(alerts: &AlertSink, added: usize, removed: usize, total: usize, when: &str) {
    alerts.raise(Alert::new(
        AlertClass::Certificate,
        if removed > 0 {
            Severity::Warning
        } else {
            Severity::Info
        },
        "ca-list",
        format!(
            "The CA lists used to verify outbound certificates changed {when}: {added} trust anchor(s) added, {removed} removed ({total} now). If you did not change them (`portcullis ca`), find out who did: a trust anchor decides which servers the gateway believes."
        ),
    ));
}

/// One certificate entry the configuration uses, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInUse {
    pub name: String,
    /// e.g. `listener[0].certificate`.
    pub usage: String,
}

/// The alerts for the certificates in use, at `now`.
pub fn certificate_alerts(
    store_dir: &Path,
    in_use: &[CertificateInUse],
    now: SystemTime,
) -> Result<Vec<Alert>, String> {
    let store = Store::open(store_dir).map_err(|e| e.to_string())?;
    let ts = Timestamp::from_system(now);
    let notices = store
        .expiring_within(WARN_DAYS as u32 + 1, ts)
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for n in notices {
        let usages: Vec<&str> = in_use
            .iter()
            .filter(|u| u.name == n.name)
            .map(|u| u.usage.as_str())
            .collect();
        if usages.is_empty() {
            continue;
        }
        let left = n.not_after.unix - ts.unix;
        let (severity, stage, when) = if left < 0 {
            (
                Severity::Critical,
                "expired",
                format!("expired on {}", n.not_after),
            )
        } else if left <= (CRITICAL_DAYS * 86_400) as i64 {
            (
                Severity::Critical,
                "critical",
                format!("expires in {} day(s), on {}", left / 86_400, n.not_after),
            )
        } else if left <= (WARN_DAYS * 86_400) as i64 {
            (
                Severity::Warning,
                "warning",
                format!("expires in {} days, on {}", left / 86_400, n.not_after),
            )
        } else {
            continue;
        };
        out.push(Alert::new(
            AlertClass::Certificate,
            severity,
            format!("certificate:{}:{stage}", n.name),
            format!(
                "The certificate {:?} ({}) {when}. It is used by {}. Renew it (`portcullis cert acme` or `portcullis cert import`) and reload; peers that check it refuse an expired certificate.",
                n.name,
                n.subject,
                usages.join(", ")
            ),
        ));
    }
    Ok(out)
}

/// Checks the certificates in use now and then each day by the alert
/// clock (looked at every `tick` of real time, so a test clock moved a day
/// ahead triggers the next check). Stops when the sink's service stops
/// listening or the handle is dropped.
pub struct CertificateWatch {
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for CertificateWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateWatch").finish_non_exhaustive()
    }
}

impl Drop for CertificateWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl CertificateWatch {
    pub fn start(
        alerts: AlertSink,
        store_dir: PathBuf,
        in_use: Vec<CertificateInUse>,
        log: crate::maillog::MailLog,
        tick: Duration,
    ) -> Option<CertificateWatch> {
        let clock = alerts.clock()?;
        let task = tokio::spawn(async move {
            let mut next = clock.now();
            loop {
                let now = clock.now();
                if now >= next {
                    match certificate_alerts(&store_dir, &in_use, now) {
                        Ok(found) => found.into_iter().for_each(|a| alerts.raise(a)),
                        Err(e) => log.warn(format_args!(
                            "alerts: cannot check certificate expiry in {}: {e}",
                            store_dir.display()
                        )),
                    }
                    next = now + Duration::from_secs(86_400);
                }
                tokio::time::sleep(tick).await;
            }
        });
        Some(CertificateWatch { task })
    }
}
