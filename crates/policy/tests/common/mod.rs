//! Builders shared by the decision tests: a compact way to state the facts
//! of one delivery attempt and run [`decide`] on them.

#![allow(dead_code)]

use std::time::{Duration, SystemTime};

use portcullis_policy::mta_sts::{MtaStsFacts, MxPattern, StsFailure, StsMode, StsPolicy};
use portcullis_policy::*;

pub const DOMAIN: &str = "example.com";
pub const MX: &str = "mx1.example.com";
pub const FOREIGN_MX: &str = "mx.provider.net";

pub fn name(s: &str) -> DomainName {
    DomainName::parse(s).unwrap()
}

pub fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000)
}

/// MTA-STS state in a test case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sts {
    None,
    /// Policy in this mode; `listed` says whether it lists the hop's MX.
    Policy(StsMode, bool),
    Unavailable(StsFailure),
}

impl Sts {
    pub fn facts(self, mx: &str) -> MtaStsFacts {
        match self {
            Sts::None => MtaStsFacts::None,
            Sts::Policy(mode, listed) => {
                let pattern = if listed {
                    mx.to_owned()
                } else {
                    "other-mx.invalid.example".to_owned()
                };
                MtaStsFacts::Policy(
                    StsPolicy::new(mode, 86400, vec![MxPattern::parse(&pattern).unwrap()]).unwrap(),
                )
            }
            Sts::Unavailable(f) => MtaStsFacts::Unavailable(f),
        }
    }
}

/// All the facts of one attempt, owned.
#[derive(Clone, Debug)]
pub struct Facts {
    pub tls: TlsLevel,
    pub dane: EffectiveDane,
    pub mta_sts_on: bool,
    pub excluded: bool,
    pub required: bool,
    pub origin: MxOrigin,
    pub mx: String,
    pub tlsa: TlsaFacts<&'static str>,
    pub sts: Sts,
    pub message: MessageTls,
    pub exempt: bool,
    pub honour_opt_out: bool,
}

impl Default for Facts {
    fn default() -> Self {
        Facts {
            tls: TlsLevel::Preferred,
            dane: EffectiveDane::Opportunistic,
            mta_sts_on: true,
            excluded: false,
            required: false,
            origin: MxOrigin::DnssecSecure,
            mx: MX.to_owned(),
            tlsa: TlsaFacts::Insecure,
            sts: Sts::None,
            message: MessageTls::Default,
            exempt: false,
            honour_opt_out: true,
        }
    }
}

impl Facts {
    pub fn destination(&self) -> ResolvedDestination {
        let mut d = ResolvedDestination::builtin_default();
        d.tls = self.tls;
        // The table never produces DANE or MTA-STS with tls = none.
        d.dane = if self.tls == TlsLevel::None {
            EffectiveDane::None
        } else {
            self.dane
        };
        d.mta_sts = self.mta_sts_on && self.tls != TlsLevel::None;
        d
    }

    pub fn decide(&self) -> HopRequirement<&'static str> {
        let domain = name(DOMAIN);
        let destination = self.destination();
        let hop = NextHop::mx(name(&self.mx), self.origin);
        let mta_sts = self.sts.facts(&self.mx);
        let settings = DecisionSettings {
            exemption: Some(Duration::from_secs(3600)),
            honour_tls_required_no: self.honour_opt_out,
        };
        decide(&DecisionInput {
            domain: &domain,
            destination: &destination,
            lists: ListMatch {
                excluded: self.excluded,
                required: self.required,
            },
            hop: &hop,
            tlsa: &self.tlsa,
            mta_sts: &mta_sts,
            message: self.message,
            temporarily_exempt: self.exempt,
            settings: &settings,
            now: now(),
        })
    }

    /// DANE applies with secure records (the table's terms).
    pub fn dane_secure_applies(&self) -> bool {
        let d = self.destination();
        let opted_out = self.message == MessageTls::OptOut && self.honour_opt_out;
        let applies = match d.dane {
            EffectiveDane::None => false,
            EffectiveDane::Opportunistic => !opted_out,
            EffectiveDane::Mandatory => true,
        };
        applies
            && matches!(
                self.tlsa,
                TlsaFacts::SecureUsable(_) | TlsaFacts::SecureAllUnusable
            )
    }

    /// MTA-STS applies with a policy in `mode`.
    pub fn sts_applies(&self, mode: StsMode) -> bool {
        let d = self.destination();
        let opted_out = self.message == MessageTls::OptOut && self.honour_opt_out;
        d.mta_sts
            && self.origin != MxOrigin::SmtpRoute
            && !opted_out
            && !self.dane_secure_applies()
            && matches!(self.sts, Sts::Policy(m, _) if m == mode)
    }
}
