//! What a message brings to each destination: its TLS stance (the
//! REQUIRETLS flag, the `+requiretls` tag, a REQUIRETLS rule, or the
//! `TLS-Required: No` header field of RFC 8689 §5) and the SMTP envelope the
//! next hop is sent (tags removed, REQUIRETLS passed on when the decision
//! demands it, the sender's DSN parameters with it; a connection drops them
//! for a next hop that does not advertise DSN, see `connect.rs`).

use portcullis_policy::requiretls::{
    MessageFacts, RequireTlsRules, strip_requiretls_tag, tls_required_header,
};
use portcullis_policy::{DomainName, MessageTls};
use portcullis_smtp_tls::{
    BodyType, Envelope as SmtpEnvelope, ForwardPath, MailParams, RcptParams, ReversePath,
};

use crate::spool::Envelope;

/// The message's TLS stance for this domain (REQUIRETLS flag, tag, rule,
/// or `TLS-Required: No`).
pub(crate) fn message_tls(
    rules: &RequireTlsRules,
    envelope: &Envelope,
    domain: &DomainName,
    rcpts: &[String],
    body: &[u8],
) -> MessageTls {
    let sender_domain = envelope
        .sender
        .rsplit_once('@')
        .and_then(|(_, d)| DomainName::parse(d).ok());
    let header = tls_required_header(body);
    let mut result = MessageTls::Default;
    for r in rcpts {
        let m = rules.classify(&MessageFacts {
            mail_parameter: envelope.flags.requiretls,
            recipient: Some(r),
            sender_domain: sender_domain.as_ref(),
            recipient_domain: Some(domain),
            tls_required_header: header.as_deref(),
        });
        if m.is_require_tls() {
            return m;
        }
        result = m;
    }
    result
}

/// What is sent to a next hop: the SMTP envelope and each recipient's DSN
/// parameters.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    pub envelope: SmtpEnvelope,
    pub rcpt_params: Vec<RcptParams>,
}

pub(crate) fn smtp_envelope(
    envelope: &Envelope,
    rcpts: &[(u32, String)],
    requiretls: bool,
) -> Result<Outgoing, String> {
    let from = if envelope.sender.is_empty() {
        ReversePath::Null
    } else {
        ReversePath::parse(&format!("<{}>", envelope.sender))
            .map_err(|e| format!("stored sender <{}> is invalid: {e}", envelope.sender))?
    };
    let mut to = Vec::with_capacity(rcpts.len());
    let mut rcpt_params = Vec::with_capacity(rcpts.len());
    for (i, r) in rcpts {
        rcpt_params.push(envelope.dsn.recipient(*i as usize));
        let addr = strip_requiretls_tag(r).unwrap_or_else(|| r.clone());
        to.push(
            ForwardPath::parse(&format!("<{addr}>"))
                .map_err(|e| format!("stored recipient <{r}> is invalid: {e}"))?,
        );
    }
    Ok(Outgoing {
        envelope: SmtpEnvelope {
            from,
            params: MailParams {
                size: None,
                body: envelope.flags.eight_bit.then_some(BodyType::EightBitMime),
                smtputf8: envelope.flags.smtputf8,
                requiretls,
                ret: envelope.dsn.ret,
                envid: envelope.dsn.envid.clone(),
            },
            to,
        },
        rcpt_params,
    })
}
