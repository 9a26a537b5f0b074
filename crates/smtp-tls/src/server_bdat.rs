//! BDAT (RFC 3030) in the server session: starting a message with its
//! first chunk, reading chunks into the message text (the receiver is in
//! `data.rs`), answering each chunk, refusing a chunk while still skipping
//! its octets (they must never be read as commands), and abandoning a
//! message between chunks.

use super::{Mode, ServerEvent, ServerSession, reply};
use crate::data::{BdatReceiver, MessageText};

impl ServerSession {
    /// Discards the chunk of a refused BDAT, so its octets are never read
    /// as commands.
    pub(super) fn skip_chunk(&mut self, size: u64) {
        if size > 0 && !self.is_closed() {
            self.mode = Mode::Skip(size);
        }
    }

    /// Drops a message arriving in BDAT chunks (RSET, a new EHLO, DATA, a
    /// refused chunk); a streaming embedder is told to discard its text.
    pub(super) fn abandon_message(&mut self) {
        if self.bdat.take().is_some() {
            self.message = None;
            self.data_started = None;
            if self.config.stream_message_data {
                self.events.push_back(ServerEvent::MessageAbandoned);
            }
        }
    }

    pub(super) fn handle_bdat(&mut self, size: u64, last: bool) {
        let refusal = if !self.config.chunking {
            Some(reply(
                502,
                (5, 5, 1),
                "BDAT not implemented (CHUNKING is not offered)",
            ))
        } else {
            match &self.transaction {
                None => Some(reply(503, (5, 5, 1), "Need MAIL and RCPT before BDAT")),
                Some(tx) if tx.to.is_empty() => Some(reply(554, (5, 5, 1), "No valid recipients")),
                Some(_) => None,
            }
        };
        if let Some(r) = refusal {
            self.abandon_message();
            self.skip_chunk(size);
            return self.error(r);
        }
        if self.bdat.is_none() {
            if let (Some(tx), true) = (&self.transaction, self.config.stream_message_data) {
                self.events.push_back(ServerEvent::MessageStart {
                    envelope: tx.clone(),
                });
            }
            self.message = Some(MessageText::new(self.config.max_message_size));
            self.bdat = Some(BdatReceiver::new());
            self.data_started = Some(self.last_activity);
        }
        if size == 0 {
            self.chunk_received(last, 0);
        } else {
            self.mode = Mode::Chunk {
                remaining: size,
                last,
                size,
            };
        }
    }

    /// A BDAT chunk is in. Not the last: `250` (or `552` once the message is
    /// too big, which ends it). The last: the message is complete.
    pub(super) fn chunk_received(&mut self, last: bool, size: u64) {
        let too_big = self.message.as_ref().is_some_and(MessageText::too_big);
        if !last && !too_big {
            return self.send(&reply(250, (2, 0, 0), &format!("{size} octets received")));
        }
        let refusal = match (self.bdat.take(), self.message.as_mut()) {
            (Some(mut rx), Some(text)) => {
                let refusal = rx.finish(text);
                if self.config.stream_message_data && refusal.is_none() {
                    let piece = text.take();
                    if !piece.is_empty() {
                        self.events.push_back(ServerEvent::MessageData(piece));
                    }
                }
                refusal
            }
            _ => None,
        };
        self.finish_message(refusal);
    }
}
