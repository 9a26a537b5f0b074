//! What a session says when the spool has no room, and when the gateway
//! shuts down under it.
//!
//! Space is checked before the client sends anything big: at `MAIL FROM`
//! a transaction is refused with `452 4.3.1` (RFC 3463 "mail system full")
//! when the spool's filesystem is under its free-space threshold, or when
//! the declared `SIZE=` does not fit above it. A message that still does not
//! fit when it is written (several arrived at once) gets the same `452`
//! after its data: the spool undid the write, so nothing of it is kept.
//! Each refusal is one mail-log line saying how much space there was.
//! Sessions still open when the shutdown grace delay ends hear `421 4.3.2`
//! before the connection closes.

use portcullis_smtp_tls::{MailParams, Reply, ReversePath, ServerConnection};
use tokio::net::TcpStream;

use super::ListenerContext;
use crate::maillog::Icid;
use crate::spool::SpoolError;

fn insufficient_storage() -> Reply {
    super::session::fixed(452, "4.3.1", "Insufficient system storage, try again later")
}

/// The `452 4.3.1` for a `MAIL FROM` the spool has no room for, or `None`
/// to go on.
pub(super) fn refuse_mail(
    ctx: &ListenerContext,
    icid: Icid,
    from: &ReversePath,
    params: &MailParams,
) -> Option<Reply> {
    let shortage = ctx.spool.admit(params.size).err()?;
    ctx.log.warn(format_args!(
        "{icid} MAIL FROM {from} refused with 452 4.3.1: {shortage}"
    ));
    Some(insufficient_storage())
}

/// The reply for a message the spool could not store for lack of space
/// (the write was undone: nothing of the message is kept), or `None` for
/// other failures.
pub(super) fn not_stored(
    ctx: &ListenerContext,
    icid: Icid,
    sender: &str,
    err: &SpoolError,
) -> Option<Reply> {
    let SpoolError::NoSpace(why) = err else {
        return None;
    };
    ctx.log.warn(format_args!(
        "{icid} message from <{sender}> NOT queued, answered 452 4.3.1: {why}"
    ));
    Some(insufficient_storage())
}

/// Tells a client whose session outlived the shutdown grace delay that the
/// service is closing, then closes.
pub(super) async fn say_shutting_down(conn: &mut ServerConnection<TcpStream>, hostname: &str) {
    let reply = super::session::fixed(
        421,
        "4.3.2",
        &format!("{hostname} Service shutting down, closing transmission channel"),
    );
    conn.close_with(&reply).await;
}
