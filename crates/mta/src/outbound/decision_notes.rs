//! What the mail log says about a hop's TLS decision beyond the attempt
//! line, once per MX host and message: an MX host missing from a `testing`
//! MTA-STS policy (delivery goes on, RFC 8461 §5), and a `TLS-Required: No`
//! header field (RFC 8689 §5) that changed the deciding rule.

use portcullis_dane::TlsaSet;
use portcullis_policy::mta_sts::{MtaStsFacts, StsMode};
use portcullis_policy::{HopRequirement, TlsRptResult};

use super::context::Context;
use super::hops::Hop;
use crate::spool::MessageId;

/// The notes already written for one MX host.
#[derive(Debug, Default)]
pub(super) struct DecisionNotes {
    testing_mismatch: bool,
    opt_out: bool,
}

impl DecisionNotes {
    /// Logs what `req` (for one address of `hop`) calls for and was not
    /// said yet. `without_opt_out` is the decision without the message's
    /// `TLS-Required: No`, when it has one.
    pub(super) fn note(
        &mut self,
        ctx: &Context,
        id: MessageId,
        hop: &Hop,
        mta_sts: &MtaStsFacts,
        req: &HopRequirement<TlsaSet>,
        without_opt_out: Option<&HopRequirement<TlsaSet>>,
    ) {
        let domain = &req.tls_rpt.policy_domain;
        if !self.opt_out
            && let Some(without) = without_opt_out
            && without.rule != req.rule
        {
            self.opt_out = true;
            ctx.log.line(format_args!(
                "MID {id} to {domain} via {}: TLS-Required: No changed the decision: without it R{} ({}), with it R{} ({})",
                hop.hop.host,
                without.rule.row(),
                without.rule,
                req.rule.row(),
                req.rule
            ));
        }
        if self.testing_mismatch {
            return;
        }
        let MtaStsFacts::Policy(policy) = mta_sts else {
            return;
        };
        // `decide` records a validation failure for exactly this case.
        if policy.mode() != StsMode::Testing
            || req.tls_rpt.known_failure != Some(TlsRptResult::ValidationFailure)
        {
            return;
        }
        self.testing_mismatch = true;
        ctx.log.warn(format_args!(
            "MID {id} to {domain}: MX {} is not in the MTA-STS policy of {domain} (mx [{}]); delivering anyway because the mode is testing",
            hop.hop.host,
            policy
                .mx()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
}
