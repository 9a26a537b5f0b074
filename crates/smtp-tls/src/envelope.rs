//! The envelope of one message: sender, `MAIL FROM` parameters and
//! recipients, and the recipients' `RCPT TO` parameters. The server builds it as a
//! transaction progresses; the client is handed one to send. The DSN
//! parameters of RFC 3461 (`RET`, `ENVID`, `NOTIFY`, `ORCPT`) are kept as
//! the client sent them (ENVID and ORCPT in their xtext form), so a relay
//! passes them on unchanged; [`xtext_decode`] gives the text for a report.

use std::fmt;

use crate::address::{ForwardPath, ReversePath};

/// `BODY=` of RFC 6152. `BINARYMIME` (RFC 3030) is not offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BodyType {
    /// `BODY=7BIT`
    SevenBit,
    /// `BODY=8BITMIME`
    EightBitMime,
}

impl fmt::Display for BodyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::SevenBit => "7BIT",
            Self::EightBitMime => "8BITMIME",
        })
    }
}

/// The `MAIL FROM` parameters this crate understands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct MailParams {
    /// `SIZE=` declared by the client (RFC 1870).
    pub size: Option<u64>,
    /// `BODY=` (RFC 6152).
    pub body: Option<BodyType>,
    /// `SMTPUTF8` (RFC 6531): UTF-8 addresses and headers allowed.
    pub smtputf8: bool,
    /// `REQUIRETLS` (RFC 8689): the message must only travel over TLS.
    pub requiretls: bool,
    /// `RET=` (RFC 3461 §4.3): what a failure report returns.
    pub ret: Option<Ret>,
    /// `ENVID=` (RFC 3461 §4.4), as sent (xtext, at most 100 characters).
    pub envid: Option<String>,
}

impl MailParams {
    /// Whether the message may contain octets above 127.
    pub fn allows_8bit(&self) -> bool {
        self.body == Some(BodyType::EightBitMime) || self.smtputf8
    }
}

impl fmt::Display for MailParams {
    /// The parameters as they follow the path, each with a leading space.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(size) = self.size {
            write!(f, " SIZE={size}")?;
        }
        if let Some(body) = self.body {
            write!(f, " BODY={body}")?;
        }
        if self.smtputf8 {
            f.write_str(" SMTPUTF8")?;
        }
        if self.requiretls {
            f.write_str(" REQUIRETLS")?;
        }
        if let Some(ret) = self.ret {
            write!(f, " RET={ret}")?;
        }
        if let Some(envid) = &self.envid {
            write!(f, " ENVID={envid}")?;
        }
        Ok(())
    }
}

impl MailParams {
    /// Whether any DSN parameter (RFC 3461) is set.
    pub fn has_dsn(&self) -> bool {
        self.ret.is_some() || self.envid.is_some()
    }

    /// The same parameters without the DSN ones, for a server that does
    /// not advertise DSN.
    pub fn without_dsn(&self) -> MailParams {
        MailParams {
            ret: None,
            envid: None,
            ..self.clone()
        }
    }
}

/// `RET=` of RFC 3461 §4.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Ret {
    /// `RET=FULL`: return the whole message with a failure report.
    Full,
    /// `RET=HDRS`: return only its header section.
    Headers,
}

impl fmt::Display for Ret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Full => "FULL",
            Self::Headers => "HDRS",
        })
    }
}

/// `NOTIFY=` of RFC 3461 §4.1: when the sender wants a report. All three
/// false is `NOTIFY=NEVER`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Notify {
    /// `SUCCESS`: report delivery (or relay to a server without DSN).
    pub success: bool,
    /// `FAILURE`: report failure.
    pub failure: bool,
    /// `DELAY`: report a long delay.
    pub delay: bool,
}

impl Notify {
    /// `NOTIFY=NEVER`.
    pub const NEVER: Notify = Notify {
        success: false,
        failure: false,
        delay: false,
    };

    /// Whether this is `NEVER`.
    pub fn is_never(self) -> bool {
        self == Self::NEVER
    }
}

impl fmt::Display for Notify {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_never() {
            return f.write_str("NEVER");
        }
        let words = [
            (self.success, "SUCCESS"),
            (self.failure, "FAILURE"),
            (self.delay, "DELAY"),
        ];
        let mut first = true;
        for (on, word) in words {
            if on {
                if !first {
                    f.write_str(",")?;
                }
                f.write_str(word)?;
                first = false;
            }
        }
        Ok(())
    }
}

/// `ORCPT=` of RFC 3461 §4.2: the original recipient, as the first MTA
/// that knew it wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OriginalRecipient {
    /// The address type, e.g. `rfc822` or `utf-8` (RFC 6533).
    pub addr_type: String,
    /// The address, in xtext (or, for `utf-8`, utf-8-addr-xtext) as sent.
    pub xtext: String,
}

impl OriginalRecipient {
    /// The address with its xtext decoded.
    pub fn address(&self) -> String {
        xtext_decode(&self.xtext)
    }
}

impl fmt::Display for OriginalRecipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{};{}", self.addr_type, self.xtext)
    }
}

/// The `RCPT TO` parameters this crate understands (RFC 3461).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct RcptParams {
    /// `NOTIFY=`; `None` when the client did not say (the MTA decides).
    pub notify: Option<Notify>,
    /// `ORCPT=`.
    pub orcpt: Option<OriginalRecipient>,
}

impl RcptParams {
    /// Whether any parameter is set.
    pub fn is_empty(&self) -> bool {
        self.notify.is_none() && self.orcpt.is_none()
    }
}

impl fmt::Display for RcptParams {
    /// The parameters as they follow the path, each with a leading space.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(n) = self.notify {
            write!(f, " NOTIFY={n}")?;
        }
        if let Some(o) = &self.orcpt {
            write!(f, " ORCPT={o}")?;
        }
        Ok(())
    }
}

/// Decodes xtext (RFC 3461 §4): `+XX` is the octet with hex value XX, and
/// (RFC 6533 utf-8-addr-xtext) `\x{HEX}` a Unicode scalar. Anything
/// malformed is kept as written.
pub fn xtext_decode(xtext: &str) -> String {
    let mut out: Vec<u8> = Vec::with_capacity(xtext.len());
    let bytes = xtext.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'+'
            && let Some(hex) = xtext.get(i + 1..i + 3)
            && let Ok(v) = u8::from_str_radix(hex, 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        if b == b'\\'
            && xtext.get(i + 1..i + 3) == Some("x{")
            && let Some(end) = xtext.get(i + 3..).and_then(|r| r.find('}'))
            && let Some(c) = xtext
                .get(i + 3..i + 3 + end)
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .and_then(char::from_u32)
        {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            i += 4 + end;
            continue;
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Encodes text as xtext (RFC 3461 §4): `+`, `=`, controls, space and
/// non-ASCII octets become `+XX`.
pub fn xtext_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if (33..=126).contains(&b) && b != b'+' && b != b'=' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

/// Sender, parameters and recipients of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// `MAIL FROM`.
    pub from: ReversePath,
    /// `MAIL FROM` parameters.
    pub params: MailParams,
    /// `RCPT TO`, in order. Their parameters travel beside the envelope
    /// (`ServerSession::recipient_params`, `ClientSession::send_message_with`).
    pub to: Vec<ForwardPath>,
}
