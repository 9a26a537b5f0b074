//! The policy decision for one hop, as the plan the transport executes:
//! whether to connect, whether to send STARTTLS, which certificate check to
//! make and whether a failed one is fatal, and what to do at each point where
//! the peer falls short — always by asking the decision
//! ([`HopRequirement::on_peer_failure`]), never by re-deciding here. This is
//! the one place that reads a [`HopAction`].

use std::sync::Arc;

use portcullis_dane::{PeerVerifier, PkixRoots, ReferenceId, ReferenceNames, TlsaSet, danger};
use portcullis_policy::{
    Authentication, Disposition, DomainName, EnhancedStatus, HopAction, HopRequirement, NextStep,
    PeerFailure, Shortfall as PolicyShortfall, StatusClass,
};
use portcullis_smtp_tls::{OnShortfall, Shortfall, StartTlsPlan};
use rustls::crypto::CryptoProvider;

/// What to do with a hop.
pub(crate) enum Step<'a> {
    /// Do not connect: next host, then this shortfall's disposition.
    Skip {
        shortfall: PolicyShortfall,
        status: EnhancedStatus,
    },
    /// Connect and execute this plan.
    Connect(HopPlan<'a>),
}

/// A hop to connect to, under its decision.
pub(crate) struct HopPlan<'a> {
    req: &'a HopRequirement<TlsaSet>,
    /// STARTTLS and REQUIRETLS demands for smtp-tls.
    pub starttls: StartTlsPlan,
    /// The certificate check; `None` when the decision asks for none (any
    /// certificate, or no TLS at all).
    pub verifier: Option<Arc<PeerVerifier>>,
}

/// Where certificate checks get their trust from.
pub(crate) struct Trust<'a> {
    pub pkix: &'a PkixRoots,
    pub provider: &'a Arc<CryptoProvider>,
}

impl<'a> Step<'a> {
    pub(crate) fn new(req: &'a HopRequirement<TlsaSet>, trust: &Trust<'_>) -> Self {
        let (starttls, authentication) = match &req.action {
            HopAction::Skip { shortfall, status } => {
                return Step::Skip {
                    shortfall: *shortfall,
                    status: *status,
                };
            }
            HopAction::Cleartext => (false, None),
            HopAction::Opportunistic {
                report_authentication,
                ..
            } => (true, Some(report_authentication)),
            HopAction::Mandatory { authentication, .. } => (true, Some(authentication)),
            // An action this build does not know: do not connect; defer.
            _ => {
                return Step::Skip {
                    shortfall: PolicyShortfall::NextHost(Disposition::Defer),
                    status: EnhancedStatus::POLICY_REJECT.with_class(StatusClass::Transient),
                };
            }
        };
        let starttls = StartTlsPlan {
            starttls,
            require_requiretls: matches!(
                req.action,
                HopAction::Mandatory {
                    require_requiretls: true,
                    ..
                }
            ),
        };
        let verifier = authentication.and_then(|a| {
            let v = verifier(a, trust)?;
            // The decision says whether a failed check stops the delivery
            // or is only reported.
            Some(Arc::new(
                match req.on_peer_failure(PeerFailure::AuthenticationFailed) {
                    NextStep::ContinueEncrypted => danger::report_only(v),
                    _ => v,
                },
            ))
        });
        Step::Connect(HopPlan {
            req,
            starttls,
            verifier,
        })
    }
}

fn verifier(auth: &Authentication<TlsaSet>, trust: &Trust<'_>) -> Option<PeerVerifier> {
    match auth {
        Authentication::None => None,
        Authentication::Pkix { reference_names } => Some(PeerVerifier::pkix(
            trust.pkix.clone(),
            reference_names
                .iter()
                .map(|p| ReferenceId::parse(&p.to_string()))
                .collect(),
        )),
        Authentication::Dane {
            tlsa,
            reference_names,
        } => Some(PeerVerifier::dane(
            tlsa.clone(),
            ReferenceNames::new(reference_names.iter().map(DomainName::as_str)),
            trust.provider.clone(),
        )),
        // A check this build does not know: PKIX with no acceptable name,
        // which no certificate passes.
        _ => Some(PeerVerifier::pkix(trust.pkix.clone(), Vec::new())),
    }
}

/// What the decision calls a shortfall smtp-tls reports. A handshake that
/// failed because the enforced certificate check failed is an
/// authentication failure.
pub(crate) fn peer_failure(s: &Shortfall, verifier: Option<&PeerVerifier>) -> PeerFailure {
    match s {
        Shortfall::NotOffered(_) => PeerFailure::StarttlsNotOffered,
        Shortfall::Refused(_) => PeerFailure::StarttlsRefused,
        Shortfall::RequireTlsNotOffered => PeerFailure::RequireTlsNotOffered,
        Shortfall::HandshakeFailed(_) if verifier.is_some_and(auth_failed) => {
            PeerFailure::AuthenticationFailed
        }
        // A handshake failure, or a shortfall this build does not know:
        // the connection is unusable either way.
        _ => PeerFailure::HandshakeFailed,
    }
}

fn auth_failed(v: &PeerVerifier) -> bool {
    v.enforces() && matches!(v.outcome(), portcullis_dane::PeerAuthentication::Failed(_))
}

impl<'a> HopPlan<'a> {
    /// The same hop without STARTTLS, for the decision's
    /// [`NextStep::RetryCleartext`].
    pub(crate) fn cleartext_retry(&self) -> HopPlan<'a> {
        HopPlan {
            req: self.req,
            starttls: StartTlsPlan {
                starttls: false,
                require_requiretls: false,
            },
            verifier: None,
        }
    }

    /// The decision's answer to `failure`.
    pub(crate) fn next_step(&self, failure: PeerFailure) -> NextStep {
        self.req.on_peer_failure(failure)
    }

    /// smtp-tls's question at a shortfall, answered by the decision: go on
    /// only where it says to continue on this connection.
    pub(crate) fn on_shortfall(&self, s: &Shortfall) -> OnShortfall {
        match self.next_step(peer_failure(s, self.verifier.as_deref())) {
            NextStep::ContinueCleartext | NextStep::ContinueEncrypted => OnShortfall::Continue,
            _ => OnShortfall::Quit,
        }
    }

    /// `no`, `if-offered`, `required` or `required+REQUIRETLS`, for the log.
    pub(crate) fn starttls_label(&self) -> &'static str {
        if !self.starttls.starttls {
            "no"
        } else if self.starttls.require_requiretls {
            "required+REQUIRETLS"
        } else if self.next_step(PeerFailure::StarttlsNotOffered) == NextStep::ContinueCleartext {
            "if-offered"
        } else {
            "required"
        }
    }

    /// Idle connections are reused only for a hop under the same demands
    /// (address, host, STARTTLS and authentication).
    pub(crate) fn pool_key(&self, addr: std::net::SocketAddr, host: &str) -> String {
        match &self.req.action {
            HopAction::Opportunistic {
                report_authentication,
                ..
            } => format!("{addr}|{host}|opp|{report_authentication:?}"),
            HopAction::Mandatory {
                authentication,
                require_requiretls,
                ..
            } => format!("{addr}|{host}|mandatory|{require_requiretls}|{authentication:?}"),
            _ => format!("{addr}|{host}|clear"),
        }
    }
}
