//! TLS reports on a running [`Engine`]: started after the engine (like the
//! certificate tasks), fed by delivery's counter, stopped with it, and asked
//! by operators to send a day's reports now.

use crate::engine::{Engine, lock};

use super::day::UtcDay;
use super::deliver::Transport;
use super::service::{ReportService, SendResult, TlsReportSettings};

impl Engine {
    /// Starts counting TLS sessions for TLS-RPT and the report task.
    /// Replaces a report task already running. On a cluster node the
    /// counts are summed in the cluster database and each report is sent
    /// by one node (counts left in `settings.store_dir` by a single
    /// gateway, for reports not sent yet, are moved to the cluster).
    pub async fn start_tls_reports(&self, settings: TlsReportSettings) {
        let delivery = self.inner.settings.lock().await.clone();
        let transport = Transport {
            hostname: delivery.hostname.clone(),
            delivery: delivery.delivery,
            resolver: lock(&self.inner.dns).clone(),
            log: self.inner.log.clone(),
        };
        let counter = self.inner.tls_report.clone();
        let service = match self.cluster() {
            Some(cluster) => {
                ReportService::start_in_cluster(settings, counter, transport, cluster.clone())
            }
            None => ReportService::start(settings, counter, transport),
        };
        let old = lock(&self.inner.tls_reporter).replace(service);
        if let Some(old) = old {
            old.shutdown().await;
        }
    }

    /// Sends the TLS reports of `day` now (`portcullis ctl tls-report
    /// send`), after writing the counts so far.
    pub async fn send_tls_reports(&self, day: UtcDay) -> Result<Vec<SendResult>, String> {
        let handle = lock(&self.inner.tls_reporter).as_ref().map(|s| s.handle());
        match handle {
            Some(h) => h.send_day(day).await,
            None => Err("TLS reports are not enabled ([tls-report] enabled = true)".into()),
        }
    }

    /// Runs the report task's sending round now: the reports that are due
    /// and not sent yet (in a cluster, those no other node sends).
    pub async fn send_due_tls_reports(&self) -> Result<Vec<SendResult>, String> {
        let handle = lock(&self.inner.tls_reporter).as_ref().map(|s| s.handle());
        match handle {
            Some(h) => Ok(h.send_due().await),
            None => Err("TLS reports are not enabled ([tls-report] enabled = true)".into()),
        }
    }

    /// Writes the TLS-RPT counts so far to the store (also done every
    /// flush interval and at shutdown).
    pub fn flush_tls_reports(&self) {
        if let Some(s) = lock(&self.inner.tls_reporter).as_ref() {
            s.handle().flush();
        }
    }
}
