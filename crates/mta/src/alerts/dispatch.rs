//! One delivery attempt of a pending alert: the mail to its recipients
//! (smarthost or MX), or the webhook POST, each within the attempt
//! deadline. `Ok` says where it went, for the log; `Err` why not (retried).

use super::AlertSettings;
use super::outbox::{Pending, Target};
use crate::dns::Resolver;
use crate::maillog::MailLog;

pub(crate) async fn attempt(
    settings: &AlertSettings,
    resolver: Option<&Resolver>,
    log: &MailLog,
    pending: &Pending,
) -> Result<String, String> {
    match &pending.target {
        Target::Mail { recipients } => {
            super::mail::send(settings, resolver, log, &pending.notice, recipients).await
        }
        Target::Webhook => {
            let Some(hook) = &settings.webhook else {
                return Err("no webhook is configured any more".into());
            };
            let post = super::webhook::post(hook, &settings.hostname, resolver, &pending.notice);
            match tokio::time::timeout(settings.attempt_timeout, post).await {
                Ok(Ok(status)) => Ok(format!("{} (HTTP {status})", hook.url)),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(format!(
                    "{} did not answer within {:?}",
                    hook.url, settings.attempt_timeout
                )),
            }
        }
    }
}
