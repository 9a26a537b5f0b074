//! Invariants of `decide` over random facts. "Covers" follows the terms of
//! the decision table: DANE and MTA-STS cover a hop only where they apply
//! (the destination has them on, TLS is not `none`, MTA-STS only for MX
//! hops, and the message did not opt out with `TLS-Required: No`); the
//! operator's `required*` level, the requirement list and REQUIRETLS cover
//! always.

mod common;

use common::*;
use portcullis_policy::mta_sts::{StsFailure, StsMode};
use portcullis_policy::*;
use proptest::prelude::*;

fn tls_level() -> impl Strategy<Value = TlsLevel> {
    prop::sample::select(vec![
        TlsLevel::None,
        TlsLevel::Preferred,
        TlsLevel::Required,
        TlsLevel::PreferredVerify,
        TlsLevel::RequiredVerify,
        TlsLevel::RequiredVerifyHostedDomain,
    ])
}

fn tlsa() -> impl Strategy<Value = TlsaFacts<&'static str>> {
    prop::sample::select(vec![
        TlsaFacts::NotApplicable,
        TlsaFacts::Insecure,
        TlsaFacts::SecureUsable("TLSA-SET"),
        TlsaFacts::SecureAllUnusable,
        TlsaFacts::Bogus,
        TlsaFacts::Failed,
    ])
}

fn sts() -> impl Strategy<Value = Sts> {
    prop::sample::select(vec![
        Sts::None,
        Sts::Policy(StsMode::Enforce, true),
        Sts::Policy(StsMode::Enforce, false),
        Sts::Policy(StsMode::Testing, true),
        Sts::Policy(StsMode::Testing, false),
        Sts::Unavailable(StsFailure::FetchError),
        Sts::Unavailable(StsFailure::PolicyInvalid),
    ])
}

fn message() -> impl Strategy<Value = MessageTls> {
    prop::sample::select(vec![
        MessageTls::Default,
        MessageTls::OptOut,
        MessageTls::RequireTls(RequireTlsSource::MailParameter),
        MessageTls::RequireTls(RequireTlsSource::LocalPartTag),
        MessageTls::RequireTls(RequireTlsSource::Rule),
    ])
}

prop_compose! {
    fn facts()(
        tls in tls_level(),
        dane in prop::sample::select(vec![EffectiveDane::None, EffectiveDane::Opportunistic, EffectiveDane::Mandatory]),
        mta_sts_on in any::<bool>(),
        excluded in any::<bool>(),
        required in any::<bool>(),
        origin in prop::sample::select(vec![MxOrigin::SmtpRoute, MxOrigin::DnssecSecure, MxOrigin::Insecure]),
        mx in prop::sample::select(vec![MX, FOREIGN_MX, DOMAIN]),
        tlsa in tlsa(),
        sts in sts(),
        message in message(),
        exempt in any::<bool>(),
        honour_opt_out in any::<bool>(),
    ) -> Facts {
        Facts { tls, dane, mta_sts_on, excluded, required, origin, mx: mx.to_owned(), tlsa, sts, message, exempt, honour_opt_out }
    }
}

fn is_skip<T>(r: &HopRequirement<T>) -> bool {
    matches!(r.action, HopAction::Skip { .. })
}

/// The action with report-only authentication erased: what blocks or
/// permits delivery.
fn enforcement(r: &HopRequirement<&'static str>) -> HopAction<&'static str> {
    match &r.action {
        HopAction::Opportunistic { exempt_until, .. } => HopAction::Opportunistic {
            report_authentication: Authentication::None,
            exempt_until: *exempt_until,
        },
        other => other.clone(),
    }
}

/// `default` cases unless `PROPTEST_CASES` asks for another number (a long
/// run before a release).
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(4096)))]

    #[test]
    fn tls_demanded_never_cleartext(f in facts()) {
        let covered = f.tls.is_required()
            || f.required
            || f.message.is_require_tls()
            || f.dane_secure_applies()
            || f.sts_applies(StsMode::Enforce);
        let req = f.decide();
        if covered {
            prop_assert!(!req.may_send_cleartext(), "{:?} → {:?}", f, req);
        }
    }

    #[test]
    fn verification_demanded_never_unauthenticated(f in facts()) {
        let usable = matches!(f.tlsa, TlsaFacts::SecureUsable(_)) && f.dane_secure_applies();
        let covered = matches!(f.tls, TlsLevel::RequiredVerify | TlsLevel::RequiredVerifyHostedDomain)
            || f.message.is_require_tls()
            || usable
            || f.sts_applies(StsMode::Enforce);
        let req = f.decide();
        if covered {
            prop_assert!(!req.may_reach_unauthenticated_peer(), "{:?} → {:?}", f, req);
        }
    }

    #[test]
    fn testing_never_blocks(f in facts(), listed in any::<bool>()) {
        let with = Facts { sts: Sts::Policy(StsMode::Testing, listed), ..f.clone() };
        let without = Facts { sts: Sts::None, ..f };
        let (rw, ro) = (with.decide(), without.decide());
        if with.message.is_require_tls() && with.origin == MxOrigin::Insecure {
            // A listed MX satisfies REQUIRETLS's secure-MX demand: testing may
            // unblock here, never block.
            prop_assert!(!is_skip(&rw) || is_skip(&ro), "{:?}: {:?} vs {:?}", with, rw, ro);
        } else {
            prop_assert_eq!(enforcement(&rw), enforcement(&ro), "{:?}", with);
        }
    }

    #[test]
    fn excluded_host_never_gets_starttls(f in facts()) {
        let f = Facts { excluded: true, ..f };
        let req = f.decide();
        prop_assert!(!req.sends_starttls(), "{:?} → {:?}", f, req);
        match &req.action {
            HopAction::Cleartext => {
                // Only when nothing forbids cleartext.
                prop_assert!(!(f.tls.is_required() || f.required || f.message.is_require_tls()
                    || f.dane_secure_applies() || f.sts_applies(StsMode::Enforce)));
            }
            HopAction::Skip { shortfall, status } => {
                prop_assert_eq!(shortfall.disposition(), Disposition::Defer, "{:?}", f);
                prop_assert!(status.is_transient());
            }
            other => prop_assert!(false, "excluded host got {:?}", other),
        }
    }

    #[test]
    fn requiretls_demands_everything(f in facts()) {
        let f = Facts { message: MessageTls::RequireTls(RequireTlsSource::MailParameter), ..f };
        let req = f.decide();
        match &req.action {
            HopAction::Mandatory { authentication, require_requiretls, shortfall } => {
                prop_assert!(*require_requiretls);
                prop_assert!(!authentication.is_none());
                prop_assert_eq!(shortfall.disposition(), Disposition::Bounce);
                prop_assert!(f.origin != MxOrigin::Insecure || matches!(f.sts, Sts::Policy(_, true)), "{:?}", f);
            }
            HopAction::Skip { .. } => {}
            other => prop_assert!(false, "REQUIRETLS got {:?}", other),
        }
    }

    #[test]
    fn failed_tlsa_never_falls_back(f in facts(), bogus in any::<bool>()) {
        let f = Facts { tlsa: if bogus { TlsaFacts::Bogus } else { TlsaFacts::Failed }, ..f };
        let applies = f.destination().dane != EffectiveDane::None
            && (f.destination().dane == EffectiveDane::Mandatory
                || !(f.message == MessageTls::OptOut && f.honour_opt_out));
        let req = f.decide();
        if applies {
            prop_assert_eq!(req.rule, Rule::TlsaLookupFailed);
            let deferred = matches!(req.action, HopAction::Skip { shortfall: Shortfall::NextHost(Disposition::Defer), .. });
            prop_assert!(deferred, "{:?}", req);
            prop_assert_eq!(req.tls_rpt.policy_type, TlsRptPolicyType::Tlsa);
        }
    }

    #[test]
    fn dane_governs_tlsrpt_and_beats_sts(f in facts()) {
        let req = f.decide();
        if f.dane_secure_applies() {
            prop_assert_eq!(req.tls_rpt.policy_type, TlsRptPolicyType::Tlsa);
            prop_assert!(req.rule != Rule::StsEnforce && req.rule != Rule::StsMxNotListed);
        }
        if let HopAction::Opportunistic { exempt_until, .. } = req.action {
            prop_assert_eq!(exempt_until, Some(now() + std::time::Duration::from_secs(3600)));
        }
    }

    #[test]
    fn failures_are_temporary_unless_requiretls(f in facts()) {
        let req = f.decide();
        let bounce = match &req.action {
            HopAction::Skip { shortfall, .. } | HopAction::Mandatory { shortfall, .. } => shortfall.disposition() == Disposition::Bounce,
            _ => false,
        };
        if bounce {
            prop_assert!(f.message.is_require_tls(), "{:?} → {:?}", f, req);
        }
        if let HopAction::Skip { shortfall, status } = &req.action {
            prop_assert_eq!(status.is_transient(), shortfall.disposition() == Disposition::Defer);
        }
    }
}
