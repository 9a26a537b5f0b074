//! Portcullis policy: every security decision an SMTP gateway takes, and
//! none of the I/O.
//!
//! This crate does no network I/O, reads no clock and starts no runtime. It
//! takes facts (a client address, a recipient domain, a TLSA lookup result,
//! an MTA-STS policy, the time) and returns typed decisions that the
//! transport executes without re-deciding:
//!
//! ```text
//! inbound   TCP accept ─► Hat::evaluate ─► MailFlowPolicy (action, TLS, limits)
//!           RCPT TO    ─► Rat::check    ─► Accept | Relay | Refuse(5.7.1)
//! outbound  destination table + STARTTLS lists + TLSA facts + MTA-STS facts
//!           + REQUIRETLS flag + exemptions + now ─► decide ─► HopRequirement
//!                 (STARTTLS or not, authentication, shortfall, TLS-RPT)
//! ```
//!
//! * Inbound: [`Hat`] (ordered sender groups → [`MailFlowPolicy`]), [`Rat`],
//!   and [`ListenerAccess`], which refuses an open relay on a public listener.
//! * Outbound: [`DestinationTable`] (`example.com`, `.example.com`,
//!   `default`), [`StarttlsLists`], [`TlsExemptions`], [`mta_sts`] parsing and
//!   cache semantics, [`requiretls`] classification, and [`decide`] — the one
//!   pure function whose rustdoc carries the decision table.
//! * Config types are serde structs in kebab-case TOML; validation reports
//!   every error with the entry and field at fault ([`ConfigErrors`]).
//! * The decision is generic over the TLSA-set type, so the `dane` crate's
//!   verified set plugs in without a dependency between the crates.
//!
//! Non-features: no DNS lookups, no HTTPS fetch of MTA-STS policies, no
//! certificate verification (the transport and the `dane`/`certstore`
//! crates do those), and no silent fallback to cleartext: cleartext is only
//! ever an explicit [`HopAction`].
//!
//! ```
//! use std::time::SystemTime;
//! use portcullis_policy::*;
//! use portcullis_policy::mta_sts::{MtaStsFacts, StsPolicy};
//!
//! let config: OutboundConfig = toml::from_str(r#"
//!     [[destination]]
//!     domain = "default"
//!     tls = "preferred"
//! "#).unwrap();
//! let policy = OutboundPolicy::from_config(&config).unwrap();
//!
//! // example.com publishes an MTA-STS policy in enforce mode.
//! let sts = StsPolicy::parse(b"version: STSv1\nmode: enforce\nmx: *.example.com\nmax_age: 86400\n").unwrap();
//! let domain = DomainName::parse("example.com").unwrap();
//! let hop = NextHop::mx(DomainName::parse("mx1.example.com").unwrap(), MxOrigin::Insecure);
//! let req = policy.decide::<()>(&TlsExemptions::new(), &HopFacts {
//!     domain: &domain,
//!     hop: &hop,
//!     tlsa: &TlsaFacts::NotApplicable,
//!     mta_sts: &MtaStsFacts::Policy(sts),
//!     message: MessageTls::Default,
//!     now: SystemTime::now(),
//! });
//! assert_eq!(req.rule, Rule::StsEnforce);
//! assert!(!req.may_reach_unauthenticated_peer());
//! assert_eq!(req.tls_rpt.policy_type, TlsRptPolicyType::Sts);
//! // The deciding rule, for the mail log: "R10 MTA-STS policy (enforce): …".
//! println!("R{} {}", req.rule.row(), req.rule);
//! ```
//!
//! `examples/policy-decide.rs` in the repository decides a handful of hops
//! this way and prints each rule. The decision types ([`HopAction`],
//! [`NextStep`], [`Authentication`], [`Rule`], …) and the error types are
//! `#[non_exhaustive]`: a transport matches them with a wildcard arm that
//! does not send (defer), so a rule added later can never open a path to
//! cleartext by accident.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

/// The README's examples, compiled and run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
#[derive(Debug)]
pub struct ReadmeDoctests;

mod decision;
mod destination;
mod error;
mod exemptions;
mod hat;
mod hop;
mod listener;
pub mod mta_sts;
mod name;
mod outbound;
mod rat;
pub mod requiretls;
mod sender_pattern;
mod starttls_lists;
mod status;
mod tlsrpt;
pub mod tlsrpt_report;
mod tlsrpt_txt;

pub use decision::{
    Authentication, DecisionInput, DecisionSettings, Disposition, HopAction, HopRequirement,
    NextStep, PeerFailure, Rule, Shortfall, TlsaFacts, decide,
};
pub use destination::{
    DaneMode, DestinationConfig, DestinationKey, DestinationLimits, DestinationTable,
    EffectiveDane, ResolvedDestination, TlsLevel,
};
pub use error::{
    ConfigError, ConfigErrors, MtaStsPolicyError, MtaStsTxtError, NameError, PatternError,
};
pub use exemptions::TlsExemptions;
pub use hat::{
    ConnectionAction, Hat, HatConfig, HatMatch, InboundLimits, InboundTls, MailFlowPolicy,
    MailFlowPolicyConfig, SenderGroup, SenderGroupConfig,
};
pub use hop::{HopHost, MxOrigin, NextHop};
pub use listener::{ListenerAccess, ListenerAccessConfig, ListenerKind, RatConfig};
pub use name::{DomainName, DomainPattern};
pub use outbound::{HopFacts, OutboundConfig, OutboundPolicy, StarttlsListsConfig};
pub use rat::{Rat, RcptVerdict, RecipientPattern};
pub use requiretls::{MessageTls, RequireTlsSource};
pub use sender_pattern::{ClientFacts, SenderPattern, canonical_ip};
pub use starttls_lists::{HostPattern, ListMatch, StarttlsLists};
pub use status::{EnhancedStatus, StatusClass};
pub use tlsrpt::{TlsRptPolicyType, TlsRptRecord, TlsRptResult};
pub use tlsrpt_report::{ReportError, ReportLimits, TlsReport, parse_report};
pub use tlsrpt_txt::{TlsRptTxtError, TlsRptTxtRecord};
