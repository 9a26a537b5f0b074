//! Certificates on autopilot in the running gateway, beside the mail path:
//! two background tasks the engine starts ([`CertificateManager`]).
//!
//! * **Renewal**: every `check-interval` each `[[acme.certificate]]` entry is
//!   looked at; when [`renewal_due`] says so, a new certificate is ordered
//!   for the entry's *served* key (a published `3 1 1` record stays valid)
//!   and installed atomically; listeners present it from the next handshake
//!   (`LiveCertificate`). A failure is logged with the CA's reason and tried
//!   again after a back-off that doubles from `retry-first` to `retry-max`.
//! * **Rollover**: every `rollover-check` each store entry with a staged next
//!   key that has its certificate is looked up in DNS ([`dane_check`]):
//!   once every MX name of the certificate shows the next key's TLSA record,
//!   DNSSEC-validated, without a break for at least twice the RRset's TTL,
//!   the entry switches to the next key. Until then the old key is served.
//!
//! Every outcome is one mail-log line (alerts are a later addition).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use portcullis_certstore::{CertInfo, OrderKey, Store, Timestamp};
use tokio::task::JoinHandle;

mod rollover;

use rollover::watch_rollovers;
pub use rollover::{RolloverProgress, describe, rollover_step};

use crate::acme::{
    AcmeClient, AcmeSettings, ChallengeKind, Challenges, Http01Listener, Http01Responder,
    OrderRequest, renewal_due,
};
use crate::dane_check;
use crate::dns::Resolver;
use crate::error::StartError;
use crate::maillog::MailLog;

/// One entry the gateway keeps renewed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedCertificate {
    /// The store entry.
    pub entry: String,
    /// The names on its certificate.
    pub domains: Vec<String>,
    /// How the CA's challenges are answered.
    pub challenge: ChallengeKind,
}

/// What the certificate tasks need (from `[acme]` and `[dane]`).
#[derive(Debug, Clone)]
pub struct CertificateSettings {
    /// The certificate store.
    pub store_dir: PathBuf,
    /// The ACME CA; `None`: no renewals (rollovers are still watched).
    pub acme: Option<AcmeSettings>,
    /// The HTTP-01 challenge listener's address.
    pub http_listen: Option<SocketAddr>,
    /// Entries kept renewed.
    pub managed: Vec<ManagedCertificate>,
    /// How often renewals are considered.
    pub check_interval: Duration,
    /// Back-off after a failed renewal: first wait …
    pub retry_first: Duration,
    /// … doubling up to this.
    pub retry_max: Duration,
    /// How often a rollover's TLSA records are looked up.
    pub rollover_check: Duration,
    /// Port of the TLSA records (`_25._tcp`).
    pub tlsa_port: u16,
}

impl CertificateSettings {
    /// No ACME; rollovers watched every 5 minutes at port 25.
    pub fn new() -> Self {
        CertificateSettings {
            store_dir: PathBuf::new(),
            acme: None,
            http_listen: None,
            managed: Vec::new(),
            check_interval: Duration::from_secs(43_200),
            retry_first: Duration::from_secs(3600),
            retry_max: Duration::from_secs(86_400),
            rollover_check: Duration::from_secs(300),
            tlsa_port: 25,
        }
    }
}

impl Default for CertificateSettings {
    fn default() -> Self {
        Self::new()
    }
}

/// The running certificate tasks; stopped when dropped.
#[derive(Debug)]
pub struct CertificateManager {
    tasks: Vec<JoinHandle<()>>,
    http01: Option<Http01Listener>,
}

impl Drop for CertificateManager {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl CertificateManager {
    /// Binds the HTTP-01 listener (when entries are renewed with it) and
    /// starts the tasks. Must be called within a tokio runtime.
    pub async fn start(
        settings: CertificateSettings,
        resolver: Option<Resolver>,
        log: MailLog,
    ) -> Result<Self, StartError> {
        let store = Store::open(&settings.store_dir)
            .map_err(|e| StartError::Setup(format!("certificate store: {e}")))?;
        let mut tasks = Vec::new();
        let mut http01 = None;
        if let Some(acme) = &settings.acme
            && !settings.managed.is_empty()
        {
            let client = AcmeClient::new(acme.clone(), &store, resolver.clone())
                .map_err(|e| StartError::Setup(e.to_string()))?;
            let mut challenges = Challenges::default();
            if settings
                .managed
                .iter()
                .any(|m| m.challenge == ChallengeKind::Http01)
            {
                let addr = settings
                    .http_listen
                    .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 80)));
                let responder = Http01Responder::default();
                let listener = Http01Listener::bind(addr, responder.clone())
                    .await
                    .map_err(|e| {
                        StartError::Setup(format!(
                            "ACME: cannot bind the HTTP-01 challenge listener on {addr}: {e} ([acme] http-listen)"
                        ))
                    })?;
                log.line(format_args!(
                    "ACME: HTTP-01 challenge listener on {}",
                    listener.local_addr()
                ));
                challenges.http01 = Some(responder);
                http01 = Some(listener);
            }
            let renewer = Renewer {
                store: store.clone(),
                client,
                challenges,
                managed: settings.managed.clone(),
                log: log.clone(),
                settings: settings.clone(),
            };
            tasks.push(tokio::spawn(renewer.run()));
        }
        match resolver {
            Some(resolver) => tasks.push(tokio::spawn(watch_rollovers(
                store,
                resolver,
                settings.rollover_check,
                settings.tlsa_port,
                log,
            ))),
            None => log.warn(format_args!(
                "DANE: no DNS resolver, so key rollovers cannot be watched: a staged next key is never switched to"
            )),
        }
        Ok(CertificateManager { tasks, http01 })
    }

    /// The HTTP-01 listener's bound address, if it runs.
    pub fn http01_addr(&self) -> Option<SocketAddr> {
        self.http01.as_ref().map(Http01Listener::local_addr)
    }
}

struct Renewer {
    store: Store,
    client: AcmeClient,
    challenges: Challenges,
    managed: Vec<ManagedCertificate>,
    log: MailLog,
    settings: CertificateSettings,
}

/// Back-off state of one entry.
#[derive(Clone, Copy, Default)]
struct Attempts {
    failures: u32,
    not_before: Option<tokio::time::Instant>,
}

impl Renewer {
    async fn run(self) {
        let mut attempts = vec![Attempts::default(); self.managed.len()];
        loop {
            let now = tokio::time::Instant::now();
            for (m, a) in self.managed.iter().zip(attempts.iter_mut()) {
                if a.not_before.is_some_and(|t| now < t) {
                    continue;
                }
                match self.renew_if_due(m).await {
                    Ok(()) => *a = Attempts::default(),
                    Err(why) => {
                        a.failures = a.failures.saturating_add(1);
                        let wait = backoff(
                            self.settings.retry_first,
                            self.settings.retry_max,
                            a.failures,
                        );
                        a.not_before = Some(tokio::time::Instant::now() + wait);
                        self.log.warn(format_args!(
                            "ACME: renewal of {} ({}) failed (attempt {}): {why}; next attempt in {}s",
                            m.entry,
                            m.domains.join(", "),
                            a.failures,
                            wait.as_secs()
                        ));
                    }
                }
            }
            let next_retry = attempts
                .iter()
                .filter_map(|a| a.not_before)
                .min()
                .map(|t| t.saturating_duration_since(tokio::time::Instant::now()));
            let sleep = next_retry
                .map_or(self.settings.check_interval, |r| {
                    r.min(self.settings.check_interval)
                })
                .max(Duration::from_secs(1));
            tokio::time::sleep(sleep).await;
        }
    }

    async fn renew_if_due(&self, m: &ManagedCertificate) -> Result<(), String> {
        let entry = self.store.entry(&m.entry).map_err(|e| e.to_string())?;
        let leaf = entry
            .chain
            .first()
            .ok_or_else(|| format!("entry {} has no certificate", m.entry))?;
        let info = CertInfo::from_der(leaf, &m.entry).map_err(|e| e.to_string())?;
        let names_differ = {
            let mut have: Vec<&str> = info.dns_names().collect();
            let mut want: Vec<&str> = m.domains.iter().map(String::as_str).collect();
            have.sort_unstable();
            want.sort_unstable();
            have != want
        };
        let reason = if info.self_signed || entry.demo {
            Some("it is self-signed".to_owned())
        } else if names_differ {
            Some("its names differ from [acme] domains".to_owned())
        } else {
            renewal_due(info.not_before, info.not_after, Timestamp::now())
        };
        let Some(reason) = reason else {
            return Ok(());
        };
        let request = OrderRequest {
            entry: m.entry.clone(),
            domains: m.domains.clone(),
            key: OrderKey::Current,
            challenge: m.challenge,
        };
        let report = self
            .client
            .obtain(&self.store, &request, &self.challenges)
            .await
            .map_err(|e| e.to_string())?;
        let leaf = report.entry.leaf();
        self.log.line(format_args!(
            "ACME: renewed {} ({}) because {reason}: new certificate valid until {}, same key (TLSA 3 1 1 {} unchanged)",
            m.entry,
            m.domains.join(", "),
            leaf.map(|l| l.not_after.to_string()).unwrap_or_default(),
            dane_check::tlsa_data(&report.entry.key_spki_sha256)
        ));
        for p in &report.problems {
            self.log.warn(format_args!("ACME: {}: {p}", m.entry));
        }
        Ok(())
    }
}

/// The wait after `failures` failed attempts: `first`, doubling, at most `max`.
fn backoff(first: Duration, max: Duration, failures: u32) -> Duration {
    let shift = failures.saturating_sub(1).min(20);
    first.checked_mul(1u32 << shift).unwrap_or(max).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_max() {
        let f = Duration::from_secs(60);
        let m = Duration::from_secs(600);
        assert_eq!(backoff(f, m, 1), f);
        assert_eq!(backoff(f, m, 2), Duration::from_secs(120));
        assert_eq!(backoff(f, m, 5), m);
        assert_eq!(backoff(f, m, u32::MAX), m);
    }
}
