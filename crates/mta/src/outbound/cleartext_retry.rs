//! The decision's answer to a failed handshake at an opportunistic level
//! (SPEC §2 `preferred`): record the host in the temporary STARTTLS
//! exemption list, reconnect, and deliver in cleartext on the new
//! connection, which is then closed (never pooled: the next message tries
//! TLS again unless the exemption says otherwise).

use std::time::SystemTime;

use super::connect::{Target, open_cleartext};
use super::context::Context;
use super::delivery::{HopResult, Message, finish};
use super::envelope::Outgoing;
use super::hop_failure::connection_failed;
use super::outcome::Leg;
use super::plan::HopPlan;
use crate::maillog::Dcid;

pub(crate) async fn run(
    ctx: &Context,
    m: &Message<'_>,
    leg: &Leg<'_>,
    plan: &HopPlan<'_>,
    target: &Target<'_>,
    exempt_until: Option<SystemTime>,
    smtp_env: Outgoing,
) -> HopResult {
    let host = &target.host;
    if let Some(until) = exempt_until {
        ctx.exemptions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .record(host.clone(), until);
    }
    let dcid = Dcid::next();
    ctx.log.line(format_args!(
        "{dcid} MID {} to {} via {} rule={} retrying in cleartext after the failed handshake{}",
        m.id,
        m.domain,
        leg.label,
        leg.rule,
        match exempt_until {
            Some(u) => format!(
                "; {host} exempt from STARTTLS for {}s",
                u.duration_since(SystemTime::now())
                    .map(|d| d.as_secs() + 1)
                    .unwrap_or(0)
            ),
            None => String::new(),
        }
    ));
    let leg = Leg { dcid, ..*leg };
    match open_cleartext(target, plan).await {
        Ok(mut open) => {
            let sent = open.send(&smtp_env, m.body).await;
            finish(ctx, m, &leg, open, sent, None).await
        }
        Err(detail) => connection_failed(ctx, &leg, detail),
    }
}
