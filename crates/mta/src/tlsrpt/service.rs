//! The report task beside the mail path: every `flush-interval` it adds
//! the delivery path's in-memory counts to the durable store, and sends the
//! reports that are due — a UTC day that has ended plus a random delay per
//! domain (so that reporters do not all send at midnight, RFC 8460 §5.1),
//! for up to [`RETRY_DAYS`] days while a report address has not taken it.
//! [`ReportHandle::send_day`] sends one day's reports at once, again if they
//! were sent already (`portcullis ctl tls-report send --day`). A slow report host delays nothing but this
//! task.
//!
//! In a cluster ([`ReportService::start_in_cluster`]) the counts go to the
//! node's outbox and from there to the database, where they are summed
//! over the nodes; a pusher drains the outbox every poll interval, and
//! before a sending round. Each report is sent by the node that takes its
//! turn in the database, from the summed counts.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use portcullis_policy::{DomainName, TlsRptTxtRecord};
use tokio::sync::Mutex as AsyncMutex;
use tokio::task::JoinHandle;

use super::backend::{Backend, Turn};
use super::counts::SessionCounter;
use super::day::UtcDay;
use super::deliver::{Rua, Transport};
use super::mail::{DkimSigning, MailParts, report_mail};
use super::report::{Reporting, build};
use super::store::{AggregateStore, FileStore};
use crate::clock::SharedClock;
use crate::cluster::Cluster;
use crate::cluster::tlsrpt::ClusterReports;

/// Days after its end a report is still retried automatically.
pub const RETRY_DAYS: u64 = 3;

/// What `sent_to` records when a domain publishes no usable `_smtp._tls`
/// record: nothing to send, and nothing to retry.
pub(crate) const NO_RECORD: &str = "none: no valid _smtp._tls record";

/// What `sent_to` records once every report address took the report: the
/// task neither looks the record up again nor resends.
pub(crate) const ALL_SENT: &str = "done: every report address took the report";

/// `[tls-report]`, validated.
#[derive(Debug)]
pub struct TlsReportSettings {
    pub reporting: Reporting,
    /// `From:` and envelope sender of report mail.
    pub from: String,
    /// DKIM signer of report mail (none: unsigned, with a warning at start).
    pub dkim: Option<DkimSigning>,
    /// How often counts are written to the store and due reports sent.
    pub flush_interval: Duration,
    /// The longest random delay after the end of a UTC day.
    pub max_delay: Duration,
    /// Where the daily aggregates are kept.
    pub store_dir: PathBuf,
    /// The clock days are read from.
    pub clock: SharedClock,
}

/// What happened to one report address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendResult {
    pub domain: String,
    /// The `rua` URI, or why there is none.
    pub rua: String,
    pub outcome: Result<String, String>,
}

/// The report task and what `ctl` asks of it.
#[derive(Debug)]
pub struct ReportService {
    inner: Arc<Inner>,
    tasks: Vec<JoinHandle<()>>,
}

#[derive(Debug)]
struct Inner {
    settings: TlsReportSettings,
    counter: Arc<SessionCounter>,
    store: Backend,
    transport: Transport,
    /// One sender at a time (the task and `ctl` would send twice).
    sending: AsyncMutex<()>,
    delay_key: RandomState,
}

impl ReportService {
    /// Enables counting and starts the task (a single gateway: the
    /// aggregates in files under `store_dir`).
    pub fn start(
        settings: TlsReportSettings,
        counter: Arc<SessionCounter>,
        transport: Transport,
    ) -> Self {
        let store: Arc<dyn AggregateStore> = Arc::new(FileStore::new(&settings.store_dir));
        Self::start_with(settings, counter, transport, Backend::Local(store))
    }

    /// As [`start`](Self::start) on a node of `cluster`: the counts are
    /// summed in the cluster database (through the node's outbox) and each
    /// report is sent by one node.
    pub fn start_in_cluster(
        settings: TlsReportSettings,
        counter: Arc<SessionCounter>,
        transport: Transport,
        cluster: Cluster,
    ) -> Self {
        let reports = Arc::new(ClusterReports::new(cluster, transport.log.clone()));
        Self::start_with(settings, counter, transport, Backend::Cluster(reports))
    }

    fn start_with(
        settings: TlsReportSettings,
        counter: Arc<SessionCounter>,
        transport: Transport,
        store: Backend,
    ) -> Self {
        counter.enable(settings.clock.clone());
        if settings.dkim.is_none() {
            transport.log.warn(format_args!(
                "TLS reports: no DKIM key configured ([tls-report] dkim-key); report mail goes out unsigned and receivers may discard it"
            ));
        }
        let inner = Arc::new(Inner {
            settings,
            counter,
            store,
            transport,
            sending: AsyncMutex::new(()),
            delay_key: RandomState::new(),
        });
        let mut tasks = Vec::new();
        if let Backend::Cluster(reports) = &inner.store {
            tasks.push(tokio::spawn(pusher(reports.clone())));
        }
        tasks.push(tokio::spawn({
            let inner = inner.clone();
            async move {
                if let Backend::Cluster(reports) = &inner.store {
                    adopt_local(reports.clone(), &inner.settings).await;
                }
                let mut tick = tokio::time::interval(inner.settings.flush_interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    inner.clone().flush_off_runtime().await;
                    inner.send_due().await;
                }
            }
        }));
        ReportService { inner, tasks }
    }

    /// What operators ask of the running task.
    pub fn handle(&self) -> ReportHandle {
        ReportHandle(self.inner.clone())
    }

    /// Stops the task after writing what was counted; counting stops.
    pub async fn shutdown(self) {
        for task in self.tasks {
            task.abort();
            let _ = task.await;
        }
        self.inner.counter.disable();
        self.inner.flush();
        self.inner.store.last_push().await;
    }
}

/// A handle on the report task for operator commands.
#[derive(Debug, Clone)]
pub struct ReportHandle(Arc<Inner>);

impl ReportHandle {
    /// Writes the counts so far to the store (also done every interval).
    pub fn flush(&self) {
        self.0.flush();
    }

    /// Sends the reports of `day` now, to every address of every domain
    /// with counts, whether or not it took the report already (an operator
    /// asking again means it).
    pub async fn send_day(&self, day: UtcDay) -> Result<Vec<SendResult>, String> {
        self.0.clone().flush_off_runtime().await;
        self.0.send_day(day, true).await
    }

    /// Runs a sending round now (what the task does every interval): the
    /// reports that are due and not sent yet; what happened to each.
    pub async fn send_due(&self) -> Vec<SendResult> {
        self.0.clone().flush_off_runtime().await;
        self.0.send_due().await
    }
}

/// On a node that was a single gateway before: moves the counts it left
/// in its file store into the outbox (before the first push and round,
/// so that they are in the reports).
async fn adopt_local(reports: Arc<ClusterReports>, settings: &TlsReportSettings) {
    let dir = settings.store_dir.clone();
    let from = oldest_retried(settings.clock.now());
    let adopting = reports.clone();
    let adopted = tokio::task::spawn_blocking(move || {
        adopting.adopt_local(&dir, from, &[NO_RECORD, ALL_SENT])
    })
    .await;
    if let Ok(Err(e)) = adopted {
        reports.log().warn(format_args!(
            "TLS reports: {e}; the counts kept there are not in the cluster's reports"
        ));
    }
}

/// A cluster node's pusher: drains the outbox every poll interval, so
/// counts written while the database was away arrive once it is back.
async fn pusher(reports: Arc<ClusterReports>) {
    let mut tick = tokio::time::interval(reports.cluster().settings().poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if reports.waiting().is_ok_and(|n| n > 0) {
            let _ = reports.push().await;
        }
    }
}

impl Inner {
    /// [`Self::flush`] on a blocking thread: its fsyncs must not hold up
    /// a runtime worker that delivery also runs on.
    async fn flush_off_runtime(self: Arc<Self>) {
        let _ = tokio::task::spawn_blocking(move || self.flush()).await;
    }

    fn flush(&self) {
        let pending = self.counter.take();
        if pending.is_empty() {
            return;
        }
        for (failed, why) in self.store.add(pending) {
            self.transport.log.warn(format_args!(
                "TLS reports: {why}; kept in memory and written with the next flush"
            ));
            self.counter.put_back(failed);
        }
    }

    fn delay(&self, day: UtcDay, domain: &str) -> Duration {
        let max = self.settings.max_delay.as_secs();
        if max == 0 {
            return Duration::ZERO;
        }
        Duration::from_secs(self.delay_key.hash_one((day, domain)) % max)
    }

    async fn send_due(&self) -> Vec<SendResult> {
        let now = self.settings.clock.now();
        let today = UtcDay::of(now);
        let oldest = oldest_retried(now);
        self.store.before_sending().await;
        let days = match self.store.days(oldest, &[NO_RECORD, ALL_SENT]).await {
            Ok(d) => d,
            Err(e) => {
                self.transport.log.warn(format_args!("TLS reports: {e}"));
                return Vec::new();
            }
        };
        let mut results = Vec::new();
        for day in days
            .into_iter()
            .filter(|d| *d < today && d.start_unix() + (RETRY_DAYS + 1) * 86_400 > unix(now))
        {
            if let Ok(r) = self.send_day_filtered(day, false, now).await {
                results.extend(r);
            }
        }
        results
    }

    async fn send_day(&self, day: UtcDay, now_anyway: bool) -> Result<Vec<SendResult>, String> {
        let now = self.settings.clock.now();
        self.store.before_sending().await;
        self.send_day_filtered(day, now_anyway, now).await
    }

    async fn send_day_filtered(
        &self,
        day: UtcDay,
        now_anyway: bool,
        now: SystemTime,
    ) -> Result<Vec<SendResult>, String> {
        let _one = self.sending.lock().await;
        let finished: &[&str] = if now_anyway {
            &[]
        } else {
            &[NO_RECORD, ALL_SENT]
        };
        let domains = self.store.domains(day, finished).await?;
        let mut results = Vec::new();
        for domain in domains {
            let due = day.end() + self.delay(day, &domain);
            if !now_anyway && now < due {
                continue;
            }
            results.extend(self.send_domain(day, &domain, now_anyway).await);
        }
        Ok(results)
    }

    /// Sends the report of `domain` for `day` if this node has the turn.
    async fn send_domain(&self, day: UtcDay, domain: &str, again: bool) -> Vec<SendResult> {
        let log = &self.transport.log;
        match self.store.take_turn(day, domain).await {
            Ok(Turn::Send(stored)) => {
                let out = self.send_stored(day, domain, stored, again).await;
                self.store.end_turn(day, domain).await;
                out
            }
            Ok(Turn::Nothing) => Vec::new(),
            Ok(Turn::Elsewhere(node)) => {
                log.line(format_args!(
                    "TLS reports: report for {domain} on {day} is being sent by {}",
                    node.map_or("another node".to_owned(), |n| format!("node {n}"))
                ));
                Vec::new()
            }
            Err(e) => {
                log.warn(format_args!("TLS reports: {e}"));
                vec![SendResult {
                    domain: domain.to_owned(),
                    rua: String::new(),
                    outcome: Err(e),
                }]
            }
        }
    }

    async fn send_stored(
        &self,
        day: UtcDay,
        domain: &str,
        stored: super::store::StoredDay,
        again: bool,
    ) -> Vec<SendResult> {
        let log = &self.transport.log;
        let result = |rua: &str, outcome| SendResult {
            domain: domain.to_owned(),
            rua: rua.to_owned(),
            outcome,
        };
        if !again
            && stored
                .sent_to
                .iter()
                .any(|s| s == NO_RECORD || s == ALL_SENT)
        {
            return Vec::new();
        }
        let ruas = match self.report_addresses(domain).await {
            Ok(r) => r,
            Err((why, for_good)) => {
                if for_good {
                    log.line(format_args!(
                        "TLS reports: no report for {domain} on {day}: {why}"
                    ));
                    if let Err(e) = self.store.mark_sent(day, domain, NO_RECORD).await {
                        log.warn(format_args!("TLS reports: {e}"));
                    }
                } else {
                    log.warn(format_args!(
                        "TLS reports: report for {domain} on {day} not sent yet: {why}"
                    ));
                }
                return vec![result(NO_RECORD, Err(why))];
            }
        };
        let s = &self.settings;
        let built = match build(&s.reporting, day, domain, &stored.counts) {
            Ok(b) => b,
            Err(e) => return vec![result("", Err(format!("cannot build the report: {e}")))],
        };
        let mut out = Vec::new();
        let mut all_sent = true;
        for uri in ruas {
            if !again && stored.sent_to.contains(&uri) {
                continue;
            }
            let parsed = Rua::parse(&uri);
            // An address that cannot be used never will be: not retried.
            let unusable = parsed.is_err();
            let outcome = match parsed {
                Err(e) => Err(e),
                Ok(Rua::Mail(to)) => {
                    let parts = MailParts {
                        from: &s.from,
                        to: std::slice::from_ref(&to),
                        submitter: &s.reporting.submitter,
                        now_unix: unix(s.clock.now()),
                    };
                    match report_mail(&built, &parts, s.dkim.as_ref()) {
                        Ok(message) => self.transport.mail(&s.from, &to, &message).await,
                        Err(e) => Err(e),
                    }
                }
                Ok(Rua::Https(url)) => self
                    .transport
                    .post(&url, &built.gzip)
                    .await
                    .map(|status| format!("HTTP {status}")),
            };
            let (ok, fail) = built
                .report
                .policies
                .iter()
                .fold((0u64, 0u64), |(a, b), p| {
                    (
                        a + p.summary.total_successful_session_count,
                        b + p.summary.total_failure_session_count,
                    )
                });
            match &outcome {
                Ok(reply) => {
                    log.line(format_args!(
                        "TLS reports: report {} for {domain} on {day} ({ok} successful, {fail} failed sessions) sent to {uri}: {reply}",
                        built.report.report_id
                    ));
                    if let Err(e) = self.store.mark_sent(day, domain, &uri).await {
                        log.warn(format_args!(
                            "TLS reports: {e}; the report may be sent again"
                        ));
                    }
                }
                Err(e) => {
                    all_sent &= unusable;
                    log.warn(format_args!(
                        "TLS reports: report for {domain} on {day} not delivered to {uri}: {e}; retried later"
                    ));
                }
            }
            out.push(result(&uri, outcome));
        }
        if all_sent && let Err(e) = self.store.mark_sent(day, domain, ALL_SENT).await {
            log.warn(format_args!("TLS reports: {e}"));
        }
        out
    }

    /// The `rua` URIs of `domain`, or why there are none (`true`: for good,
    /// no valid record; `false`: the lookup failed, try later).
    async fn report_addresses(&self, domain: &str) -> Result<Vec<String>, (String, bool)> {
        let resolver = self
            .transport
            .resolver
            .as_ref()
            .ok_or(("no DNS resolver is configured".to_owned(), false))?;
        let name = DomainName::parse(domain)
            .map_err(|e| (format!("{domain:?} is not a domain name: {e}"), true))?;
        let records = resolver
            .dane()
            .txt(&format!("_smtp._tls.{}.", name.as_str()))
            .await
            .map_err(|e| (format!("_smtp._tls.{domain} lookup failed: {e}"), false))?;
        TlsRptTxtRecord::select(records.iter().map(Vec::as_slice))
            .map(|r| r.rua().to_vec())
            .map_err(|e| (format!("_smtp._tls.{domain}: {e}"), true))
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The oldest day whose reports are still sent at `now`.
fn oldest_retried(now: SystemTime) -> UtcDay {
    UtcDay::of(
        now.checked_sub(Duration::from_secs(RETRY_DAYS * 86_400))
            .unwrap_or(UNIX_EPOCH),
    )
}
