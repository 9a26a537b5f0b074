//! `GET /metrics`: the Prometheus text format (version 0.0.4) written with
//! `prometheus-client`. The mail path's counters and histograms come from
//! [`Metrics`]; the gauges (queue, suspensions, resource conservation,
//! certificate expiry, spool sync latency) are read from the engine at scrape time. Names follow the
//! Prometheus conventions: `portcullis_` prefix, `_total` counters, base
//! units (seconds, bytes), and no label whose values grow with the mail
//! (no domain or address labels).

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::control::Control;
use super::view::{CertificateView, certificates};
use crate::metrics::Metrics;
use crate::operate::EngineStatus;
use crate::spool::Spool;

/// The content type of the text format.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What one scrape shows.
#[derive(Debug)]
struct Scrape {
    metrics: Arc<Metrics>,
    spool: Arc<Spool>,
    status: EngineStatus,
    certificates: Vec<CertificateView>,
    /// In resource conservation (`[health]`).
    conserving: bool,
}

/// The metrics text now.
pub(crate) async fn render(control: &Control) -> Result<String, std::fmt::Error> {
    let engine = control.engine();
    let running = control.running().await;
    let scrape = Scrape {
        metrics: engine.metrics().clone(),
        spool: engine.spool().clone(),
        status: engine.status().await,
        certificates: certificates(&running.config.store_dir()),
        conserving: engine.health().conserving(),
    };
    let mut registry = Registry::default();
    registry.register_collector(Box::new(scrape));
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)?;
    Ok(text)
}

fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    rows: &[(Vec<(&str, &str)>, f64)],
) -> std::fmt::Result {
    let mut m = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in rows {
        if labels.is_empty() {
            m.encode_gauge(v)?;
        } else {
            m.encode_family(labels)?.encode_gauge(v)?;
        }
    }
    Ok(())
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        self.metrics.encode(&mut encoder)?;
        let q = &self.status.queue;
        for (name, help, v) in [
            (
                "portcullis_queue_messages",
                "Messages in the queue.",
                q.messages as f64,
            ),
            (
                "portcullis_queue_recipients",
                "Recipients still to deliver.",
                q.recipients as f64,
            ),
            (
                "portcullis_queue_bytes",
                "Size of the queued messages.",
                q.bytes as f64,
            ),
            (
                "portcullis_queue_held_messages",
                "Messages held by the operator.",
                q.held as f64,
            ),
            (
                "portcullis_queue_oldest_message_age_seconds",
                "Age of the oldest queued message (0 when the queue is empty).",
                q.oldest_age_seconds as f64,
            ),
            (
                "portcullis_start_time_seconds",
                "When the gateway started (Unix time).",
                self.status.started_at as f64,
            ),
        ] {
            gauge(&mut encoder, name, help, &[(Vec::new(), v)])?;
        }
        let m = encoder.encode_descriptor(
            "portcullis_spool_sync_seconds",
            "Time a spool group commit took to reach stable storage (write and fsync).",
            None,
            MetricType::Histogram,
        )?;
        self.spool.sync_latency().encode(m)?;
        let listeners = &self.status.listeners;
        let rows: Vec<_> = listeners
            .iter()
            .map(|l| {
                (
                    vec![("listener", l.name.as_str())],
                    f64::from(u8::from(l.state == "suspended")),
                )
            })
            .collect();
        gauge(
            &mut encoder,
            "portcullis_listener_suspended",
            "1 while the listener is suspended by the operator.",
            &rows,
        )?;
        let rows: Vec<_> = listeners
            .iter()
            .map(|l| (vec![("listener", l.name.as_str())], l.open_sessions as f64))
            .collect();
        gauge(
            &mut encoder,
            "portcullis_listener_open_sessions",
            "Sessions open now.",
            &rows,
        )?;
        let all = self
            .status
            .delivery_suspended
            .iter()
            .any(|(t, _)| t == "ALL");
        gauge(
            &mut encoder,
            "portcullis_delivery_suspended_all",
            "1 while delivery to every destination is suspended.",
            &[(Vec::new(), f64::from(u8::from(all)))],
        )?;
        gauge(
            &mut encoder,
            "portcullis_resource_conservation",
            "1 while the gateway is in resource conservation (public listeners refuse new mail).",
            &[(Vec::new(), f64::from(u8::from(self.conserving)))],
        )?;
        gauge(
            &mut encoder,
            "portcullis_delivery_suspensions",
            "Delivery suspensions in force (ALL, domains, subdomains).",
            &[(Vec::new(), self.status.delivery_suspended.len() as f64)],
        )?;
        let rows: Vec<_> = self
            .certificates
            .iter()
            .map(|c| (vec![("certificate", c.name.as_str())], c.not_after as f64))
            .collect();
        gauge(
            &mut encoder,
            "portcullis_certificate_expiry_timestamp_seconds",
            "When each certificate of the store expires (Unix time).",
            &rows,
        )
    }
}
