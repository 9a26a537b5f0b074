//! The DSN block of a message record (RFC 3461 parameters): present only
//! when the sender asked for something, flagged by bit 3 of the flags byte,
//! so records without DSN parameters keep the layout older spools wrote.
//!
//! ```text
//! ret (u8: 0 none, 1 FULL, 2 HDRS) | envid (opt string)
//! | u32 count | per recipient: notify (u8: bit 0 given, 1 SUCCESS, 2 FAILURE,
//!   3 DELAY) | orcpt type (opt string) | orcpt xtext (opt string)
//! ```

use portcullis_smtp_tls::{Notify, OriginalRecipient, RcptParams, Ret};

use super::DsnRequest;
use super::record::{Reader, put_bytes, put_u32};

/// The flags-byte bit that says a DSN block follows the held flag (just
/// before the body).
pub(super) const HAS_DSN: u8 = 8;

pub(super) fn encode(p: &mut Vec<u8>, dsn: &DsnRequest) {
    p.push(match dsn.ret {
        None => 0,
        Some(Ret::Full) => 1,
        Some(_) => 2,
    });
    put_opt(p, dsn.envid.as_deref());
    put_u32(p, dsn.recipients.len() as u32);
    for r in &dsn.recipients {
        p.push(match r.notify {
            None => 0,
            Some(n) => {
                1 | u8::from(n.success) << 1 | u8::from(n.failure) << 2 | u8::from(n.delay) << 3
            }
        });
        put_opt(p, r.orcpt.as_ref().map(|o| o.addr_type.as_str()));
        put_opt(p, r.orcpt.as_ref().map(|o| o.xtext.as_str()));
    }
}

fn put_opt(p: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => p.push(0),
        Some(s) => {
            p.push(1);
            put_bytes(p, s.as_bytes());
        }
    }
}

pub(super) fn decode(r: &mut Reader<'_>) -> Result<DsnRequest, &'static str> {
    let ret = match r.u8()? {
        0 => None,
        1 => Some(Ret::Full),
        2 => Some(Ret::Headers),
        _ => return Err("unknown RET value"),
    };
    let envid = opt(r)?;
    let count = r.u32()? as usize;
    // Each recipient takes at least three bytes: refuse a count the record
    // cannot hold before allocating for it.
    if count > r.remaining() / 3 {
        return Err("DSN list runs past the record");
    }
    let mut recipients = Vec::with_capacity(count);
    for _ in 0..count {
        let bits = r.u8()?;
        let notify = (bits & 1 != 0).then_some(Notify {
            success: bits & 2 != 0,
            failure: bits & 4 != 0,
            delay: bits & 8 != 0,
        });
        let orcpt = match (opt(r)?, opt(r)?) {
            (Some(addr_type), Some(xtext)) => Some(OriginalRecipient { addr_type, xtext }),
            (None, None) => None,
            _ => return Err("ORCPT without its type or address"),
        };
        recipients.push(RcptParams { notify, orcpt });
    }
    Ok(DsnRequest {
        ret,
        envid,
        recipients,
    })
}

fn opt(r: &mut Reader<'_>) -> Result<Option<String>, &'static str> {
    match r.u8()? {
        0 => Ok(None),
        1 => r.string().map(Some),
        _ => Err("bad optional-field marker"),
    }
}
