//! The crate's public behaviour end to end: a TOML configuration as an
//! operator writes it, validated, then asked for decisions, including the
//! one-hour cleartext exemption after a failed handshake.

use std::time::Duration;

use portcullis_policy::mta_sts::{
    MtaStsFacts, RefreshPlan, StsCache, StsFailure, StsPolicy, StsTxtRecord,
};
use portcullis_policy::*;

const CONFIG: &str = r#"
tls-fallback-exemption-seconds = 3600

[[destination]]
domain = "default"
tls = "preferred"
dane = "opportunistic"

[[destination]]
domain = "partner.example"
tls = "required-verify"
max-connections = 5

[[destination]]
domain = ".hosted.example"
tls = "required-verify-hosted-domain"

[[destination]]
domain = "bücher.example"
tls = "required"

[[destination]]
domain = "plain.example"
tls = "none"

[starttls]
exclude = ["legacy.example", "198.51.100.0/24"]
require = ["mx.secure-relay.example"]

[requiretls]
recipient-domains = ["bank.example"]
"#;

fn n(s: &str) -> DomainName {
    DomainName::parse(s).unwrap()
}

fn t0() -> std::time::SystemTime {
    std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn decide(
    p: &OutboundPolicy,
    ex: &TlsExemptions,
    domain: &str,
    hop: NextHop,
    mta_sts: MtaStsFacts,
    message: MessageTls,
    now: std::time::SystemTime,
) -> HopRequirement<()> {
    let d = n(domain);
    p.decide(
        ex,
        &HopFacts {
            domain: &d,
            hop: &hop,
            tlsa: &TlsaFacts::Insecure,
            mta_sts: &mta_sts,
            message,
            now,
        },
    )
}

#[test]
fn operator_config_end_to_end() {
    let cfg: OutboundConfig = toml::from_str(CONFIG).unwrap();
    let p = OutboundPolicy::from_config(&cfg).unwrap();
    let ex = TlsExemptions::new();
    let insecure = |h: &str| NextHop::mx(n(h), MxOrigin::Insecure);

    let r = decide(
        &p,
        &ex,
        "partner.example",
        insecure("mx.partner.example"),
        MtaStsFacts::None,
        MessageTls::Default,
        t0(),
    );
    assert_eq!(r.rule, Rule::LocalRequired);
    assert!(!r.may_reach_unauthenticated_peer());

    // IDN destination written in Unicode in config, asked in A-labels.
    let r = decide(
        &p,
        &ex,
        "xn--bcher-kva.example",
        insecure("mx.xn--bcher-kva.example"),
        MtaStsFacts::None,
        MessageTls::Default,
        t0(),
    );
    assert_eq!(r.rule, Rule::LocalRequired);
    assert!(matches!(
        r.action,
        HopAction::Mandatory {
            authentication: Authentication::None,
            ..
        }
    ));

    // Hosted domain: a foreign MX from insecure DNS is not a reference name.
    let r = decide(
        &p,
        &ex,
        "a.hosted.example",
        insecure("mx.provider.net"),
        MtaStsFacts::None,
        MessageTls::Default,
        t0(),
    );
    match &r.action {
        HopAction::Mandatory {
            authentication: Authentication::Pkix { reference_names },
            ..
        } => {
            let names: Vec<String> = reference_names.iter().map(|x| x.to_string()).collect();
            assert_eq!(names, ["a.hosted.example", ".a.hosted.example"]);
        }
        other => panic!("{other:?}"),
    }

    // Exclusion by address and by domain.
    let hop = insecure("mx.anything.example").at("198.51.100.7".parse().unwrap());
    let r = decide(
        &p,
        &ex,
        "anything.example",
        hop,
        MtaStsFacts::None,
        MessageTls::Default,
        t0(),
    );
    assert_eq!(r.action, HopAction::Cleartext);
    let r = decide(
        &p,
        &ex,
        "legacy.example",
        insecure("mx.legacy.example"),
        MtaStsFacts::None,
        MessageTls::Default,
        t0(),
    );
    assert_eq!(r.rule, Rule::Excluded);

    // Requirement list by host name overrides `preferred`.
    let r = decide(
        &p,
        &ex,
        "customer.example",
        insecure("mx.secure-relay.example"),
        MtaStsFacts::None,
        MessageTls::Default,
        t0(),
    );
    assert_eq!(r.rule, Rule::LocalRequired);

    // tls = none, and a REQUIRETLS message to it bounces.
    let r = decide(
        &p,
        &ex,
        "plain.example",
        insecure("mx.plain.example"),
        MtaStsFacts::None,
        MessageTls::Default,
        t0(),
    );
    assert_eq!(r.rule, Rule::TlsNone);
    let rt = MessageTls::RequireTls(RequireTlsSource::MailParameter);
    let r = decide(
        &p,
        &ex,
        "plain.example",
        insecure("mx.plain.example"),
        MtaStsFacts::None,
        rt,
        t0(),
    );
    assert_eq!(r.rule, Rule::RequireTlsToTlsNone);

    // The rule flags mail to bank.example.
    let bank = n("bank.example");
    let m = p.requiretls().classify(&requiretls::MessageFacts {
        recipient_domain: Some(&bank),
        ..Default::default()
    });
    assert_eq!(m, MessageTls::RequireTls(RequireTlsSource::Rule));
}

#[test]
fn one_hour_cleartext_after_handshake_failure() {
    let p = OutboundPolicy::from_config(&toml::from_str(CONFIG).unwrap()).unwrap();
    let mut ex = TlsExemptions::new();
    let hop = NextHop::mx(n("mx.flaky.example"), MxOrigin::Insecure);
    let first = decide(
        &p,
        &ex,
        "flaky.example",
        hop.clone(),
        MtaStsFacts::None,
        MessageTls::Default,
        t0(),
    );
    assert_eq!(first.rule, Rule::Opportunistic);
    match first.on_peer_failure(PeerFailure::HandshakeFailed) {
        NextStep::RetryCleartext {
            exempt_until: Some(until),
        } => {
            assert_eq!(until, t0() + Duration::from_secs(3600));
            ex.record(hop.host.clone(), until);
        }
        other => panic!("{other:?}"),
    }
    let later = t0() + Duration::from_secs(1800);
    let r = decide(
        &p,
        &ex,
        "flaky.example",
        hop.clone(),
        MtaStsFacts::None,
        MessageTls::Default,
        later,
    );
    assert_eq!(r.rule, Rule::TemporarilyExempt);
    assert!(!r.sends_starttls());
    // REQUIRETLS ignores the exemption.
    let r = decide(
        &p,
        &ex,
        "flaky.example",
        NextHop::mx(n("mx.flaky.example"), MxOrigin::DnssecSecure),
        MtaStsFacts::None,
        MessageTls::RequireTls(RequireTlsSource::LocalPartTag),
        later,
    );
    assert_eq!(r.rule, Rule::RequireTls);
    // After the hour, STARTTLS again.
    let r = decide(
        &p,
        &ex,
        "flaky.example",
        hop,
        MtaStsFacts::None,
        MessageTls::Default,
        t0() + Duration::from_secs(3600),
    );
    assert_eq!(r.rule, Rule::Opportunistic);
}

#[test]
fn mta_sts_cache_feeds_the_decision() {
    let p = OutboundPolicy::default();
    let ex = TlsExemptions::new();
    let domain = n("example.com");
    let mut cache = StsCache::new();
    let txt = StsTxtRecord::select([&b"v=STSv1; id=2024A;"[..]]);
    let RefreshPlan::Fetch { id } = cache.plan(&domain, &txt, t0()) else {
        panic!()
    };
    let policy = StsPolicy::parse(
        b"version: STSv1\r\nmode: enforce\r\nmx: *.example.com\r\nmax_age: 86400\r\n",
    )
    .unwrap();
    cache.store(domain.clone(), id, policy, t0());
    let later = t0() + Duration::from_secs(600);
    // A failed refresh keeps the cached enforce policy in force.
    let facts = cache.facts_after_failure(&domain, StsFailure::FetchError, later);
    let r = decide(
        &p,
        &ex,
        "example.com",
        NextHop::mx(n("evil.attacker.example"), MxOrigin::Insecure),
        facts.clone(),
        MessageTls::Default,
        later,
    );
    assert_eq!(r.rule, Rule::StsMxNotListed);
    let r = decide(
        &p,
        &ex,
        "example.com",
        NextHop::mx(n("mx2.example.com"), MxOrigin::Insecure),
        facts,
        MessageTls::Default,
        later,
    );
    assert_eq!(r.rule, Rule::StsEnforce);
    // Expired: no policy; the failure is reported.
    let expired = t0() + Duration::from_secs(86401);
    let facts = cache.facts_after_failure(&domain, StsFailure::FetchError, expired);
    let r = decide(
        &p,
        &ex,
        "example.com",
        NextHop::mx(n("evil.attacker.example"), MxOrigin::Insecure),
        facts,
        MessageTls::Default,
        expired,
    );
    assert_eq!(r.rule, Rule::Opportunistic);
    assert_eq!(
        r.tls_rpt.known_failure,
        Some(TlsRptResult::StsPolicyFetchError)
    );
}

#[test]
fn config_types_round_trip_through_toml() {
    let cfg: OutboundConfig = toml::from_str(CONFIG).unwrap();
    let text = toml::to_string(&cfg).unwrap();
    assert!(
        text.contains("tls = \"required-verify-hosted-domain\""),
        "{text}"
    );
    let back: OutboundConfig = toml::from_str(&text).unwrap();
    assert_eq!(back, cfg);
    let listener = ListenerAccessConfig::default();
    let back: ListenerAccessConfig = toml::from_str(&toml::to_string(&listener).unwrap()).unwrap();
    assert_eq!(back, listener);
}

#[test]
fn unknown_keys_in_config_are_errors() {
    let e = toml::from_str::<OutboundConfig>(
        "[[destination]]\ndomain = \"a.example\"\ntls-level = \"none\"\n",
    )
    .unwrap_err();
    assert!(e.to_string().contains("tls-level"), "{e}");
    let e = toml::from_str::<OutboundConfig>(
        "[[destination]]\ndomain = \"a.example\"\ntls = \"mandatory\"\n",
    )
    .unwrap_err();
    assert!(e.to_string().contains("mandatory"), "{e}");
}
