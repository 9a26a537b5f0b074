//! Delivery notices other than bounces: the "relayed" notice RFC 3461
//! §5.2.3 asks of a relay that passes a message asking `NOTIFY=SUCCESS` to
//! a next hop that does not advertise DSN (that hop cannot report success,
//! so the gateway says how far the message got). Queued through the spool
//! like any message; a notice that cannot be queued is logged, not retried
//! (the message itself was delivered).

use std::sync::Arc;

use super::NewMessage;
use super::context::Context;
use crate::dsn::{FailedMessage, RelayedRecipient, relayed};
use crate::spool::{Envelope, MessageId};

pub(crate) async fn send_relayed_notice(
    ctx: &Context,
    id: MessageId,
    envelope: &Envelope,
    body: &[u8],
    recipients: &[RelayedRecipient],
    now: u64,
) {
    let message = FailedMessage {
        envelope,
        message: body,
        queue_id: id.to_string(),
    };
    // `None`: the null sender, or nobody asked NOTIFY=SUCCESS.
    let Some((notice_envelope, notice)) = relayed(&ctx.hostname, &message, recipients, now) else {
        return;
    };
    let (notice_id, commit) = ctx.spool.enqueue(notice_envelope.clone(), &notice);
    match commit.await {
        Ok(()) => {
            ctx.log.line(format_args!(
                "MID {notice_id} queued relay notice (NOTIFY=SUCCESS, next hop without DSN) for MID {id} to <{}> ({} bytes)",
                envelope.sender,
                notice.len()
            ));
            ctx.handle.submit(NewMessage {
                id: notice_id,
                envelope: Arc::new(notice_envelope),
                body: Arc::new(notice),
            });
        }
        Err(e) => ctx.log.warn(format_args!(
            "MID {id} relay notice could not be queued ({e}); the sender gets none"
        )),
    }
}
