//! A check report as one verdict per line, for people (a table) and for the
//! exit status (the worst verdict). The severities say what matters to a
//! sender: `fail` means mail would not go out, or would go out without the
//! protection the domain asks for; `warn` means it goes out but something
//! should be fixed; `info` is a fact without a verdict.

use serde::Serialize;

use super::{AddressReport, DomainReport};

/// How bad a finding is (ordered: the worst is the largest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// A fact.
    Info,
    /// As it should be.
    Ok,
    /// Works, should be fixed.
    Warn,
    /// Mail would not be delivered, or not protected as asked.
    Fail,
}

impl Severity {
    /// `OK`, `INFO`, `WARN`, `FAIL`.
    pub fn label(self) -> &'static str {
        match self {
            Severity::Info => "INFO",
            Severity::Ok => "OK",
            Severity::Warn => "WARN",
            Severity::Fail => "FAIL",
        }
    }
}

/// One line of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// What was checked (`MX`, `TLSA`, `STARTTLS`, `certificate`, …).
    pub check: String,
    /// Of what (`example.com`, `mx1.example.com [192.0.2.1]:25`).
    pub subject: String,
    /// What was found, short.
    pub result: String,
    /// The verdict.
    pub severity: Severity,
    /// Why, for a person.
    pub reason: String,
}

fn f(check: &str, subject: &str, result: String, severity: Severity, reason: String) -> Finding {
    Finding {
        check: check.into(),
        subject: subject.into(),
        result,
        severity,
        reason,
    }
}

impl DomainReport {
    /// One verdict per line, in report order.
    pub fn findings(&self) -> Vec<Finding> {
        let d = self.domain.as_str();
        let mut out = vec![f(
            "policy",
            d,
            self.policy.clone(),
            Severity::Info,
            "what this gateway demands of the domain".into(),
        )];
        let mx_sev = match (self.mx.error.is_some(), self.mx.dnssec.as_str()) {
            (true, _) => Severity::Fail,
            (false, "secure") => Severity::Ok,
            (false, "route") => Severity::Info,
            (false, "bogus") => Severity::Fail,
            _ => Severity::Info,
        };
        let mx_reason = match (&self.mx.error, self.mx.dnssec.as_str()) {
            (Some(e), _) => e.clone(),
            (None, "secure") => "DNSSEC-signed: DANE can apply".into(),
            (None, "route") => "an SMTP route replaces the MX lookup".into(),
            (None, s) => format!("MX answer is {s}: DANE cannot apply to this domain"),
        };
        out.push(f(
            "MX",
            d,
            if self.mx.records.is_empty() {
                format!("no answer ({})", self.mx.dnssec)
            } else {
                format!("{} ({})", self.mx.records.join(", "), self.mx.dnssec)
            },
            mx_sev,
            mx_reason,
        ));
        for h in &self.hosts {
            let usable = h.tlsa.records.iter().filter(|r| r.usable).count();
            let tlsa_sev = if h.tlsa.finding.starts_with("bogus")
                || h.tlsa.finding.starts_with("lookup failed")
            {
                Severity::Fail
            } else if h.tlsa.finding.starts_with("secure, usable") {
                Severity::Ok
            } else if h.tlsa.finding.starts_with("secure but none") {
                Severity::Warn
            } else {
                Severity::Info
            };
            out.push(f(
                "TLSA",
                &h.host,
                format!(
                    "{} record(s), {usable} usable ({})",
                    h.tlsa.records.len(),
                    h.tlsa.dnssec
                ),
                tlsa_sev,
                h.tlsa.finding.clone(),
            ));
            for a in &h.addresses {
                address_findings(&mut out, &format!("{} [{}]", h.host, a.address), a);
            }
        }
        let sts = &self.mta_sts;
        if sts.enabled {
            let (sev, result, reason) = match (&sts.txt, &sts.mode, &sts.policy_error) {
                (None, _, _) => (
                    Severity::Info,
                    "no policy".to_owned(),
                    sts.txt_error.clone().unwrap_or_default(),
                ),
                (Some(_), _, Some(e)) => (
                    Severity::Fail,
                    "announced, unavailable".to_owned(),
                    e.clone(),
                ),
                (Some(txt), Some(mode), None) => {
                    let listed = sts.mx_listed.unwrap_or(true);
                    let sev = match (mode.as_str(), listed) {
                        ("enforce", true) => Severity::Ok,
                        ("enforce", false) => Severity::Fail,
                        (_, true) => Severity::Info,
                        _ => Severity::Warn,
                    };
                    (
                        sev,
                        format!(
                            "mode {mode}, mx [{}], max_age {}",
                            sts.mx.join(", "),
                            sts.max_age.unwrap_or(0)
                        ),
                        if listed {
                            format!("{txt}; every MX host is listed")
                        } else {
                            format!("{txt}; an MX host is not listed in the policy")
                        },
                    )
                }
                (Some(txt), None, None) => (Severity::Info, txt.clone(), String::new()),
            };
            out.push(f("MTA-STS", d, result, sev, reason));
        } else {
            out.push(f(
                "MTA-STS",
                d,
                "not consulted".into(),
                Severity::Info,
                "MTA-STS is off in [mta-sts] or for this destination".into(),
            ));
        }
        out.push(match &self.tls_rpt.error {
            None => f(
                "TLS-RPT",
                d,
                self.tls_rpt.rua.join(", "),
                Severity::Ok,
                "reports are requested".into(),
            ),
            Some(e) => f("TLS-RPT", d, "none".into(), Severity::Info, e.clone()),
        });
        out
    }

    /// The worst verdict.
    pub fn worst(&self) -> Severity {
        self.findings()
            .iter()
            .map(|f| f.severity)
            .max()
            .unwrap_or(Severity::Info)
    }
}

fn address_findings(out: &mut Vec<Finding>, subject: &str, a: &AddressReport) {
    if let Some(e) = &a.error {
        out.push(f(
            "connect",
            subject,
            "failed".into(),
            Severity::Fail,
            e.clone(),
        ));
    } else {
        out.push(f(
            "connect",
            subject,
            format!("{} ms", a.connect_ms.unwrap_or(0)),
            Severity::Ok,
            a.banner.clone().unwrap_or_default(),
        ));
    }
    if let Some(s) = &a.starttls {
        let sev = if s == "offered" {
            Severity::Ok
        } else {
            Severity::Fail
        };
        let reason = if s == "offered" {
            format!("EHLO: {}", a.ehlo.join(" "))
        } else {
            "mail to this host travels in cleartext, or not at all".into()
        };
        out.push(f("STARTTLS", subject, s.clone(), sev, reason));
    }
    if let Some(t) = &a.tls {
        out.push(f(
            "TLS",
            subject,
            format!("{} {}", t.protocol, t.cipher),
            Severity::Ok,
            String::new(),
        ));
        let leaf = t.chain.first();
        let days = t.days_to_expiry.unwrap_or(0);
        // Expired, expiring or not valid for the name: mail may still go
        // out (the decision line says), but it should be fixed.
        let sev = if !t.pkix_valid || days < 14 {
            Severity::Warn
        } else {
            Severity::Ok
        };
        out.push(f(
            "certificate",
            subject,
            format!(
                "{}, {} days left, PKIX {}",
                leaf.map(|l| l.subject.as_str()).unwrap_or("(none)"),
                days,
                if t.pkix_valid { "valid" } else { "invalid" }
            ),
            sev,
            t.pkix_detail.clone(),
        ));
        if let Some(m) = t.dane_match {
            out.push(f(
                "DANE",
                subject,
                if m { "match".into() } else { "no match".into() },
                if m { Severity::Ok } else { Severity::Fail },
                t.dane_detail.clone().unwrap_or_default(),
            ));
        }
        out.push(f(
            "REQUIRETLS",
            subject,
            if a.requiretls {
                "offered"
            } else {
                "not offered"
            }
            .into(),
            Severity::Info,
            String::new(),
        ));
    }
    let dsev = if a.decision.delivers {
        if a.decision.outcome == "deliver" {
            Severity::Ok
        } else {
            Severity::Warn
        }
    } else {
        Severity::Fail
    };
    out.push(f(
        "decision",
        subject,
        format!("{} {}", a.decision.rule, a.decision.outcome),
        dsev,
        match &a.decision.authentication {
            Some(auth) => format!("{}; check {auth}", a.decision.reason),
            None => a.decision.reason.clone(),
        },
    ));
}
