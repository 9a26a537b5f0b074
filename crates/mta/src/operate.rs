//! What an operator can do to a running engine, besides the queue
//! commands: reload it with new settings, suspend and resume listeners and
//! delivery, read and clear the temporary STARTTLS exemptions and the
//! MTA-STS cache, and read its status. The admin interface (HTTPS API, the
//! status page, `portcullis ctl`) and the signal handler call these; none
//! of them is on the mail path.
//!
//! A reload is all-or-nothing: everything that can fail (the delivery
//! context with its TLS and MTA-STS set-up, the DNS resolver, binding every
//! new listener) is prepared first; only then is anything switched, and the
//! switch cannot fail. Sessions and deliveries in flight keep the settings
//! they started with; what is queued is untouched.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::engine::{Engine, EngineSettings, StartError, lock, start_resolver};
use crate::outbound::{ExemptionRow, StsCacheRow, unix_now};
use crate::suspension::DeliveryTarget;

/// One listener, as the status shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerView {
    pub name: String,
    /// Where it listens (or listened, while suspended).
    pub address: String,
    /// `accepting` or `suspended`.
    pub state: String,
    /// Unix seconds; 0 while accepting.
    pub suspended_since: u64,
    pub open_sessions: usize,
    pub max_sessions: usize,
}

/// The queue in numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueSummary {
    pub messages: usize,
    /// Recipients still to deliver.
    pub recipients: usize,
    pub bytes: u64,
    pub held: usize,
    /// Seconds since the oldest queued message was received; 0 when empty.
    pub oldest_age_seconds: u64,
}

/// The engine's state for the status page and `ctl status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineStatus {
    pub hostname: String,
    /// Unix seconds the engine started.
    pub started_at: u64,
    pub listeners: Vec<ListenerView>,
    /// Suspended delivery targets (`ALL`, `example.com`, `.example.com`)
    /// with the Unix second each began.
    pub delivery_suspended: Vec<(String, u64)>,
    /// Delivery targets suspended for the whole cluster (as this node last
    /// read them), with the Unix second each began.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delivery_suspended_cluster: Vec<(String, u64)>,
    pub queue: QueueSummary,
}

/// What a reload changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadSummary {
    pub listeners_added: Vec<String>,
    pub listeners_removed: Vec<String>,
    pub listeners_kept: Vec<String>,
    /// Settings that changed but only take effect at the next start.
    pub restart_needed: Vec<String>,
}

impl Engine {
    /// The engine's state now.
    pub async fn status(&self) -> EngineStatus {
        let statuses = lock(&self.inner.inbound)
            .as_ref()
            .map(crate::inbound::Inbound::statuses)
            .unwrap_or_default();
        let listeners = statuses
            .iter()
            .map(|s| {
                let since = s.suspended_since.load(Ordering::Relaxed);
                ListenerView {
                    name: s.name.clone(),
                    address: s.bound().unwrap_or_else(|| s.configured()).to_string(),
                    state: if since == 0 { "accepting" } else { "suspended" }.to_owned(),
                    suspended_since: since,
                    open_sessions: s.open.load(Ordering::Relaxed),
                    max_sessions: s.max.load(Ordering::Relaxed),
                }
            })
            .collect();
        let (delivery_suspended, delivery_suspended_cluster) = {
            let s = self.inner.suspended.lock().await;
            let rows = |m: &std::collections::BTreeMap<String, u64>| {
                m.iter().map(|(t, since)| (t.clone(), *since)).collect()
            };
            (rows(&s.delivery), rows(&s.cluster))
        };
        let hostname = self.inner.settings.lock().await.hostname.clone();
        EngineStatus {
            hostname,
            started_at: self
                .inner
                .started
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            listeners,
            delivery_suspended,
            delivery_suspended_cluster,
            queue: self.queue_summary(),
        }
    }

    /// The queue in numbers (a pass over the spool's index).
    pub fn queue_summary(&self) -> QueueSummary {
        let now = unix_now();
        let mut q = QueueSummary::default();
        for m in self.inner.spool.messages() {
            q.messages += 1;
            q.recipients += m.pending.len();
            q.bytes += m.size;
            q.held += usize::from(m.held);
            q.oldest_age_seconds = q
                .oldest_age_seconds
                .max(now.saturating_sub(m.envelope.received_at));
        }
        q
    }

    /// Stops listener `name` accepting; its open sessions have `delay` to
    /// finish, then are closed with `421`. Stored: a restart keeps it
    /// suspended.
    pub async fn suspend_listener(&self, name: &str, delay: Duration) -> Result<String, String> {
        let mut suspended = self.inner.suspended.lock().await;
        let rx = lock(&self.inner.inbound)
            .as_ref()
            .ok_or("the gateway is shutting down")?
            .command(name, Some(delay))?;
        let answer = rx.await.map_err(|_| "the gateway is shutting down")??;
        suspended
            .listeners
            .entry(name.to_owned())
            .or_insert(unix_now());
        suspended.save(&self.inner.data_dir)?;
        Ok(answer)
    }

    /// Listener `name` accepts again.
    pub async fn resume_listener(&self, name: &str) -> Result<String, String> {
        let mut suspended = self.inner.suspended.lock().await;
        let rx = lock(&self.inner.inbound)
            .as_ref()
            .ok_or("the gateway is shutting down")?
            .command(name, None)?;
        let answer = rx
            .await
            .map_err(|_| "the gateway is shutting down")?
            .inspect_err(|e| {
                crate::alerts::sources::listener_resume_failed(&self.inner.alerts, name, e)
            })?;
        if suspended.listeners.remove(name).is_some() {
            suspended.save(&self.inner.data_dir)?;
        }
        Ok(answer)
    }

    /// Suspends delivery to `target` (`ALL`, `example.com`,
    /// `.example.com`): nothing new is attempted there until it is resumed;
    /// attempts in flight finish. Stored: a restart keeps it suspended.
    pub async fn suspend_delivery(&self, target: &str) -> Result<String, String> {
        let t = DeliveryTarget::parse(target)?;
        let mut suspended = self.inner.suspended.lock().await;
        if suspended.delivery.contains_key(&t.to_string()) {
            return Ok(format!("delivery to {t} is already suspended"));
        }
        suspended.delivery.insert(t.to_string(), unix_now());
        suspended.save(&self.inner.data_dir)?;
        let detail = self.push_suspensions(&suspended).await?;
        let line = format!("delivery to {t} suspended: {detail}");
        self.inner.log.line(format_args!("operator: {line}"));
        Ok(line)
    }

    /// Resumes delivery to `target` (as written when it was suspended).
    pub async fn resume_delivery(&self, target: &str) -> Result<String, String> {
        let t = DeliveryTarget::parse(target)?;
        let mut suspended = self.inner.suspended.lock().await;
        if suspended.delivery.remove(&t.to_string()).is_none() {
            let list = suspended.delivery.keys().cloned().collect::<Vec<_>>();
            return Err(if list.is_empty() {
                format!("delivery to {t} is not suspended (nothing is)")
            } else {
                format!(
                    "delivery to {t} is not suspended (suspended: {})",
                    list.join(", ")
                )
            });
        }
        suspended.save(&self.inner.data_dir)?;
        let detail = self.push_suspensions(&suspended).await?;
        let line = format!("delivery to {t} resumed: {detail}");
        self.inner.log.line(format_args!("operator: {line}"));
        Ok(line)
    }

    pub(crate) async fn push_suspensions(
        &self,
        suspended: &crate::suspension::Suspended,
    ) -> Result<String, String> {
        let control = lock(&self.inner.outbound)
            .as_ref()
            .map(crate::outbound::Outbound::control)
            .ok_or("the gateway is shutting down")?;
        control
            .set_suspensions(suspended.delivery_suspensions())
            .await
    }

    /// The temporary STARTTLS exemptions in force.
    pub fn tls_exemptions(&self) -> Vec<ExemptionRow> {
        self.current_context()
            .map(|c| c.exemption_rows())
            .unwrap_or_default()
    }

    /// Ends the exemption of `host`, or all of them.
    pub fn clear_tls_exemptions(&self, host: Option<&str>) -> Result<String, String> {
        self.current_context()
            .ok_or("the gateway is shutting down")?
            .clear_exemptions(host)
    }

    /// The cached MTA-STS policies.
    pub fn mta_sts_cache(&self) -> Vec<StsCacheRow> {
        self.current_context()
            .map(|c| c.sts.rows())
            .unwrap_or_default()
    }

    /// Forgets the cached MTA-STS policy of `domain`, or all of them.
    pub fn flush_mta_sts_cache(&self, domain: Option<&str>) -> Result<String, String> {
        let line = self
            .current_context()
            .ok_or("the gateway is shutting down")?
            .sts
            .flush(domain)?;
        self.inner.log.line(format_args!("operator: {line}"));
        Ok(line)
    }

    /// The never-downgrade memory's entries still in force.
    pub fn never_downgrade(&self) -> Vec<crate::never_downgrade::MemoryRow> {
        self.current_context()
            .map(|c| c.never_downgrade.list())
            .unwrap_or_default()
    }

    /// Forgets the never-downgrade memory of `domain`, or all of it.
    pub fn forget_never_downgrade(&self, domain: Option<&str>) -> Result<String, String> {
        let context = self
            .current_context()
            .ok_or("the gateway is shutting down")?;
        let gone = context
            .never_downgrade
            .forget(domain)
            .map_err(|e| e.to_string())?;
        let line = match (domain, gone) {
            (Some(d), 0) => return Err(format!("no never-downgrade memory for {d}")),
            (Some(d), _) => format!("never-downgrade memory of {d} forgotten"),
            (None, n) => format!("{n} never-downgrade memory entries forgotten"),
        };
        self.inner.log.line(format_args!("operator: {line}"));
        Ok(line)
    }

    /// The never-downgrade memory and the STARTTLS exemptions every
    /// delivery context shares (across reloads), for the cluster sync.
    #[allow(clippy::type_complexity)]
    pub(crate) fn learned_state(
        &self,
    ) -> Option<(
        std::sync::Arc<crate::never_downgrade::NeverDowngrade>,
        std::sync::Arc<std::sync::Mutex<portcullis_policy::TlsExemptions>>,
    )> {
        self.current_context()
            .map(|c| (c.never_downgrade.clone(), c.exemptions.clone()))
    }

    fn current_context(&self) -> Option<std::sync::Arc<crate::outbound::DeliveryContext>> {
        lock(&self.inner.outbound)
            .as_ref()
            .map(crate::outbound::Outbound::current)
    }

    /// Applies new settings without a restart, all or nothing (see the
    /// module documentation). Listeners removed by the new settings stop
    /// accepting and their sessions get `grace` to finish.
    pub async fn reload(
        &self,
        new: EngineSettings,
        grace: Duration,
    ) -> Result<ReloadSummary, StartError> {
        let roots_before = self.inner.settings.lock().await.delivery.tls.roots.clone();
        let roots_after = new.delivery.tls.roots.clone();
        let result = self.reload_settings(new, grace).await;
        let alerts = &self.inner.alerts;
        match &result {
            Ok(_) => crate::alerts::sources::ca_list_compared(alerts, &roots_before, &roots_after),
            Err(e) => crate::alerts::sources::reload_failed(alerts, e),
        }
        result
    }

    async fn reload_settings(
        &self,
        new: EngineSettings,
        grace: Duration,
    ) -> Result<ReloadSummary, StartError> {
        let mut running = self.inner.settings.lock().await;
        let suspended = self.inner.suspended.lock().await;
        let log = &self.inner.log;
        let mut summary = ReloadSummary::default();
        for (what, changed) in [
            ("data-dir", new.data_dir != running.data_dir),
            ("spool directory", new.spool_dir != running.spool_dir),
            ("[spool]", new.spool != running.spool),
        ] {
            if changed {
                summary.restart_needed.push(what.to_owned());
            }
        }
        // Prepare everything that can fail; nothing changes yet.
        let same_dns = format!("{:?}", new.delivery.dns) == format!("{:?}", running.delivery.dns);
        let dns = if same_dns {
            lock(&self.inner.dns).clone()
        } else {
            start_resolver(&new, log, &self.inner.alerts)?
        };
        let context = lock(&self.inner.outbound)
            .as_ref()
            .ok_or_else(|| StartError::Setup("the gateway is shutting down".into()))?
            .prepare_reload(&new, dns.clone())?;
        let plan = lock(&self.inner.inbound)
            .as_ref()
            .ok_or_else(|| StartError::Setup("the gateway is shutting down".into()))?
            .prepare(&new, &suspended.listeners)?;
        // Switch: nothing below can fail.
        for l in &new.listeners {
            match running
                .listeners
                .iter()
                .find(|o| o.name == l.name && o.address == l.address)
            {
                Some(_) => summary.listeners_kept.push(l.name.clone()),
                None => summary.listeners_added.push(l.name.clone()),
            }
        }
        for o in &running.listeners {
            if !new
                .listeners
                .iter()
                .any(|l| l.name == o.name && l.address == o.address)
            {
                summary.listeners_removed.push(o.name.clone());
            }
        }
        if let Some(o) = lock(&self.inner.outbound).as_ref() {
            o.commit_reload(context);
        }
        if let Some(i) = lock(&self.inner.inbound).as_mut() {
            i.set_dns(dns.clone());
            i.apply(plan, grace);
        }
        if let Some(s) = lock(&self.inner.sampler).as_ref() {
            s.update(new.health.clone());
        }
        *lock(&self.inner.dns) = dns;
        let keep = *running.spool_dir != *new.spool_dir || running.spool != new.spool;
        let (spool_dir, spool, data_dir) = (
            running.spool_dir.clone(),
            running.spool.clone(),
            running.data_dir.clone(),
        );
        *running = new;
        if keep || running.data_dir != data_dir {
            // Still the ones in use until the next start.
            running.spool_dir = spool_dir;
            running.spool = spool;
            running.data_dir = data_dir;
        }
        log.line(format_args!(
            "configuration reloaded: listeners added [{}], removed [{}], kept [{}]{}",
            summary.listeners_added.join(", "),
            summary.listeners_removed.join(", "),
            summary.listeners_kept.join(", "),
            if summary.restart_needed.is_empty() {
                String::new()
            } else {
                format!(
                    "; {} changed and take(s) effect at the next start",
                    summary.restart_needed.join(", ")
                )
            }
        ));
        Ok(summary)
    }
}
