//! The envelope of one message: sender, `MAIL FROM` parameters and
//! recipients. The server builds it as a transaction progresses; the client
//! is handed one to send.

use std::fmt;

use crate::address::{ForwardPath, ReversePath};

/// `BODY=` of RFC 6152. `BINARYMIME` needs CHUNKING, which is not offered.
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
        Ok(())
    }
}

/// Sender, parameters and recipients of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// `MAIL FROM`.
    pub from: ReversePath,
    /// `MAIL FROM` parameters.
    pub params: MailParams,
    /// `RCPT TO`, in order.
    pub to: Vec<ForwardPath>,
}
