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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_tls_rule_names_the_class_operators_subscribe_to() {
        use AlertClass::*;
        for (rule, class) in [
            (Rule::TlsaLookupFailed, Dane),
            (Rule::DaneMandatoryUnmet, Dane),
            (Rule::DaneUsable, Dane),
            (Rule::DaneAllUnusable, Dane),
            (Rule::StsMxNotListed, MtaSts),
            (Rule::StsEnforce, MtaSts),
            (Rule::RequireTls, Tls),
            (Rule::RequireTlsInsecureMx, Tls),
            (Rule::RequireTlsToTlsNone, Tls),
            (Rule::LocalRequired, Tls),
        ] {
            assert_eq!(class_of(rule), class, "{rule:?}");
        }
    }

    #[test]
    fn one_hop_failing_for_another_reason_means_no_alert() {
        let (sink, mut rx) = AlertSink::channel(crate::clock::system(), Default::default());
        let domain = DomainName::parse("example.net").unwrap();
        let mut mixed = Refusals::default();
        mixed.note(Rule::LocalRequired, Some("mx1: STARTTLS not available"));
        mixed.note(Rule::LocalRequired, None);
        mixed.raise(&sink, &domain);
        assert!(rx.try_recv().is_err());
        let mut all = Refusals::default();
        all.note(Rule::RequireTls, Some("mx1: REQUIRETLS not offered"));
        all.note(Rule::RequireTls, Some("mx2: REQUIRETLS not offered"));
        all.raise(&sink, &domain);
        let n = rx.try_recv().unwrap();
        assert_eq!(n.alert.key, "tls-policy:example.net");
        assert_eq!(n.alert.class, AlertClass::Tls);
        assert!(
            n.alert.text.contains("every MX host (2)"),
            "{}",
            n.alert.text
        );
        assert!(n.alert.text.contains("R7"), "{}", n.alert.text);
    }
}
