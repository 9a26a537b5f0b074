//! Walks the decision table in `decide`'s rustdoc row by row: each case
//! states the facts, the row that must decide, and the full expected
//! action (authentication, shortfall, status) and TLS-RPT record.

mod common;

use common::*;
use portcullis_policy::mta_sts::{StsFailure, StsMode};
use portcullis_policy::*;

#[derive(Debug, PartialEq)]
enum Auth {
    None,
    Pkix(&'static [&'static str]),
    Dane,
}

#[derive(Debug, PartialEq)]
enum Expect {
    Skip(Disposition, &'static str),
    Cleartext,
    Opportunistic(Auth),
    Mandatory(Auth, bool, Disposition),
}

fn auth_of(a: &Authentication<&'static str>) -> (Auth, Vec<String>) {
    match a {
        Authentication::None => (Auth::None, vec![]),
        Authentication::Pkix { reference_names } => (
            Auth::Pkix(&[]),
            reference_names.iter().map(|n| n.to_string()).collect(),
        ),
        Authentication::Dane {
            tlsa,
            reference_names,
        } => {
            assert_eq!(*tlsa, "TLSA-SET");
            assert_eq!(
                reference_names[0].as_str(),
                MX,
                "DANE names start with the MX host"
            );
            (Auth::Dane, vec![])
        }
        other => panic!("an authentication the table does not know: {other:?}"),
    }
}

fn check(
    row: u8,
    label: &str,
    f: Facts,
    expect: Expect,
    rpt: TlsRptPolicyType,
    known: Option<TlsRptResult>,
) {
    let req = f.decide();
    assert_eq!(
        req.rule.row(),
        row,
        "{label}: decided by {:?} ({})",
        req.rule,
        req.rule
    );
    assert_eq!(req.tls_rpt.policy_type, rpt, "{label}: TLS-RPT policy type");
    assert_eq!(
        req.tls_rpt.known_failure, known,
        "{label}: TLS-RPT known failure"
    );
    assert_eq!(req.tls_rpt.policy_domain.as_str(), DOMAIN);
    let check_auth = |got: &Authentication<&'static str>, want: &Auth| {
        let (kind, names) = auth_of(got);
        match want {
            Auth::Pkix(w) => {
                assert_eq!(kind, Auth::Pkix(&[]), "{label}: authentication kind");
                assert_eq!(
                    names,
                    w.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                    "{label}: reference names"
                );
            }
            other => assert_eq!(&kind, other, "{label}: authentication kind"),
        }
    };
    match (&req.action, &expect) {
        (HopAction::Skip { shortfall, status }, Expect::Skip(disp, code)) => {
            assert_eq!(shortfall.disposition(), *disp, "{label}");
            assert_eq!(status.to_string(), *code, "{label}");
        }
        (HopAction::Cleartext, Expect::Cleartext) => {}
        (
            HopAction::Opportunistic {
                report_authentication,
                exempt_until,
            },
            Expect::Opportunistic(a),
        ) => {
            check_auth(report_authentication, a);
            assert_eq!(
                *exempt_until,
                Some(now() + std::time::Duration::from_secs(3600)),
                "{label}"
            );
        }
        (
            HopAction::Mandatory {
                authentication,
                require_requiretls,
                shortfall,
            },
            Expect::Mandatory(a, rt, disp),
        ) => {
            check_auth(authentication, a);
            assert_eq!(require_requiretls, rt, "{label}");
            assert_eq!(shortfall.disposition(), *disp, "{label}");
        }
        (got, want) => panic!("{label}: got {got:?}, want {want:?}"),
    }
}

use Disposition::{Bounce, Defer};
use TlsRptPolicyType::{NoPolicyFound as NoPol, Sts as StsT, Tlsa};

#[test]
fn r1_tlsa_bogus_or_failed_never_falls_back() {
    for tlsa in [TlsaFacts::Bogus, TlsaFacts::Failed] {
        for sts in [
            Sts::None,
            Sts::Policy(StsMode::Enforce, true),
            Sts::Policy(StsMode::Testing, true),
        ] {
            for message in [
                MessageTls::Default,
                MessageTls::RequireTls(RequireTlsSource::MailParameter),
            ] {
                let f = Facts {
                    tlsa: tlsa.clone(),
                    sts,
                    message,
                    excluded: true,
                    ..Facts::default()
                };
                check(
                    1,
                    "R1",
                    f,
                    Expect::Skip(Defer, "4.7.5"),
                    Tlsa,
                    Some(TlsRptResult::DnssecInvalid),
                );
            }
        }
    }
    // With DANE off for the destination, the lookup result is not consulted.
    let f = Facts {
        tlsa: TlsaFacts::Bogus,
        dane: EffectiveDane::None,
        ..Facts::default()
    };
    check(
        15,
        "R1 n/a",
        f,
        Expect::Opportunistic(Auth::None),
        NoPol,
        None,
    );
}

#[test]
fn r2_dane_mandatory_without_usable_records() {
    for tlsa in [
        TlsaFacts::NotApplicable,
        TlsaFacts::Insecure,
        TlsaFacts::SecureAllUnusable,
    ] {
        let f = Facts {
            dane: EffectiveDane::Mandatory,
            tlsa,
            ..Facts::default()
        };
        check(
            2,
            "R2",
            f,
            Expect::Skip(Defer, "4.7.5"),
            Tlsa,
            Some(TlsRptResult::DaneRequired),
        );
    }
    // An opt-out does not lift the operator's own mandatory DANE.
    let f = Facts {
        dane: EffectiveDane::Mandatory,
        message: MessageTls::OptOut,
        ..Facts::default()
    };
    check(
        2,
        "R2 opt-out",
        f,
        Expect::Skip(Defer, "4.7.5"),
        Tlsa,
        Some(TlsRptResult::DaneRequired),
    );
}

#[test]
fn r3_sts_enforce_mx_not_listed() {
    let f = Facts {
        sts: Sts::Policy(StsMode::Enforce, false),
        origin: MxOrigin::Insecure,
        ..Facts::default()
    };
    check(
        3,
        "R3",
        f,
        Expect::Skip(Defer, "4.7.5"),
        StsT,
        Some(TlsRptResult::ValidationFailure),
    );
}

#[test]
fn r4_excluded_but_tls_demanded_defers() {
    let cases = [
        Facts {
            tls: TlsLevel::Required,
            ..Facts::default()
        },
        Facts {
            required: true,
            ..Facts::default()
        },
        Facts {
            message: MessageTls::RequireTls(RequireTlsSource::Rule),
            ..Facts::default()
        },
        Facts {
            sts: Sts::Policy(StsMode::Enforce, true),
            ..Facts::default()
        },
    ];
    for f in cases {
        let f = Facts {
            excluded: true,
            ..f
        };
        let rpt = if matches!(f.sts, Sts::Policy(..)) {
            StsT
        } else {
            NoPol
        };
        check(4, "R4", f, Expect::Skip(Defer, "4.7.4"), rpt, None);
    }
    let f = Facts {
        excluded: true,
        tlsa: TlsaFacts::SecureUsable("TLSA-SET"),
        ..Facts::default()
    };
    check(4, "R4 dane", f, Expect::Skip(Defer, "4.7.4"), Tlsa, None);
}

#[test]
fn r5_requiretls_to_tls_none_bounces() {
    let f = Facts {
        tls: TlsLevel::None,
        message: MessageTls::RequireTls(RequireTlsSource::MailParameter),
        ..Facts::default()
    };
    check(5, "R5", f, Expect::Skip(Bounce, "5.7.10"), NoPol, None);
}

#[test]
fn r6_requiretls_needs_a_secure_mx() {
    let rt = MessageTls::RequireTls(RequireTlsSource::LocalPartTag);
    for sts in [
        Sts::None,
        Sts::Policy(StsMode::Testing, false),
        Sts::Unavailable(StsFailure::FetchError),
    ] {
        let f = Facts {
            origin: MxOrigin::Insecure,
            message: rt,
            sts,
            ..Facts::default()
        };
        let (rpt, known) = match sts {
            Sts::None => (NoPol, None),
            Sts::Policy(..) => (StsT, Some(TlsRptResult::ValidationFailure)),
            Sts::Unavailable(_) => (StsT, Some(TlsRptResult::StsPolicyFetchError)),
        };
        let expect = match sts {
            // A policy that could not be fetched may come back: defer.
            Sts::Unavailable(_) => Expect::Skip(Defer, "4.7.10"),
            _ => Expect::Skip(Bounce, "5.7.10"),
        };
        check(6, "R6", f, expect, rpt, known);
    }
    // A secure usable TLSA set does not make an insecure MX secure.
    let f = Facts {
        origin: MxOrigin::Insecure,
        message: rt,
        tlsa: TlsaFacts::SecureUsable("TLSA-SET"),
        ..Facts::default()
    };
    check(6, "R6 dane", f, Expect::Skip(Bounce, "5.7.10"), Tlsa, None);
}

#[test]
fn r7_requiretls() {
    let rt = MessageTls::RequireTls(RequireTlsSource::MailParameter);
    // DNSSEC-secure MX, no DANE: PKIX on the MX host name.
    let f = Facts {
        message: rt,
        ..Facts::default()
    };
    check(
        7,
        "R7 pkix",
        f,
        Expect::Mandatory(Auth::Pkix(&[MX]), true, Bounce),
        NoPol,
        None,
    );
    // Insecure MX validated by MTA-STS (testing mode counts for MX validation).
    let f = Facts {
        message: rt,
        origin: MxOrigin::Insecure,
        sts: Sts::Policy(StsMode::Testing, true),
        ..Facts::default()
    };
    check(
        7,
        "R7 sts",
        f,
        Expect::Mandatory(Auth::Pkix(&[MX]), true, Bounce),
        StsT,
        None,
    );
    // Secure usable TLSA: DANE authentication satisfies RFC 8689.
    let f = Facts {
        message: rt,
        tlsa: TlsaFacts::SecureUsable("TLSA-SET"),
        ..Facts::default()
    };
    check(
        7,
        "R7 dane",
        f,
        Expect::Mandatory(Auth::Dane, true, Bounce),
        Tlsa,
        None,
    );
    // All-unusable TLSA: still PKIX for REQUIRETLS.
    let f = Facts {
        message: rt,
        tlsa: TlsaFacts::SecureAllUnusable,
        ..Facts::default()
    };
    check(
        7,
        "R7 unusable",
        f,
        Expect::Mandatory(Auth::Pkix(&[MX]), true, Bounce),
        Tlsa,
        None,
    );
    // REQUIRETLS beats an exemption, the opt-out header and `preferred`.
    let f = Facts {
        message: rt,
        exempt: true,
        ..Facts::default()
    };
    check(
        7,
        "R7 exempt",
        f,
        Expect::Mandatory(Auth::Pkix(&[MX]), true, Bounce),
        NoPol,
        None,
    );
    // Hosted-domain: the MX name is under the domain, so it survives.
    let f = Facts {
        message: rt,
        tls: TlsLevel::RequiredVerifyHostedDomain,
        ..Facts::default()
    };
    check(
        7,
        "R7 hosted",
        f,
        Expect::Mandatory(Auth::Pkix(&[MX]), true, Bounce),
        NoPol,
        None,
    );
}

#[test]
fn r8_dane_usable() {
    let f = Facts {
        tlsa: TlsaFacts::SecureUsable("TLSA-SET"),
        sts: Sts::Policy(StsMode::Enforce, false),
        ..Facts::default()
    };
    // Secure usable TLSA beats MTA-STS: the MX mismatch does not matter.
    check(
        8,
        "R8 beats sts",
        f,
        Expect::Mandatory(Auth::Dane, false, Defer),
        Tlsa,
        None,
    );
    for tls in [
        TlsLevel::Preferred,
        TlsLevel::RequiredVerify,
        TlsLevel::RequiredVerifyHostedDomain,
    ] {
        let f = Facts {
            tls,
            tlsa: TlsaFacts::SecureUsable("TLSA-SET"),
            exempt: true,
            ..Facts::default()
        };
        check(
            8,
            "R8",
            f,
            Expect::Mandatory(Auth::Dane, false, Defer),
            Tlsa,
            None,
        );
    }
}

#[test]
fn r9_dane_all_unusable() {
    let f = Facts {
        tlsa: TlsaFacts::SecureAllUnusable,
        sts: Sts::Policy(StsMode::Enforce, true),
        ..Facts::default()
    };
    check(
        9,
        "R9",
        f,
        Expect::Mandatory(Auth::None, false, Defer),
        Tlsa,
        None,
    );
    let f = Facts {
        tlsa: TlsaFacts::SecureAllUnusable,
        tls: TlsLevel::RequiredVerify,
        ..Facts::default()
    };
    check(
        9,
        "R9 verify",
        f,
        Expect::Mandatory(Auth::Pkix(&[DOMAIN, MX]), false, Defer),
        Tlsa,
        None,
    );
}

#[test]
fn r10_sts_enforce() {
    let f = Facts {
        origin: MxOrigin::Insecure,
        sts: Sts::Policy(StsMode::Enforce, true),
        exempt: true,
        ..Facts::default()
    };
    check(
        10,
        "R10",
        f,
        Expect::Mandatory(Auth::Pkix(&[MX]), false, Defer),
        StsT,
        None,
    );
    let f = Facts {
        tls: TlsLevel::RequiredVerify,
        sts: Sts::Policy(StsMode::Enforce, true),
        ..Facts::default()
    };
    check(
        10,
        "R10 verify",
        f,
        Expect::Mandatory(Auth::Pkix(&[MX]), false, Defer),
        StsT,
        None,
    );
    // MTA-STS does not apply to SMTP routes.
    let f = Facts {
        origin: MxOrigin::SmtpRoute,
        sts: Sts::Policy(StsMode::Enforce, false),
        ..Facts::default()
    };
    check(
        15,
        "R10 route",
        f,
        Expect::Opportunistic(Auth::None),
        NoPol,
        None,
    );
    // Nor to a message that opted out.
    let f = Facts {
        message: MessageTls::OptOut,
        sts: Sts::Policy(StsMode::Enforce, true),
        ..Facts::default()
    };
    check(
        15,
        "R10 opt-out",
        f,
        Expect::Opportunistic(Auth::None),
        NoPol,
        None,
    );
}

#[test]
fn r11_local_required() {
    let f = Facts {
        tls: TlsLevel::Required,
        origin: MxOrigin::Insecure,
        exempt: true,
        ..Facts::default()
    };
    check(
        11,
        "R11 required",
        f,
        Expect::Mandatory(Auth::None, false, Defer),
        NoPol,
        None,
    );
    let f = Facts {
        tls: TlsLevel::RequiredVerify,
        origin: MxOrigin::Insecure,
        mx: FOREIGN_MX.into(),
        ..Facts::default()
    };
    check(
        11,
        "R11 verify",
        f,
        Expect::Mandatory(Auth::Pkix(&[DOMAIN, FOREIGN_MX]), false, Defer),
        NoPol,
        None,
    );
    let f = Facts {
        tls: TlsLevel::RequiredVerifyHostedDomain,
        origin: MxOrigin::Insecure,
        mx: FOREIGN_MX.into(),
        ..Facts::default()
    };
    check(
        11,
        "R11 hosted insecure",
        f,
        Expect::Mandatory(Auth::Pkix(&[DOMAIN, ".example.com"]), false, Defer),
        NoPol,
        None,
    );
    let f = Facts {
        tls: TlsLevel::RequiredVerifyHostedDomain,
        origin: MxOrigin::DnssecSecure,
        mx: FOREIGN_MX.into(),
        ..Facts::default()
    };
    check(
        11,
        "R11 hosted secure",
        f,
        Expect::Mandatory(
            Auth::Pkix(&[DOMAIN, ".example.com", FOREIGN_MX]),
            false,
            Defer,
        ),
        NoPol,
        None,
    );
    // Requirement list overrides a preferred level; testing adds only reporting.
    let f = Facts {
        required: true,
        sts: Sts::Policy(StsMode::Testing, true),
        ..Facts::default()
    };
    check(
        11,
        "R11 list",
        f,
        Expect::Mandatory(Auth::None, false, Defer),
        StsT,
        None,
    );
    // The opt-out never relaxes the operator's own requirement.
    let f = Facts {
        tls: TlsLevel::Required,
        message: MessageTls::OptOut,
        ..Facts::default()
    };
    check(
        11,
        "R11 opt-out",
        f,
        Expect::Mandatory(Auth::None, false, Defer),
        NoPol,
        None,
    );
}

#[test]
fn r12_to_r14_cleartext() {
    let f = Facts {
        excluded: true,
        sts: Sts::Policy(StsMode::Testing, true),
        ..Facts::default()
    };
    check(12, "R12", f, Expect::Cleartext, StsT, None);
    let f = Facts {
        tls: TlsLevel::None,
        tlsa: TlsaFacts::SecureUsable("TLSA-SET"),
        sts: Sts::Policy(StsMode::Enforce, true),
        ..Facts::default()
    };
    check(13, "R13", f, Expect::Cleartext, NoPol, None);
    let f = Facts {
        exempt: true,
        ..Facts::default()
    };
    check(14, "R14", f, Expect::Cleartext, NoPol, None);
    let f = Facts {
        exempt: true,
        tls: TlsLevel::PreferredVerify,
        sts: Sts::Policy(StsMode::Testing, false),
        ..Facts::default()
    };
    check(
        14,
        "R14 testing",
        f,
        Expect::Cleartext,
        StsT,
        Some(TlsRptResult::ValidationFailure),
    );
    // DANE opportunistic with an opt-out: TLSA ignored.
    let f = Facts {
        exempt: true,
        message: MessageTls::OptOut,
        tlsa: TlsaFacts::SecureUsable("TLSA-SET"),
        ..Facts::default()
    };
    check(14, "R14 opt-out", f, Expect::Cleartext, NoPol, None);
}

#[test]
fn r15_opportunistic() {
    check(
        15,
        "R15",
        Facts::default(),
        Expect::Opportunistic(Auth::None),
        NoPol,
        None,
    );
    let f = Facts {
        tls: TlsLevel::PreferredVerify,
        ..Facts::default()
    };
    check(
        15,
        "R15 verify",
        f,
        Expect::Opportunistic(Auth::Pkix(&[DOMAIN, MX])),
        NoPol,
        None,
    );
    let f = Facts {
        sts: Sts::Policy(StsMode::Testing, true),
        ..Facts::default()
    };
    check(
        15,
        "R15 testing",
        f,
        Expect::Opportunistic(Auth::Pkix(&[MX])),
        StsT,
        None,
    );
    let f = Facts {
        sts: Sts::Policy(StsMode::Testing, false),
        ..Facts::default()
    };
    check(
        15,
        "R15 testing unlisted",
        f,
        Expect::Opportunistic(Auth::None),
        StsT,
        Some(TlsRptResult::ValidationFailure),
    );
    let f = Facts {
        sts: Sts::Unavailable(StsFailure::WebPkiInvalid),
        ..Facts::default()
    };
    check(
        15,
        "R15 sts unavailable",
        f,
        Expect::Opportunistic(Auth::None),
        StsT,
        Some(TlsRptResult::StsWebpkiInvalid),
    );
    let f = Facts {
        tlsa: TlsaFacts::Insecure,
        origin: MxOrigin::Insecure,
        ..Facts::default()
    };
    check(
        15,
        "R15 insecure",
        f,
        Expect::Opportunistic(Auth::None),
        NoPol,
        None,
    );
}

#[test]
fn r16_reference_names_conflict() {
    // Hosted-domain with a foreign MX from insecure DNS, validated by MTA-STS:
    // MTA-STS wants the MX name, hosted-domain refuses it.
    let f = Facts {
        tls: TlsLevel::RequiredVerifyHostedDomain,
        origin: MxOrigin::Insecure,
        mx: FOREIGN_MX.into(),
        sts: Sts::Policy(StsMode::Enforce, true),
        ..Facts::default()
    };
    check(
        16,
        "R16 sts",
        f.clone(),
        Expect::Skip(Defer, "4.7.5"),
        StsT,
        None,
    );
    let f = Facts {
        message: MessageTls::RequireTls(RequireTlsSource::MailParameter),
        ..f
    };
    check(
        16,
        "R16 requiretls",
        f,
        Expect::Skip(Bounce, "5.7.10"),
        StsT,
        None,
    );
}

#[test]
fn peer_failures_map_to_next_steps() {
    let opp = Facts::default().decide();
    assert_eq!(
        opp.on_peer_failure(PeerFailure::StarttlsNotOffered),
        NextStep::ContinueCleartext
    );
    assert_eq!(
        opp.on_peer_failure(PeerFailure::HandshakeFailed),
        NextStep::RetryCleartext {
            exempt_until: Some(now() + std::time::Duration::from_secs(3600))
        }
    );
    assert_eq!(
        opp.on_peer_failure(PeerFailure::AuthenticationFailed),
        NextStep::ContinueEncrypted
    );

    let req = Facts {
        tls: TlsLevel::Required,
        ..Facts::default()
    }
    .decide();
    let give_up = |s: NextStep| match s {
        NextStep::GiveUp { shortfall, status } => (shortfall, status.to_string()),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        give_up(req.on_peer_failure(PeerFailure::StarttlsNotOffered)).1,
        "4.7.4"
    );
    assert_eq!(
        give_up(req.on_peer_failure(PeerFailure::HandshakeFailed)).1,
        "4.7.5"
    );
    assert_eq!(
        give_up(req.on_peer_failure(PeerFailure::AuthenticationFailed)).0,
        Shortfall::NextHost(Disposition::Defer)
    );

    let rt = Facts {
        message: MessageTls::RequireTls(RequireTlsSource::MailParameter),
        ..Facts::default()
    }
    .decide();
    assert_eq!(
        give_up(rt.on_peer_failure(PeerFailure::RequireTlsNotOffered)).1,
        "5.7.30"
    );
    assert_eq!(
        give_up(rt.on_peer_failure(PeerFailure::HandshakeFailed)).1,
        "5.7.10"
    );
    assert_eq!(
        give_up(rt.on_peer_failure(PeerFailure::StarttlsNotOffered)).0,
        Shortfall::NextHost(Disposition::Bounce)
    );

    assert_eq!(
        TlsRptResult::for_failure(PeerFailure::StarttlsRefused),
        Some(TlsRptResult::StarttlsNotSupported)
    );
    assert_eq!(
        TlsRptResult::for_failure(PeerFailure::RequireTlsNotOffered),
        None
    );
}

#[test]
fn every_row_is_reachable_and_documented() {
    // The rustdoc table lists R1..R16; each must be a real rule.
    let doc_rows: Vec<u8> = (1..=16).collect();
    let rules = [
        Rule::TlsaLookupFailed,
        Rule::DaneMandatoryUnmet,
        Rule::StsMxNotListed,
        Rule::ExcludedButTlsDemanded,
        Rule::RequireTlsToTlsNone,
        Rule::RequireTlsInsecureMx,
        Rule::RequireTls,
        Rule::DaneUsable,
        Rule::DaneAllUnusable,
        Rule::StsEnforce,
        Rule::LocalRequired,
        Rule::Excluded,
        Rule::TlsNone,
        Rule::TemporarilyExempt,
        Rule::Opportunistic,
        Rule::ReferenceNamesConflict,
    ];
    assert_eq!(rules.iter().map(|r| r.row()).collect::<Vec<_>>(), doc_rows);
    for r in rules {
        assert!(!r.to_string().is_empty());
    }
}
