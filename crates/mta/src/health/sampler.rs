//! The sampler task: reads the gauges every sample period, runs the
//! hysteresis machine, and acts on what changed — the conservation flag the
//! inbound path reads, one mail-log line per transition, the event channel,
//! and the report `ctl health` shows. A reload hands it new settings; the
//! next sample is taken at once under them. It stops with the engine.

use std::time::SystemTime;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::gauges::Sources;
use super::{
    Health, HealthEvent, HealthReport, HealthSettings, Monitor, Transition, cause, describe,
};
use crate::maillog::MailLog;

/// A period of zero (settings built in code) must not spin.
const MIN_PERIOD: std::time::Duration = std::time::Duration::from_millis(10);

/// The running sampler.
#[derive(Debug)]
pub(crate) struct Sampler {
    settings: watch::Sender<HealthSettings>,
    task: JoinHandle<()>,
}

impl Sampler {
    /// Starts sampling now (the first sample is taken at once).
    pub(crate) fn start(
        health: Health,
        settings: HealthSettings,
        sources: Sources,
        log: MailLog,
    ) -> Sampler {
        let (tx, rx) = watch::channel(settings);
        let task = tokio::spawn(run(health, rx, sources, log));
        Sampler { settings: tx, task }
    }

    /// New settings (a reload).
    pub(crate) fn update(&self, settings: HealthSettings) {
        let _ = self.settings.send(settings);
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn run(
    health: Health,
    mut settings_rx: watch::Receiver<HealthSettings>,
    sources: Sources,
    log: MailLog,
) {
    let mut settings = settings_rx.borrow_and_update().clone();
    let mut monitor = Monitor::new(settings.thresholds);
    let mut since = 0;
    loop {
        let now = settings.clock.now();
        let sample = sources.measure(now);
        let transitions = monitor.observe(&sample);
        for t in &transitions {
            match t {
                Transition::ConservationEntered { .. } => {
                    since = unix(now);
                    log.warn(format_args!(
                        "health: {} (each private listener up to {} sessions)",
                        describe(t),
                        settings.private_session_limit
                    ));
                    health.set_conserving(true, cause(t));
                }
                Transition::ConservationLeft { .. } => {
                    since = unix(now);
                    log.line(format_args!("health: {}", describe(t)));
                    health.set_conserving(false, String::new());
                }
                Transition::GaugePressed { gauge, .. }
                | Transition::GaugeRelieved { gauge, .. } => {
                    // The conservation line of the same sample already
                    // names this gauge with its value and mark.
                    let named = transitions.iter().any(|o| {
                        matches!(o,
                            Transition::ConservationEntered { gauge: g, .. }
                            | Transition::ConservationLeft { gauge: g, .. } if g == gauge)
                    });
                    if !named {
                        log.line(format_args!("health: {}", describe(t)));
                    }
                }
            }
        }
        health.set_report(HealthReport::build(
            &settings,
            &monitor,
            &sample,
            unix(now).max(1),
            since,
            if monitor.conserving() {
                health.reason()
            } else {
                String::new()
            },
        ));
        // Published last: a subscriber that reads the report on an event
        // sees the state the event announces.
        for t in transitions {
            health.publish(HealthEvent {
                at: now,
                transition: t,
            });
        }
        tokio::select! {
            () = tokio::time::sleep(settings.sample_period.max(MIN_PERIOD)) => {}
            changed = settings_rx.changed() => {
                if changed.is_err() {
                    return;
                }
                settings = settings_rx.borrow_and_update().clone();
                monitor.set_thresholds(settings.thresholds);
                health.set_private_session_limit(settings.private_session_limit);
            }
        }
    }
}
