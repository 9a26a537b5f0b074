//! What one inbound session is set up with, from the listener's settings
//! and the client's mail flow policy: the smtp-tls session configuration
//! (limits, every deadline, CHUNKING and DSN on), the postmaster address
//! `<Postmaster>` mail goes to, and the policy's name for the log.

use portcullis_smtp_tls::{ServerConfig, TlsMode};

/// Where `<Postmaster>` mail goes: the configured address, else
/// `postmaster@` the first domain the listener accepts mail for, else
/// `postmaster@` its host name.
pub(crate) fn postmaster_address(l: &crate::settings::ListenerSettings) -> String {
    if let Some(a) = &l.postmaster {
        return a.clone();
    }
    let first_domain = l.access.rat().patterns().iter().find_map(|p| match p {
        portcullis_policy::RecipientPattern::Domain(portcullis_policy::DomainPattern::Exact(d)) => {
            Some(d.to_string())
        }
        _ => None,
    });
    format!(
        "postmaster@{}",
        first_domain.unwrap_or_else(|| l.hostname.clone())
    )
}

/// The mail flow policy's name for the log (`ACCEPTED`, `RELAYED`, …).
pub(super) fn policy_name<'a>(
    l: &'a crate::settings::ListenerSettings,
    group: Option<&str>,
) -> &'a str {
    l.access
        .hat()
        .groups()
        .iter()
        .find(|g| Some(g.name.as_str()) == group)
        .map_or("(default for unlisted clients)", |g| g.policy_name.as_str())
}

/// The session settings of this listener and client policy.
pub(super) fn server_config(
    l: &crate::settings::ListenerSettings,
    limits: &portcullis_policy::InboundLimits,
    mode: TlsMode,
) -> ServerConfig {
    let mut config = ServerConfig::new(l.hostname.clone());
    config.tls = mode;
    config.max_message_size = limits.max_message_size;
    config.max_recipients = limits.max_recipients_per_message as usize;
    config.idle_timeout = l.idle_timeout;
    config.tls_handshake_timeout = l.tls_handshake_timeout;
    config.data_timeout = l.data_timeout;
    config.session_timeout = l.session_timeout;
    config.max_errors = l.max_errors;
    config.stream_message_data = true;
    config.chunking = true;
    config.dsn = true;
    config
}
