//! Decides the security of delivery hops with `portcullis-policy`, as a
//! sending MTA does before each connection, and prints the deciding rule
//! (a row of the decision table in `decide`'s documentation).
//!
//!     cargo run -p portcullis-examples --example policy-decide
//!
//! The facts (DNSSEC status of the MX answer, TLSA lookup, MTA-STS policy,
//! REQUIRETLS) are given here; an MTA gets them from DNS and HTTPS.

use std::time::SystemTime;

use portcullis_policy::mta_sts::{MtaStsFacts, StsPolicy};
use portcullis_policy::*;

const CONFIG: &str = r#"
[[destination]]
domain = "default"
tls = "preferred"

[[destination]]
domain = "partner.example"
tls = "required-verify"

[starttls]
exclude = ["legacy.example"]
"#;

/// What the transport does: the action, in words.
fn describe(action: &HopAction<&str>) -> String {
    let auth = |a: &Authentication<&str>| match a {
        Authentication::None => "no certificate check".to_string(),
        Authentication::Pkix { reference_names } => {
            let names: Vec<String> = reference_names.iter().map(|n| n.to_string()).collect();
            format!("PKIX for [{}]", names.join(", "))
        }
        Authentication::Dane { tlsa, .. } => format!("DANE with {tlsa}"),
        // An authentication a newer crate version may add: demand it or fail.
        _ => "an unknown check (treat as failed)".to_string(),
    };
    use HopAction::*;
    match action {
        Skip { status, .. } => format!("do not connect ({status}); next host"),
        Cleartext => "connect, never STARTTLS".into(),
        Opportunistic {
            report_authentication: a,
            ..
        } => {
            format!("STARTTLS if offered, else cleartext; report {}", auth(a))
        }
        Mandatory {
            authentication: a,
            require_requiretls: rt,
            shortfall: s,
        } => {
            let rt = if *rt { " and REQUIRETLS" } else { "" };
            let then = s.disposition();
            format!(
                "STARTTLS{rt} required, {}; otherwise next host, then {then:?}",
                auth(a)
            )
        }
        // An action a newer crate version may add: the safe reading is "do not send".
        _ => "unknown action: do not connect; defer".into(),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let policy = OutboundPolicy::from_config(&toml::from_str(CONFIG)?)?;
    let sts =
        StsPolicy::parse(b"version: STSv1\nmode: enforce\nmx: *.example.com\nmax_age: 86400\n")?;
    let name = |s: &str| DomainName::parse(s);
    // Destination, MX host, how the MX was learnt, TLSA lookup, MTA-STS, message.
    #[rustfmt::skip]
    let scenarios = [
        ("example.org", "mx.example.org", MxOrigin::Insecure, TlsaFacts::NotApplicable, MtaStsFacts::None, MessageTls::Default),
        ("partner.example", "mx1.partner.example", MxOrigin::Insecure, TlsaFacts::NotApplicable, MtaStsFacts::None, MessageTls::Default),
        ("example.com", "mx1.example.com", MxOrigin::Insecure, TlsaFacts::NotApplicable, MtaStsFacts::Policy(sts.clone()), MessageTls::Default),
        ("example.com", "mx.elsewhere.net", MxOrigin::Insecure, TlsaFacts::NotApplicable, MtaStsFacts::Policy(sts), MessageTls::Default),
        ("example.net", "mx.example.net", MxOrigin::DnssecSecure, TlsaFacts::SecureUsable("TLSA 3 1 1 …"), MtaStsFacts::None, MessageTls::Default),
        ("example.net", "mx.example.net", MxOrigin::DnssecSecure, TlsaFacts::Bogus, MtaStsFacts::None, MessageTls::Default),
        ("example.org", "mx.example.org", MxOrigin::Insecure, TlsaFacts::NotApplicable, MtaStsFacts::None, MessageTls::RequireTls(RequireTlsSource::MailParameter)),
        ("legacy.example", "mx.legacy.example", MxOrigin::Insecure, TlsaFacts::NotApplicable, MtaStsFacts::None, MessageTls::Default),
    ];
    for (domain, mx, origin, tlsa, mta_sts, message) in &scenarios {
        let (domain, hop) = (name(domain)?, NextHop::mx(name(mx)?, *origin));
        let facts = HopFacts {
            domain: &domain,
            hop: &hop,
            tlsa,
            mta_sts,
            message: *message,
            now: SystemTime::now(),
        };
        let req = policy.decide(&TlsExemptions::new(), &facts);
        let rpt = req.tls_rpt.policy_type.as_str();
        println!(
            "{domain} via {mx} ({origin:?}, {message:?}):\n  R{} {}",
            req.rule.row(),
            req.rule
        );
        println!("  → {} [TLS-RPT: {rpt}]", describe(&req.action));
    }
    Ok(())
}
