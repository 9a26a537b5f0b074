//! What a session says while the gateway is in resource conservation (see
//! [`crate::health`]): on a public listener, a new connection hears
//! `421 4.3.2` before anything else is done for it (no HAT lookup, no DNS),
//! and `MAIL FROM` in a session already open hears `452 4.3.1`, so clients
//! keep their mail and retry later; a private listener keeps accepting, up
//! to the `[health]` private-session limit. Each check is one atomic load
//! while the gateway is not in conservation; the reason is read only to
//! write the refusal's log line.

use std::net::SocketAddr;

use portcullis_policy::ListenerKind;
use portcullis_smtp_tls::{Reply, ReversePath};

use super::ListenerContext;
use super::session::fixed;
use crate::maillog::Icid;

fn public(ctx: &ListenerContext) -> bool {
    matches!(ctx.settings.access.kind(), ListenerKind::Public)
}

/// The `421 4.3.2` for a new connection to a public listener in
/// conservation, or `None` to go on.
pub(super) fn refuse_connection(
    ctx: &ListenerContext,
    icid: Icid,
    peer: SocketAddr,
) -> Option<Reply> {
    if !ctx.health.conserving() || !public(ctx) {
        return None;
    }
    ctx.log.line(format_args!(
        "{icid} new from {peer} on listener {:?}: refused with 421 4.3.2: resource conservation ({})",
        ctx.settings.name,
        ctx.health.reason()
    ));
    Some(fixed(
        421,
        "4.3.2",
        &format!(
            "{} Service not available, resources low, try again later",
            ctx.settings.hostname
        ),
    ))
}

/// The `421 4.3.2` for a connection to a private listener in conservation
/// whose sessions (this one, which holds its place already, included) are
/// over the limit.
pub(super) fn refuse_private_over_limit(ctx: &ListenerContext, icid: Icid) -> Option<Reply> {
    if !ctx.health.conserving() || public(ctx) {
        return None;
    }
    let limit = ctx.health.private_session_limit();
    if ctx.limits.in_use() <= limit {
        return None;
    }
    ctx.log.line(format_args!(
        "{icid} close: refused with 421 4.3.2: listener {:?} has {limit} session(s) open, its limit during resource conservation (health.private-session-limit)",
        ctx.settings.name
    ));
    Some(fixed(
        421,
        "4.3.2",
        &format!(
            "{} Service not available, resources low, try again later",
            ctx.settings.hostname
        ),
    ))
}

/// The `452 4.3.1` for `MAIL FROM` on a public listener in conservation,
/// or `None` to go on.
pub(super) fn refuse_mail(ctx: &ListenerContext, icid: Icid, from: &ReversePath) -> Option<Reply> {
    if !ctx.health.conserving() || !public(ctx) {
        return None;
    }
    ctx.log.line(format_args!(
        "{icid} MAIL FROM {from} refused with 452 4.3.1: resource conservation ({})",
        ctx.health.reason()
    ));
    Some(fixed(
        452,
        "4.3.1",
        "Insufficient system resources, try again later",
    ))
}
