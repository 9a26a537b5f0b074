//! Enhanced mail system status codes (RFC 3463, registry of RFC 5248) that
//! policy decisions carry, so a deferral or bounce says the same thing in
//! the queue, the DSN and the mail log. Only the codes this crate emits are
//! constants; the type cannot hold a malformed code.

use std::fmt;

use serde::Serialize;

/// Whether a failure is worth retrying.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StatusClass {
    /// `4.x.x`: defer and retry later.
    Transient,
    /// `5.x.x`: return the message to the sender.
    Permanent,
}

/// An enhanced status code such as `4.7.5`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EnhancedStatus {
    class: StatusClass,
    subject: u16,
    detail: u16,
}

impl EnhancedStatus {
    const fn new(class: StatusClass, subject: u16, detail: u16) -> Self {
        EnhancedStatus {
            class,
            subject,
            detail,
        }
    }

    /// `4.7.4` security features not supported (TLS required but not offered).
    pub const TLS_NOT_OFFERED: Self = Self::new(StatusClass::Transient, 7, 4);
    /// `4.7.5` cryptographic failure (handshake, certificate, TLSA lookup).
    pub const CRYPTO_FAILURE: Self = Self::new(StatusClass::Transient, 7, 5);
    /// `5.7.10` encryption needed (REQUIRETLS could not be met, RFC 8689).
    pub const ENCRYPTION_NEEDED: Self = Self::new(StatusClass::Permanent, 7, 10);
    /// `5.7.30` REQUIRETLS support required (the next hop does not offer it).
    pub const REQUIRETLS_NEEDED: Self = Self::new(StatusClass::Permanent, 7, 30);
    /// `5.7.1` delivery not authorized (relaying denied).
    pub const RELAY_DENIED: Self = Self::new(StatusClass::Permanent, 7, 1);
    /// `5.1.2` bad destination system address.
    pub const BAD_DESTINATION: Self = Self::new(StatusClass::Permanent, 1, 2);
    /// `5.7.0` other security status (connection refused by policy).
    pub const POLICY_REJECT: Self = Self::new(StatusClass::Permanent, 7, 0);
    /// `4.4.4` unable to route (a local configuration forbids every usable path).
    pub const UNABLE_TO_ROUTE: Self = Self::new(StatusClass::Transient, 4, 4);

    /// Transient or permanent.
    pub fn class(&self) -> StatusClass {
        self.class
    }

    /// True for `4.x.x`.
    pub fn is_transient(&self) -> bool {
        self.class == StatusClass::Transient
    }

    /// The same subject and detail with the given class (a `4.7.5` that a
    /// REQUIRETLS message turns into a `5.7.5`).
    pub fn with_class(self, class: StatusClass) -> Self {
        EnhancedStatus { class, ..self }
    }
}

impl fmt::Display for EnhancedStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = match self.class {
            StatusClass::Transient => 4,
            StatusClass::Permanent => 5,
        };
        write!(f, "{c}.{}.{}", self.subject, self.detail)
    }
}

impl Serialize for EnhancedStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays() {
        assert_eq!(EnhancedStatus::CRYPTO_FAILURE.to_string(), "4.7.5");
        assert_eq!(EnhancedStatus::REQUIRETLS_NEEDED.to_string(), "5.7.30");
        assert_eq!(
            EnhancedStatus::CRYPTO_FAILURE
                .with_class(StatusClass::Permanent)
                .to_string(),
            "5.7.5"
        );
    }
}
