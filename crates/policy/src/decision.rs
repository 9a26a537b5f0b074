//! The one decision every outbound connection is made under: given the facts
//! about one delivery attempt to one next hop, what security to demand and
//! what to do when the peer falls short. Pure: no I/O, no clock (`now` is an
//! input), generic over the TLSA-set type so the `dane` crate's verified set
//! plugs in without this crate depending on it. The transport executes the
//! [`HopRequirement`]; it does not re-decide. The decision table lives on
//! [`decide`].

use std::fmt;
use std::time::{Duration, SystemTime};

use crate::destination::{EffectiveDane, ResolvedDestination, TlsLevel};
use crate::hop::{HopHost, MxOrigin, NextHop};
use crate::mta_sts::{MtaStsFacts, StsMode, StsPolicy};
use crate::name::{DomainName, DomainPattern};
use crate::requiretls::MessageTls;
use crate::starttls_lists::ListMatch;
use crate::status::{EnhancedStatus, StatusClass};
use crate::tlsrpt::{TlsRptPolicyType, TlsRptRecord, TlsRptResult};

/// Outcome of the DNSSEC-validated TLSA lookup at `_25._tcp.<host>`
/// (RFC 7672 §2.2). `T` is the caller's set of usable records (the `dane`
/// crate's type in the gateway). The gateway looks TLSA records up only
/// where RFC 7672 says to (a secure MX or address answer); whatever it
/// passes here is taken at face value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TlsaFacts<T> {
    /// No lookup was made for this hop (an SMTP route, an insecure MX or
    /// address answer).
    NotApplicable,
    /// No DNSSEC-secure TLSA records: the zone is unsigned, or the records
    /// are proven not to exist. DANE does not apply.
    Insecure,
    /// A secure RRset with at least one usable record.
    SecureUsable(T),
    /// A secure RRset in which no record is usable (RFC 7672 §2.1.1: TLS is
    /// still mandatory, without authentication).
    SecureAllUnusable,
    /// DNSSEC validation failed.
    Bogus,
    /// The lookup failed (SERVFAIL, timeout, indeterminate).
    Failed,
}

impl<T> TlsaFacts<T> {
    fn is_secure(&self) -> bool {
        matches!(
            self,
            TlsaFacts::SecureUsable(_) | TlsaFacts::SecureAllUnusable
        )
    }
}

/// What authentication to demand of (or, when opportunistic, to attempt
/// and report on) the peer's certificate.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Authentication<T> {
    /// Any certificate.
    None,
    /// A chain to a trusted CA and a name matching at least one of these
    /// (`Exact` = that DNS-ID; `Subdomains` = any name below it).
    Pkix {
        /// Accepted reference identities.
        reference_names: Vec<DomainPattern>,
    },
    /// RFC 7672 DANE with this TLSA set; `reference_names` serve DANE-TA
    /// name checks (DANE-EE ignores names).
    Dane {
        /// The secure usable TLSA records.
        tlsa: T,
        /// MX host name first, then the destination domain.
        reference_names: Vec<DomainName>,
    },
}

impl<T> Authentication<T> {
    /// True for [`Authentication::None`].
    pub fn is_none(&self) -> bool {
        matches!(self, Authentication::None)
    }
}

/// What finally happens to the message when the hosts run out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Disposition {
    /// Keep it queued and retry later (4.x.x).
    Defer,
    /// Return it to the sender (5.x.x).
    Bounce,
}

/// What to do when this hop cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Shortfall {
    /// Try the next host (MX or route host); when none is left, apply the
    /// disposition.
    NextHost(Disposition),
}

impl Shortfall {
    /// The disposition once no host is left.
    pub fn disposition(self) -> Disposition {
        match self {
            Shortfall::NextHost(d) => d,
        }
    }
}

/// What the transport observed going wrong with the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PeerFailure {
    /// STARTTLS not in the EHLO response (or no ESMTP at all).
    StarttlsNotOffered,
    /// STARTTLS answered with an error.
    StarttlsRefused,
    /// The TLS handshake failed after `220`.
    HandshakeFailed,
    /// TLS is up but the certificate failed the demanded authentication.
    AuthenticationFailed,
    /// TLS is up but the post-TLS EHLO does not offer REQUIRETLS.
    RequireTlsNotOffered,
}

/// The transport's next step after a [`PeerFailure`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NextStep {
    /// Carry on in cleartext on this connection.
    ContinueCleartext,
    /// Close, reconnect and deliver in cleartext; record the host in the
    /// temporary exemption list until `exempt_until` (when set).
    RetryCleartext {
        /// Exemption expiry to record.
        exempt_until: Option<SystemTime>,
    },
    /// Carry on over the encrypted connection (the failure is only reported).
    ContinueEncrypted,
    /// Do not send the message over this connection (QUIT).
    GiveUp {
        /// Next host, then defer or bounce.
        shortfall: Shortfall,
        /// Status for the log, the queue and a DSN.
        status: EnhancedStatus,
    },
}

/// What to do on this hop.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HopAction<T> {
    /// Do not connect to this host.
    Skip {
        /// Next host, then defer or bounce.
        shortfall: Shortfall,
        /// Status for the log, the queue and a DSN.
        status: EnhancedStatus,
    },
    /// Connect and never send STARTTLS.
    Cleartext,
    /// Send STARTTLS if offered; continue in cleartext if it is not offered
    /// or refused; after a failed handshake, retry in cleartext and exempt
    /// the host until `exempt_until`; authentication failures are reported,
    /// not fatal.
    Opportunistic {
        /// Authentication to attempt and report on.
        report_authentication: Authentication<T>,
        /// Exemption to record after a handshake failure.
        exempt_until: Option<SystemTime>,
    },
    /// STARTTLS must succeed and `authentication` must pass; otherwise QUIT
    /// and apply `shortfall`.
    Mandatory {
        /// Authentication the peer must pass.
        authentication: Authentication<T>,
        /// The post-TLS EHLO must offer REQUIRETLS (and the message is
        /// sent with `MAIL FROM:<…> REQUIRETLS`).
        require_requiretls: bool,
        /// Next host, then defer or bounce.
        shortfall: Shortfall,
    },
}

/// Which row of the decision table decided (stable numbers, used in logs
/// and by the table-driven test).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Rule {
    /// R1: DANE applies and the TLSA lookup is bogus or failed.
    TlsaLookupFailed = 1,
    /// R2: DANE mandatory and no secure usable TLSA records.
    DaneMandatoryUnmet = 2,
    /// R3: MTA-STS enforce applies and the MX is not in the policy.
    StsMxNotListed = 3,
    /// R4: STARTTLS-excluded host, but a stronger rule demands TLS.
    ExcludedButTlsDemanded = 4,
    /// R5: REQUIRETLS to a destination with `tls = none`.
    RequireTlsToTlsNone = 5,
    /// R6: REQUIRETLS and the MX was not obtained securely.
    RequireTlsInsecureMx = 6,
    /// R7: REQUIRETLS.
    RequireTls = 7,
    /// R8: secure usable TLSA records.
    DaneUsable = 8,
    /// R9: secure TLSA records, none usable.
    DaneAllUnusable = 9,
    /// R10: MTA-STS enforce, MX listed.
    StsEnforce = 10,
    /// R11: `required*` level or STARTTLS requirement list.
    LocalRequired = 11,
    /// R12: STARTTLS exclusion list.
    Excluded = 12,
    /// R13: `tls = none`.
    TlsNone = 13,
    /// R14: temporarily exempt after a handshake failure.
    TemporarilyExempt = 14,
    /// R15: opportunistic TLS.
    Opportunistic = 15,
    /// R16: the certificate-name demands of two rules cannot both be met.
    ReferenceNamesConflict = 16,
}

impl Rule {
    /// The row number.
    pub fn row(self) -> u8 {
        self as u8
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Rule::TlsaLookupFailed => "TLSA lookup was bogus or failed; DANE forbids any fallback",
            Rule::DaneMandatoryUnmet => {
                "DANE is mandatory for this destination but the host has no secure usable TLSA records"
            }
            Rule::StsMxNotListed => "MTA-STS policy (enforce) does not list this MX host",
            Rule::ExcludedButTlsDemanded => {
                "host is on the STARTTLS exclusion list but TLS is demanded for this delivery"
            }
            Rule::RequireTlsToTlsNone => {
                "message requires TLS (REQUIRETLS) but the destination is configured with tls = none"
            }
            Rule::RequireTlsInsecureMx => {
                "message requires TLS (REQUIRETLS) but the MX host was neither DNSSEC-validated nor listed in an MTA-STS policy"
            }
            Rule::RequireTls => "message requires TLS (REQUIRETLS)",
            Rule::DaneUsable => "secure usable TLSA records: DANE authentication",
            Rule::DaneAllUnusable => {
                "secure TLSA records, none usable: TLS mandatory without DANE authentication"
            }
            Rule::StsEnforce => {
                "MTA-STS policy (enforce): TLS with a certificate valid for the MX host"
            }
            Rule::LocalRequired => "destination TLS level or STARTTLS requirement list demands TLS",
            Rule::Excluded => "host is on the STARTTLS exclusion list",
            Rule::TlsNone => "destination is configured with tls = none",
            Rule::TemporarilyExempt => {
                "host is temporarily exempt from STARTTLS after a failed handshake"
            }
            Rule::Opportunistic => "opportunistic TLS",
            Rule::ReferenceNamesConflict => {
                "the certificate names demanded by the destination (hosted domain) and by MTA-STS or REQUIRETLS exclude each other for this MX host"
            }
        };
        f.write_str(s)
    }
}

/// The decision for one hop.
#[must_use]
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HopRequirement<T> {
    /// What to do.
    pub action: HopAction<T>,
    /// Why (the deciding table row).
    pub rule: Rule,
    /// What to record for TLS-RPT.
    pub tls_rpt: TlsRptRecord,
}

impl<T> HopRequirement<T> {
    /// Whether the transport sends STARTTLS (when offered, or insisting).
    pub fn sends_starttls(&self) -> bool {
        matches!(
            self.action,
            HopAction::Opportunistic { .. } | HopAction::Mandatory { .. }
        )
    }

    /// Whether the message can end up sent in cleartext on this hop.
    pub fn may_send_cleartext(&self) -> bool {
        matches!(
            self.action,
            HopAction::Cleartext | HopAction::Opportunistic { .. }
        )
    }

    /// Whether the message can end up sent to a peer that did not pass
    /// authentication (cleartext counts as unauthenticated).
    pub fn may_reach_unauthenticated_peer(&self) -> bool {
        match &self.action {
            HopAction::Skip { .. } => false,
            HopAction::Cleartext | HopAction::Opportunistic { .. } => true,
            HopAction::Mandatory { authentication, .. } => authentication.is_none(),
        }
    }

    /// What the transport does after `failure`.
    pub fn on_peer_failure(&self, failure: PeerFailure) -> NextStep {
        match &self.action {
            HopAction::Skip { shortfall, status } => NextStep::GiveUp {
                shortfall: *shortfall,
                status: *status,
            },
            HopAction::Cleartext => NextStep::ContinueCleartext,
            HopAction::Opportunistic { exempt_until, .. } => match failure {
                PeerFailure::StarttlsNotOffered | PeerFailure::StarttlsRefused => {
                    NextStep::ContinueCleartext
                }
                PeerFailure::HandshakeFailed => NextStep::RetryCleartext {
                    exempt_until: *exempt_until,
                },
                PeerFailure::AuthenticationFailed | PeerFailure::RequireTlsNotOffered => {
                    NextStep::ContinueEncrypted
                }
            },
            HopAction::Mandatory {
                require_requiretls,
                shortfall,
                ..
            } => {
                let status = if *require_requiretls {
                    match failure {
                        PeerFailure::RequireTlsNotOffered => EnhancedStatus::REQUIRETLS_NEEDED,
                        _ => EnhancedStatus::ENCRYPTION_NEEDED,
                    }
                } else {
                    match failure {
                        PeerFailure::StarttlsNotOffered | PeerFailure::StarttlsRefused => {
                            EnhancedStatus::TLS_NOT_OFFERED
                        }
                        PeerFailure::HandshakeFailed | PeerFailure::AuthenticationFailed => {
                            EnhancedStatus::CRYPTO_FAILURE
                        }
                        PeerFailure::RequireTlsNotOffered => return NextStep::ContinueEncrypted,
                    }
                };
                let class = match shortfall.disposition() {
                    Disposition::Defer => StatusClass::Transient,
                    Disposition::Bounce => StatusClass::Permanent,
                };
                NextStep::GiveUp {
                    shortfall: *shortfall,
                    status: status.with_class(class),
                }
            }
        }
    }
}

/// Settings of the decision that come from global config.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DecisionSettings {
    /// How long a host stays exempt from STARTTLS after a failed handshake
    /// at an opportunistic level; `None` disables the exemption.
    pub exemption: Option<Duration>,
    /// Honour `TLS-Required: No` (RFC 8689 §4.3) by ignoring DANE
    /// (unless mandatory) and MTA-STS for such messages.
    pub honour_tls_required_no: bool,
}

impl Default for DecisionSettings {
    /// One hour; honour the header.
    fn default() -> Self {
        DecisionSettings {
            exemption: Some(Duration::from_secs(3600)),
            honour_tls_required_no: true,
        }
    }
}

/// Every fact about one delivery attempt to one next hop.
#[derive(Clone, Copy, Debug)]
pub struct DecisionInput<'a, T> {
    /// Destination (recipient) domain.
    pub domain: &'a DomainName,
    /// Its destination-table settings.
    pub destination: &'a ResolvedDestination,
    /// Which STARTTLS lists cover this hop.
    pub lists: ListMatch,
    /// The next hop and how it was learned.
    pub hop: &'a NextHop,
    /// The TLSA lookup result for the hop.
    pub tlsa: &'a TlsaFacts<T>,
    /// The destination's MTA-STS state.
    pub mta_sts: &'a MtaStsFacts,
    /// The message's REQUIRETLS flag or opt-out.
    pub message: MessageTls,
    /// Whether the hop is in the temporary exemption record at `now`.
    pub temporarily_exempt: bool,
    /// Global settings.
    pub settings: &'a DecisionSettings,
    /// The current time.
    pub now: SystemTime,
}

/// Decides what security one hop needs and what happens if the peer falls
/// short. The first row whose condition holds decides.
///
/// Terms: *DANE applies* = the destination's DANE mode is not `none` (it
/// is always `none` with `tls = none`) and the message did not opt out with
/// `TLS-Required: No` (an opt-out does not lift DANE `mandatory`). *MTA-STS
/// applies* = the destination has MTA-STS on, the hop is an MX (not an SMTP
/// route), the message did not opt out, and DANE does not apply with secure
/// TLSA records. *Local names* = reference names of the destination's TLS
/// level: `*-verify` → domain, MX host; `required-verify-hosted-domain` →
/// domain, `.domain`, and the MX host only if it was not learned from
/// insecure DNS. A requirement for the MX host name combined with local
/// names keeps only the names the local names also accept; if none is left
/// the row becomes R16.
///
/// | Row | Condition | Action | Authentication | Shortfall | TLS-RPT |
/// |---|---|---|---|---|---|
/// | R1 | DANE applies, TLSA bogus or failed | skip host | – | next host, then defer 4.7.5 | tlsa, dnssec-invalid |
/// | R2 | DANE `mandatory`, TLSA not secure-usable | skip host | – | next host, then defer 4.7.5 | tlsa, dane-required |
/// | R3 | MTA-STS applies, `enforce`, MX not listed | skip host | – | next host, then defer 4.7.5 | sts, validation-failure |
/// | R4 | exclusion list, and TLS demanded (REQUIRETLS, DANE secure, MTA-STS enforce, `required*`, requirement list) | skip host | – | next host, then defer 4.7.4 | as governed |
/// | R5 | REQUIRETLS, `tls = none`, not on requirement list | skip host | – | next host, then bounce 5.7.10 | as governed |
/// | R6 | REQUIRETLS, MX from insecure DNS and not listed in an MTA-STS policy | skip host | – | next host, then bounce 5.7.10 (defer 4.7.10 while the domain's MTA-STS policy cannot be fetched) | as governed |
/// | R7 | REQUIRETLS | STARTTLS mandatory, REQUIRETLS must be offered | DANE (TLSA set) if secure usable, else PKIX: MX host ∩ local names | next host, then bounce 5.7.10 / 5.7.30 | as governed |
/// | R8 | DANE applies, TLSA secure usable | STARTTLS mandatory | DANE (TLSA set) | next host, then defer 4.7.4 / 4.7.5 | tlsa |
/// | R9 | DANE applies, TLSA secure all-unusable | STARTTLS mandatory | PKIX local names if `required-verify*`, else none | next host, then defer | tlsa |
/// | R10 | MTA-STS applies, `enforce`, MX listed | STARTTLS mandatory | PKIX: MX host ∩ local names | next host, then defer | sts |
/// | R11 | `required*` level or requirement list | STARTTLS mandatory | PKIX local names if `required-verify*`, else none | next host, then defer 4.7.4 / 4.7.5 | as governed |
/// | R12 | exclusion list | cleartext | – | – | as governed |
/// | R13 | `tls = none` (DANE and MTA-STS are off with it) | cleartext | – | – | no-policy-found |
/// | R14 | host temporarily exempt | cleartext | – | – | as governed |
/// | R15 | otherwise (`preferred`, `preferred-verify`) | STARTTLS if offered | attempted, report only: MTA-STS testing → MX host; `preferred-verify` → local names; else none | not offered: continue cleartext; handshake failed: retry cleartext + exempt host | as governed |
/// | R16 | (R7/R10 with no name left) | skip host | – | next host, then bounce 5.7.10 (R7) / defer 4.7.5 (R10) | as governed |
///
/// "As governed" = `tlsa` when DANE applies with secure TLSA records, `sts`
/// when MTA-STS applies with a policy (or a failed fetch, reported with its
/// `sts-*` result type), else `no-policy-found`. MTA-STS `testing` never
/// changes the action: it only adds report-only authentication and
/// TLS-RPT results.
///
/// ```
/// use std::time::SystemTime;
/// use portcullis_policy::*;
/// use portcullis_policy::mta_sts::MtaStsFacts;
///
/// let domain = DomainName::parse("example.com").unwrap();
/// let hop = NextHop::mx(DomainName::parse("mx.example.com").unwrap(), MxOrigin::DnssecSecure);
/// let destination = ResolvedDestination::builtin_default();
/// let tlsa: TlsaFacts<&str> = TlsaFacts::SecureUsable("3 1 1 abcd…");
/// let req = decide(&DecisionInput {
///     domain: &domain,
///     destination: &destination,
///     lists: ListMatch::default(),
///     hop: &hop,
///     tlsa: &tlsa,
///     mta_sts: &MtaStsFacts::None,
///     message: MessageTls::Default,
///     temporarily_exempt: false,
///     settings: &DecisionSettings::default(),
///     now: SystemTime::UNIX_EPOCH,
/// });
/// assert_eq!(req.rule, Rule::DaneUsable);
/// assert!(matches!(req.action, HopAction::Mandatory { authentication: Authentication::Dane { .. }, .. }));
/// assert!(!req.may_send_cleartext());
/// ```
pub fn decide<T: Clone>(input: &DecisionInput<'_, T>) -> HopRequirement<T> {
    let d = input.destination;
    let requiretls = input.message.is_require_tls();
    let opted_out =
        !requiretls && input.message == MessageTls::OptOut && input.settings.honour_tls_required_no;
    let dane_applies = match d.dane {
        EffectiveDane::None => false,
        EffectiveDane::Opportunistic => !opted_out,
        EffectiveDane::Mandatory => true,
    };
    let dane_secure = dane_applies && input.tlsa.is_secure();
    let mx_name = input.hop.host.name();
    let sts_policy: Option<&StsPolicy> = match input.mta_sts {
        MtaStsFacts::Policy(p) if d.mta_sts && p.mode() != StsMode::None => Some(p),
        _ => None,
    };
    let sts_applies =
        d.mta_sts && input.hop.origin != MxOrigin::SmtpRoute && !opted_out && !dane_secure;
    let sts_lists_mx = |p: &StsPolicy| mx_name.is_some_and(|m| p.allows_mx(m));
    let sts_enforce = sts_policy.filter(|p| sts_applies && p.mode() == StsMode::Enforce);
    let sts_testing = sts_policy.filter(|p| sts_applies && p.mode() == StsMode::Testing);

    // TLS-RPT policy type, and a failure known before connecting.
    let (policy_type, mut known_failure) = if dane_secure {
        (TlsRptPolicyType::Tlsa, None)
    } else if sts_applies && sts_policy.is_some() {
        (TlsRptPolicyType::Sts, None)
    } else if let (true, MtaStsFacts::Unavailable(f)) = (sts_applies, input.mta_sts) {
        (TlsRptPolicyType::Sts, Some(f.tlsrpt()))
    } else {
        (TlsRptPolicyType::NoPolicyFound, None)
    };
    let mut policy_type = policy_type;
    if sts_testing.is_some_and(|p| !sts_lists_mx(p)) {
        known_failure = Some(TlsRptResult::ValidationFailure);
    }
    let out = |action, rule, policy_type, known_failure| HopRequirement {
        action,
        rule,
        tls_rpt: TlsRptRecord {
            policy_domain: input.domain.clone(),
            policy_type,
            known_failure,
        },
    };
    let skip = |disposition, status| HopAction::Skip {
        shortfall: Shortfall::NextHost(disposition),
        status,
    };

    // R1, R2: DANE lookups that failed, or DANE demanded and absent.
    if dane_applies && matches!(input.tlsa, TlsaFacts::Bogus | TlsaFacts::Failed) {
        return out(
            skip(Disposition::Defer, EnhancedStatus::CRYPTO_FAILURE),
            Rule::TlsaLookupFailed,
            TlsRptPolicyType::Tlsa,
            Some(TlsRptResult::DnssecInvalid),
        );
    }
    if d.dane == EffectiveDane::Mandatory && !matches!(input.tlsa, TlsaFacts::SecureUsable(_)) {
        return out(
            skip(Disposition::Defer, EnhancedStatus::CRYPTO_FAILURE),
            Rule::DaneMandatoryUnmet,
            TlsRptPolicyType::Tlsa,
            Some(TlsRptResult::DaneRequired),
        );
    }
    // R3: MTA-STS enforce and the MX is not one of the policy's.
    if sts_enforce.is_some_and(|p| !sts_lists_mx(p)) {
        return out(
            skip(Disposition::Defer, EnhancedStatus::CRYPTO_FAILURE),
            Rule::StsMxNotListed,
            TlsRptPolicyType::Sts,
            Some(TlsRptResult::ValidationFailure),
        );
    }
    // R4: excluded, but something stronger forbids cleartext.
    let tls_demanded = requiretls
        || dane_secure
        || sts_enforce.is_some()
        || d.tls.is_required()
        || input.lists.required;
    if input.lists.excluded && tls_demanded {
        return out(
            skip(Disposition::Defer, EnhancedStatus::TLS_NOT_OFFERED),
            Rule::ExcludedButTlsDemanded,
            policy_type,
            known_failure,
        );
    }

    let local_names = local_reference_names(d.tls, input.domain, input.hop);
    let local_enforced = if d.tls.is_required() {
        local_names.clone()
    } else {
        None
    };

    // R5-R7: REQUIRETLS.
    if requiretls {
        if d.tls == TlsLevel::None && !input.lists.required {
            return out(
                skip(Disposition::Bounce, EnhancedStatus::ENCRYPTION_NEEDED),
                Rule::RequireTlsToTlsNone,
                policy_type,
                known_failure,
            );
        }
        let mx_secure = match input.hop.origin {
            MxOrigin::SmtpRoute | MxOrigin::DnssecSecure => true,
            MxOrigin::Insecure => sts_policy.is_some_and(sts_lists_mx),
        };
        if !mx_secure {
            // A policy that could not be fetched may be fetchable later: a
            // transient failure must not become a permanent bounce.
            let (disposition, status) = match input.mta_sts {
                MtaStsFacts::Unavailable(_) => (
                    Disposition::Defer,
                    EnhancedStatus::ENCRYPTION_NEEDED.with_class(StatusClass::Transient),
                ),
                _ => (Disposition::Bounce, EnhancedStatus::ENCRYPTION_NEEDED),
            };
            return out(
                skip(disposition, status),
                Rule::RequireTlsInsecureMx,
                policy_type,
                known_failure,
            );
        }
        let authentication = match input.tlsa {
            TlsaFacts::SecureUsable(set) if d.dane != EffectiveDane::None => {
                policy_type = TlsRptPolicyType::Tlsa;
                Authentication::Dane {
                    tlsa: set.clone(),
                    reference_names: dane_names(input.domain, input.hop),
                }
            }
            _ => {
                let wanted = vec![DomainPattern::Exact(
                    mx_name.cloned().unwrap_or_else(|| input.domain.clone()),
                )];
                let names = restrict(wanted, local_enforced.as_deref());
                if names.is_empty() {
                    return out(
                        skip(Disposition::Bounce, EnhancedStatus::ENCRYPTION_NEEDED),
                        Rule::ReferenceNamesConflict,
                        policy_type,
                        known_failure,
                    );
                }
                Authentication::Pkix {
                    reference_names: names,
                }
            }
        };
        return out(
            HopAction::Mandatory {
                authentication,
                require_requiretls: true,
                shortfall: Shortfall::NextHost(Disposition::Bounce),
            },
            Rule::RequireTls,
            policy_type,
            known_failure,
        );
    }

    let mandatory = |authentication| HopAction::Mandatory {
        authentication,
        require_requiretls: false,
        shortfall: Shortfall::NextHost(Disposition::Defer),
    };
    let local_auth = || match &local_enforced {
        Some(names) => Authentication::Pkix {
            reference_names: names.clone(),
        },
        None => Authentication::None,
    };

    // R8, R9: DANE.
    if dane_applies {
        match input.tlsa {
            TlsaFacts::SecureUsable(set) => {
                return out(
                    mandatory(Authentication::Dane {
                        tlsa: set.clone(),
                        reference_names: dane_names(input.domain, input.hop),
                    }),
                    Rule::DaneUsable,
                    policy_type,
                    known_failure,
                );
            }
            TlsaFacts::SecureAllUnusable => {
                return out(
                    mandatory(local_auth()),
                    Rule::DaneAllUnusable,
                    policy_type,
                    known_failure,
                );
            }
            _ => {}
        }
    }
    // R10: MTA-STS enforce, MX listed (R3 handled the rest).
    if let (Some(_), Some(mx)) = (sts_enforce, mx_name) {
        let names = restrict(
            vec![DomainPattern::Exact(mx.clone())],
            local_enforced.as_deref(),
        );
        if names.is_empty() {
            return out(
                skip(Disposition::Defer, EnhancedStatus::CRYPTO_FAILURE),
                Rule::ReferenceNamesConflict,
                policy_type,
                known_failure,
            );
        }
        return out(
            mandatory(Authentication::Pkix {
                reference_names: names,
            }),
            Rule::StsEnforce,
            policy_type,
            known_failure,
        );
    }
    // R11: the operator's own requirement.
    if d.tls.is_required() || input.lists.required {
        return out(
            mandatory(local_auth()),
            Rule::LocalRequired,
            policy_type,
            known_failure,
        );
    }
    // R12-R14: cleartext.
    if input.lists.excluded {
        return out(
            HopAction::Cleartext,
            Rule::Excluded,
            policy_type,
            known_failure,
        );
    }
    if d.tls == TlsLevel::None {
        return out(
            HopAction::Cleartext,
            Rule::TlsNone,
            policy_type,
            known_failure,
        );
    }
    if input.temporarily_exempt {
        return out(
            HopAction::Cleartext,
            Rule::TemporarilyExempt,
            policy_type,
            known_failure,
        );
    }
    // R15: opportunistic.
    let report_authentication = match (sts_testing, mx_name) {
        (Some(p), Some(mx)) if p.allows_mx(mx) => Authentication::Pkix {
            reference_names: vec![DomainPattern::Exact(mx.clone())],
        },
        _ => match (d.tls, local_names) {
            (TlsLevel::PreferredVerify, Some(names)) => Authentication::Pkix {
                reference_names: names,
            },
            _ => Authentication::None,
        },
    };
    let exempt_until = input
        .settings
        .exemption
        .and_then(|dur| input.now.checked_add(dur));
    out(
        HopAction::Opportunistic {
            report_authentication,
            exempt_until,
        },
        Rule::Opportunistic,
        policy_type,
        known_failure,
    )
}

/// Reference names a `*-verify*` level accepts; `None` for other levels.
fn local_reference_names(
    level: TlsLevel,
    domain: &DomainName,
    hop: &NextHop,
) -> Option<Vec<DomainPattern>> {
    let mx = hop.host.name();
    match level {
        TlsLevel::PreferredVerify | TlsLevel::RequiredVerify => {
            let mut v = vec![DomainPattern::Exact(domain.clone())];
            if let Some(mx) = mx.filter(|mx| *mx != domain) {
                v.push(DomainPattern::Exact(mx.clone()));
            }
            Some(v)
        }
        TlsLevel::RequiredVerifyHostedDomain => {
            let mut v = vec![
                DomainPattern::Exact(domain.clone()),
                DomainPattern::Subdomains(domain.clone()),
            ];
            let trusted = hop.origin != MxOrigin::Insecure;
            if let Some(mx) =
                mx.filter(|mx| trusted && *mx != domain && !mx.is_strictly_under(domain))
            {
                v.push(DomainPattern::Exact(mx.clone()));
            }
            Some(v)
        }
        _ => None,
    }
}

/// Keeps the names in `wanted` (all `Exact`) that `local` also accepts.
fn restrict(wanted: Vec<DomainPattern>, local: Option<&[DomainPattern]>) -> Vec<DomainPattern> {
    match local {
        None => wanted,
        Some(local) => wanted
            .into_iter()
            .filter(|w| match w {
                DomainPattern::Exact(n) => local.iter().any(|l| l.matches(n)),
                DomainPattern::Subdomains(_) => local.contains(w),
            })
            .collect(),
    }
}

fn dane_names(domain: &DomainName, hop: &NextHop) -> Vec<DomainName> {
    match &hop.host {
        HopHost::Name(mx) if mx != domain => vec![mx.clone(), domain.clone()],
        _ => vec![domain.clone()],
    }
}
