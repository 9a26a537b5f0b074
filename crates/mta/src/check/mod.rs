//! `portcullis check DOMAIN`: what a mail domain's TLS looks like from this
//! gateway — the checks CheckTLS, internet.nl or hardenize run, made with the
//! gateway's own resolver, verifier and decision code (the outbound
//! `probe` bridge): MX with DNSSEC status, each host's addresses and TLSA
//! records, one probe connection per address (connect time, banner, EHLO,
//! STARTTLS, protocol and cipher, the chain with its PKIX verdict for the MX
//! name and days to expiry, DANE match, REQUIRETLS), the MTA-STS record and
//! policy, the TLS-RPT record, and the decision delivery would take for each
//! address (rule and reason). [`DomainReport::findings`] turns it into one
//! verdict per line ([`Finding`]); the worst decides the exit status.

mod findings;
mod report;

use std::net::SocketAddr;
use std::time::Duration;

use portcullis_dane::dns::Answer;
use portcullis_dane::{PeerVerifier, PkixRoots, ReferenceId, ReferenceNames, danger};
use portcullis_policy::{DomainName, NextStep, TlsRptTxtRecord, TlsaFacts};
use portcullis_smtp_tls::TlsOutcome;

pub use findings::{Finding, Severity};
pub use report::{
    AddressReport, CertReport, DecisionReport, DomainReport, HostReport, MtaStsReport, MxReport,
    TlsReport, TlsRptReport, TlsaRecordReport, TlsaReport,
};

use crate::dns::Resolver;
use crate::maillog::MailLog;
use crate::outbound::probe::{self, NextHops};
use crate::settings::EngineSettings;

/// How to run a check.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Deadline of each probe (a connection with its SMTP exchange, a
    /// policy fetch).
    pub timeout: Duration,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            timeout: Duration::from_secs(30),
        }
    }
}

/// Runs the check of `domain` with the gateway's settings. `progress`
/// hears one line per step (for stderr).
pub async fn check_domain(
    settings: &EngineSettings,
    domain: &str,
    options: &CheckOptions,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<DomainReport, String> {
    let name = DomainName::parse(domain).map_err(|e| format!("{domain}: {e}"))?;
    let d = &settings.delivery;
    let resolver = match &d.dns {
        Some(s) => Some(Resolver::new(s).map_err(|e| format!("DNS resolver: {e}"))?),
        None => None,
    };
    let pkix = PkixRoots::new(d.tls.roots.clone(), d.tls.provider.clone())
        .map_err(|e| format!("outbound TLS: {e}"))?;
    let entry = d.policy.destinations().lookup(&name);
    let dane = format!("{:?}", entry.dane).to_ascii_lowercase();
    let policy = format!(
        "destination entry {}: tls {}, dane {dane}, mta-sts {}",
        entry.key,
        entry.tls,
        if entry.mta_sts { "on" } else { "off" }
    );
    let log = MailLog::with_observer(None);

    progress(&format!("{name}: MX"));
    let mx = mx_report(resolver.as_ref(), &name, d).await;
    progress(&format!("{name}: MTA-STS"));
    let (mta_sts, sts_facts) = match (&resolver, d.mta_sts.enabled && entry.mta_sts) {
        (Some(r), true) => {
            let p = probe::mta_sts(d, r, &name).await;
            (sts_report(&p), p.facts)
        }
        _ => (
            MtaStsReport::default(),
            portcullis_policy::mta_sts::MtaStsFacts::None,
        ),
    };
    progress(&format!("{name}: TLS-RPT"));
    let tls_rpt = tls_rpt_report(resolver.as_ref(), &name).await;

    let hops = probe::next_hops(d, resolver.as_ref(), &log, &name).await;
    let mut hosts = Vec::new();
    let mut mx = mx;
    match hops {
        NextHops::None(s) => mx.error = Some(s.diagnostic.clone()),
        NextHops::Hops(hops) => {
            for hop in &hops {
                let host = hop.hop.host.to_string();
                progress(&format!("{host}: TLSA"));
                let tlsa = tlsa_report(resolver.as_ref(), &host, d.mx_port, &hop.tlsa).await;
                let mut addresses = Vec::new();
                for addr in &hop.addrs {
                    progress(&format!("{host} [{addr}]: connect, EHLO, STARTTLS"));
                    addresses.push(
                        address_report(settings, &pkix, &name, hop, *addr, &sts_facts, options)
                            .await,
                    );
                }
                hosts.push(HostReport {
                    origin: match hop.hop.origin {
                        portcullis_policy::MxOrigin::SmtpRoute => "route",
                        portcullis_policy::MxOrigin::DnssecSecure => "dnssec-secure",
                        _ => "insecure",
                    }
                    .into(),
                    host,
                    tlsa,
                    addresses,
                });
            }
        }
    }
    let mut report = DomainReport {
        domain: name.to_string(),
        policy,
        mx,
        hosts,
        mta_sts,
        tls_rpt,
    };
    if let Some(listed) = mx_listed(&report, &sts_facts) {
        report.mta_sts.mx_listed = Some(listed);
    }
    Ok(report)
}

async fn mx_report(
    resolver: Option<&Resolver>,
    name: &DomainName,
    d: &crate::settings::DeliverySettings,
) -> MxReport {
    if let Some(route) = probe::route_hosts(&d.routes, name) {
        return MxReport {
            dnssec: "route".into(),
            records: route,
            error: None,
        };
    }
    let Some(r) = resolver else {
        return MxReport {
            dnssec: "lookup failed".into(),
            records: Vec::new(),
            error: Some("no DNS resolver is configured".into()),
        };
    };
    match r.dane().mx(name.as_str()).await {
        Ok(answer) => {
            let dnssec = answer.status().to_string();
            let records = match answer {
                Answer::Records(p) => p
                    .into_parts()
                    .1
                    .into_iter()
                    .map(|(pref, host)| format!("{pref} {host}"))
                    .collect(),
                Answer::NoRecords { .. } => {
                    vec![format!("(none: {name} itself is the implicit MX)")]
                }
                Answer::Bogus { detail } | Answer::LookupFailed { detail } => {
                    return MxReport {
                        dnssec,
                        records: Vec::new(),
                        error: Some(detail),
                    };
                }
                _ => {
                    return MxReport {
                        dnssec,
                        records: Vec::new(),
                        error: Some("no usable answer".into()),
                    };
                }
            };
            MxReport {
                dnssec,
                records,
                error: None,
            }
        }
        Err(e) => MxReport {
            dnssec: "lookup failed".into(),
            records: Vec::new(),
            error: Some(e.to_string()),
        },
    }
}

async fn tlsa_report(
    resolver: Option<&Resolver>,
    host: &str,
    port: u16,
    facts: &TlsaFacts<portcullis_dane::TlsaSet>,
) -> TlsaReport {
    let finding = match facts {
        TlsaFacts::NotApplicable => "not looked up (MX or address not DNSSEC-secure, or a route)",
        TlsaFacts::Insecure => "insecure or absent: no DANE",
        TlsaFacts::SecureUsable(_) => "secure, usable: DANE applies",
        TlsaFacts::SecureAllUnusable => "secure but none usable: TLS mandatory, unauthenticated",
        TlsaFacts::Bogus => "bogus: delivery defers",
        _ => "lookup failed: delivery defers",
    }
    .to_owned();
    let mut report = TlsaReport {
        name: None,
        dnssec: "not looked up".into(),
        records: Vec::new(),
        finding,
    };
    let (Some(r), false) = (resolver, matches!(facts, TlsaFacts::NotApplicable)) else {
        return report;
    };
    let Ok(lookup) = r.dane().tlsa(host, port).await else {
        return report;
    };
    report.name = Some(format!("_{port}._tcp.{}", lookup.base_domain));
    report.dnssec = lookup.answer.status().to_string();
    if let Answer::Records(p) = lookup.answer {
        let set = p.into_parts().1;
        for (record, why) in set.classify(false) {
            report.records.push(TlsaRecordReport {
                record: record.to_string(),
                usable: why.is_none(),
                unusable_reason: why.map(|w| w.to_string()),
            });
        }
    }
    report
}

async fn address_report(
    settings: &EngineSettings,
    pkix: &PkixRoots,
    domain: &DomainName,
    hop: &probe::Hop,
    addr: SocketAddr,
    sts: &portcullis_policy::mta_sts::MtaStsFacts,
    options: &CheckOptions,
) -> AddressReport {
    let d = &settings.delivery;
    let req = probe::decide(d, domain, hop, addr, sts);
    let p = probe::probe(
        d,
        pkix,
        &settings.hostname,
        hop,
        addr,
        &req,
        options.timeout,
    )
    .await;
    let mut out = AddressReport {
        address: addr.to_string(),
        connect_ms: p.connect_ms,
        banner: p.banner.clone(),
        ehlo: p.ehlo.clone(),
        requiretls: p.requiretls,
        error: p.error.clone(),
        ..AddressReport::default()
    };
    out.starttls = p.tls.as_ref().map(|t| match t {
        TlsOutcome::Established(_) => "offered".to_owned(),
        TlsOutcome::NoEsmtp => "no ESMTP".to_owned(),
        TlsOutcome::StartTlsNotOffered => "not offered".to_owned(),
        TlsOutcome::StartTlsRefused(r) => format!("refused: {}", r.to_string().trim_end()),
        TlsOutcome::HandshakeFailed(e) => format!("handshake failed: {e}"),
        other => other.to_string(),
    });
    if let Some(TlsOutcome::Established(info)) = &p.tls {
        out.tls = Some(tls_report(d, pkix, hop, info, &p.ehlo_after_tls));
    }
    out.decision = decision_report(&req, &p);
    out
}

fn tls_report(
    d: &crate::settings::DeliverySettings,
    pkix: &PkixRoots,
    hop: &probe::Hop,
    info: &portcullis_smtp_tls::TlsInfo,
    ehlo: &[String],
) -> TlsReport {
    let chain: Vec<CertReport> = info
        .peer_certificates
        .iter()
        .map(
            |c| match portcullis_certstore::CertInfo::from_der(c, "presented certificate") {
                Ok(i) => CertReport {
                    names: i.dns_names().map(str::to_owned).collect(),
                    subject: i.subject,
                    issuer: i.issuer,
                    not_after: i.not_after.to_string(),
                    sha256: i.sha256,
                    spki_sha256: i.spki_sha256,
                },
                Err(e) => CertReport {
                    subject: format!("(cannot be read: {e})"),
                    ..CertReport::default()
                },
            },
        )
        .collect();
    let days_to_expiry = info.peer_certificates.first().and_then(|c| {
        portcullis_certstore::CertInfo::from_der(c, "leaf")
            .ok()
            .map(|i| portcullis_certstore::Timestamp::now().days_until(i.not_after))
    });
    let host = hop.hop.host.to_string();
    let pkix_check = danger::report_only(PeerVerifier::pkix(
        pkix.clone(),
        vec![ReferenceId::parse(&host)],
    ));
    let (pkix_valid, pkix_detail) =
        probe::run_verifier(&pkix_check, &info.peer_certificates, &hop.server_name);
    let (dane_match, dane_detail) = match &hop.tlsa {
        TlsaFacts::SecureUsable(set) => {
            let v = danger::report_only(PeerVerifier::dane(
                set.clone(),
                ReferenceNames::new([host.as_str()]),
                d.tls.provider.clone(),
            ));
            let (ok, why) = probe::run_verifier(&v, &info.peer_certificates, &hop.server_name);
            (Some(ok), Some(why))
        }
        _ => (None, None),
    };
    TlsReport {
        protocol: info.protocol.replace("TLSv1_", "TLSv1."),
        cipher: info.cipher.replace("TLS13_", "TLS_"),
        ehlo: ehlo.to_vec(),
        chain,
        pkix_valid,
        pkix_detail,
        days_to_expiry,
        dane_match,
        dane_detail,
    }
}

fn decision_report(
    req: &portcullis_policy::HopRequirement<portcullis_dane::TlsaSet>,
    p: &probe::Probe,
) -> DecisionReport {
    let mut out = DecisionReport {
        rule: format!("R{}", req.rule.row()),
        reason: req.rule.to_string(),
        authentication: p
            .decision_check
            .as_ref()
            .map(|(ok, why)| format!("{}: {why}", if *ok { "passed" } else { "failed" })),
        ..DecisionReport::default()
    };
    (out.outcome, out.delivers) = if p.skipped.is_some() {
        ("do not connect".into(), false)
    } else if p.error.is_some() {
        ("next host (connection failed)".into(), false)
    } else {
        match &p.next_step {
            None => ("deliver".into(), true),
            Some(NextStep::ContinueCleartext) => ("deliver in cleartext".into(), true),
            Some(NextStep::ContinueEncrypted) => (
                "deliver encrypted, authentication failure only reported".into(),
                true,
            ),
            Some(NextStep::RetryCleartext { .. }) => ("retry in cleartext".into(), true),
            Some(NextStep::GiveUp { shortfall, status }) => (
                format!("do not deliver here: {shortfall:?} ({status})"),
                false,
            ),
            Some(_) => ("do not deliver here".into(), false),
        }
    };
    out
}

fn sts_report(p: &probe::StsProbe) -> MtaStsReport {
    let mut r = MtaStsReport {
        enabled: true,
        ..MtaStsReport::default()
    };
    match &p.txt {
        Ok(t) => r.txt = Some(t.to_string()),
        Err(e) => r.txt_error = Some(e.to_string()),
    }
    match &p.policy {
        Some(Ok(policy)) => {
            r.mode = Some(policy.mode().as_str().to_owned());
            r.mx = policy.mx().iter().map(|m| m.to_string()).collect();
            r.max_age = Some(policy.max_age());
        }
        Some(Err(e)) => r.policy_error = Some(e.clone()),
        None => {}
    }
    r
}

fn mx_listed(
    report: &DomainReport,
    facts: &portcullis_policy::mta_sts::MtaStsFacts,
) -> Option<bool> {
    let portcullis_policy::mta_sts::MtaStsFacts::Policy(policy) = facts else {
        return None;
    };
    Some(
        report
            .hosts
            .iter()
            .all(|h| DomainName::parse(&h.host).is_ok_and(|n| policy.allows_mx(&n))),
    )
}

async fn tls_rpt_report(resolver: Option<&Resolver>, name: &DomainName) -> TlsRptReport {
    let Some(r) = resolver else {
        return TlsRptReport {
            error: Some("no DNS resolver".into()),
            ..TlsRptReport::default()
        };
    };
    let owner = format!("_smtp._tls.{name}.");
    match r.dane().txt(&owner).await {
        Ok(records) => match TlsRptTxtRecord::select(records.iter().map(Vec::as_slice)) {
            Ok(rec) => TlsRptReport {
                rua: rec.rua().to_vec(),
                error: None,
            },
            Err(e) => TlsRptReport {
                rua: Vec::new(),
                error: Some(e.to_string()),
            },
        },
        Err(e) => TlsRptReport {
            rua: Vec::new(),
            error: Some(format!("lookup failed: {e}")),
        },
    }
}
