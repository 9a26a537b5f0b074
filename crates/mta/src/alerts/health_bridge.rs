//! Health transitions as alerts: a gauge past its mark (spool free space →
//! disk; queue size or age → queue; memory, sessions → system) and
//! resource conservation entered (critical) and left (info). The health
//! sampler publishes the transitions; this task raises them.

use tokio::sync::broadcast::{Receiver, error::RecvError};

use super::{Alert, AlertClass, AlertSink, Severity};
use crate::health::{Gauge, HealthEvent, Transition};

/// Raises every event from `events` on `alerts` until the health monitor
/// stops. Subscribe before the sampler starts so the first sample's
/// transitions are not missed.
pub fn spawn(mut events: Receiver<HealthEvent>, alerts: AlertSink) {
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(event) => alerts.raise(alert_for(&event)),
                // Missed events were transitions already superseded by the
                // ones still queued; the current state is in `ctl health`.
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => break,
            }
        }
    });
}

fn alert_for(event: &HealthEvent) -> Alert {
    let gauge = event.gauge();
    let (class, severity, key) = match event.transition {
        Transition::GaugePressed { .. } => (
            class_of(gauge),
            Severity::Warning,
            format!("health:{gauge}:pressed"),
        ),
        Transition::GaugeRelieved { .. } => (
            class_of(gauge),
            Severity::Info,
            format!("health:{gauge}:relieved"),
        ),
        Transition::ConservationEntered { .. } => (
            AlertClass::System,
            Severity::Critical,
            "health:conservation:entered".to_owned(),
        ),
        Transition::ConservationLeft { .. } => (
            AlertClass::System,
            Severity::Info,
            "health:conservation:left".to_owned(),
        ),
    };
    let advice = match event.transition {
        Transition::ConservationEntered { .. } => {
            ". `portcullis ctl health` shows every gauge against its marks."
        }
        _ => "",
    };
    Alert::new(class, severity, key, format!("{}{advice}", event.text()))
}

fn class_of(gauge: Gauge) -> AlertClass {
    match gauge {
        Gauge::SpoolFreeMib | Gauge::SpoolFreePercent => AlertClass::Disk,
        Gauge::QueueMessages | Gauge::QueueOldestAgeSeconds => AlertClass::Queue,
        Gauge::ResidentMemoryMib | Gauge::OpenSessions => AlertClass::System,
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    fn event(transition: Transition) -> HealthEvent {
        HealthEvent {
            at: SystemTime::UNIX_EPOCH,
            transition,
        }
    }

    #[test]
    fn each_gauge_and_conservation_get_their_class_severity_and_key() {
        let disk = alert_for(&event(Transition::GaugePressed {
            gauge: Gauge::SpoolFreeMib,
            value: 3,
            threshold: 6,
        }));
        assert_eq!(
            (disk.class, disk.severity, disk.key.as_str()),
            (
                AlertClass::Disk,
                Severity::Warning,
                "health:spool-free-mib:pressed"
            )
        );
        let entered = alert_for(&event(Transition::ConservationEntered {
            gauge: Gauge::QueueMessages,
            value: 4,
            threshold: 3,
        }));
        assert_eq!(
            (entered.class, entered.severity),
            (AlertClass::System, Severity::Critical)
        );
        assert!(entered.text.contains("421 4.3.2"), "{}", entered.text);
        let left = alert_for(&event(Transition::ConservationLeft {
            gauge: Gauge::QueueMessages,
            value: 1,
            threshold: 2,
        }));
        assert_eq!(
            (left.severity, left.key.as_str()),
            (Severity::Info, "health:conservation:left")
        );
    }
}
