//! The alert raised when the TLS rules of the decision refuse every MX (or
//! route host) of a destination: required TLS, DANE, MTA-STS enforce or
//! REQUIRETLS cannot be met anywhere, so the mail waits in the queue until
//! it bounces. One key per domain (`tls-policy:<domain>`), so a destination
//! that keeps failing is one alert with a growing wait, not one per message.

use portcullis_policy::{DomainName, Rule};

use crate::alerts::{Alert, AlertClass, AlertSink, Severity};

/// What each hop of one delivery attempt came to.
#[derive(Debug, Default)]
pub(crate) struct Refusals {
    tried: usize,
    /// Set once a hop failed for anything but a TLS rule.
    other: bool,
    /// The rule and reason of the last refusal.
    last: Option<(Rule, String)>,
}

impl Refusals {
    pub(crate) fn note(&mut self, rule: Rule, refused: Option<&str>) {
        self.tried += 1;
        match refused {
            Some(reason) => self.last = Some((rule, reason.to_owned())),
            None => self.other = true,
        }
    }

    /// Raises the alert when every hop tried was refused by a TLS rule.
    pub(crate) fn raise(&self, alerts: &AlertSink, domain: &DomainName) {
        let (Some((rule, reason)), false) = (&self.last, self.other) else {
            return;
        };
        let class = class_of(*rule);
        let domain = domain.as_str();
        alerts.raise(Alert::new(
            class,
            Severity::Warning,
            format!("tls-policy:{domain}"),
            format!(
                "Mail to {domain} cannot be delivered: every MX host ({n}) was refused by the TLS policy. Rule R{row} ({rule}). Last reason: {reason}. The mail stays queued and bounces when its queue lifetime ends; check the destination's {what}, or change its entry in the destination table if the requirement is wrong.",
                n = self.tried,
                row = rule.row(),
                what = match class {
                    AlertClass::Dane => "TLSA records and certificates",
                    AlertClass::MtaSts => "MTA-STS policy and MX certificates",
                    _ => "STARTTLS support and certificates",
                }
            ),
        ));
    }
}

fn class_of(rule: Rule) -> AlertClass {
    match rule {
        Rule::TlsaLookupFailed
        | Rule::DaneMandatoryUnmet
        | Rule::DaneUsable
        | Rule::DaneAllUnusable => AlertClass::Dane,
        Rule::StsMxNotListed | Rule::StsEnforce => AlertClass::MtaSts,
        _ => AlertClass::Tls,
    }
}
