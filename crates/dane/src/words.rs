//! Certificate failures in an operator's words: every rustls and webpki
//! error the checks can meet becomes a plain sentence ("self-signed
//! certificate", "certificate expired on 2026-11-29 (1 day ago)"), never
//! the libraries' debug output. Both the PKIX check and the DANE chain
//! check use these.

use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::{CertificateError, Error};
use x509_cert::der::Decode;

/// `2026-11-29 (1 day ago)`, `2026-12-03 (in 2 days)`: `at` said relative
/// to `now`.
pub(crate) fn date_words(at: UnixTime, now: UnixTime) -> String {
    let (at, now) = (at.as_secs(), now.as_secs());
    let date = i64::try_from(at)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .map(|t| format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()))
        .unwrap_or_else(|| format!("{at} seconds after 1970"));
    let (span, ago) = if now >= at {
        (now - at, true)
    } else {
        (at - now, false)
    };
    let plural = |n: u64, unit: &str| {
        if n == 1 {
            format!("1 {unit}")
        } else {
            format!("{n} {unit}s")
        }
    };
    let amount = match span {
        s if s < 3600 => plural(s / 60, "minute"),
        s if s < 86400 => plural(s / 3600, "hour"),
        s => plural(s / 86400, "day"),
    };
    if ago {
        format!("{date} ({amount} ago)")
    } else {
        format!("{date} (in {amount})")
    }
}

/// Whether the certificate names itself as its issuer.
pub(crate) fn is_self_signed(cert: &CertificateDer<'_>) -> bool {
    x509_cert::Certificate::from_der(cert.as_ref())
        .map(|c| c.tbs_certificate().issuer() == c.tbs_certificate().subject())
        .unwrap_or(false)
}

/// A rustls verification error about `end_entity`'s chain, in words.
pub(crate) fn rustls_words(e: &Error, end_entity: &CertificateDer<'_>) -> String {
    let Error::InvalidCertificate(c) = e else {
        return format!("certificate rejected: {e}");
    };
    match c {
        CertificateError::UnknownIssuer | CertificateError::BadSignature
            if is_self_signed(end_entity) =>
        {
            "self-signed certificate (not issued by a CA in the enabled lists)".into()
        }
        CertificateError::UnknownIssuer => {
            "certificate chain does not end at a trusted CA (unknown issuer; an intermediate certificate may be missing)".into()
        }
        CertificateError::ExpiredContext { time, not_after } => {
            format!("certificate expired on {}", date_words(*not_after, *time))
        }
        CertificateError::Expired => "certificate has expired".into(),
        CertificateError::NotValidYetContext { time, not_before } => format!(
            "certificate is not valid until {}",
            date_words(*not_before, *time)
        ),
        CertificateError::NotValidYet => "certificate is not valid yet".into(),
        CertificateError::BadSignature => "certificate signature is invalid".into(),
        CertificateError::BadEncoding => "certificate cannot be decoded".into(),
        CertificateError::Revoked => "certificate is revoked".into(),
        CertificateError::UnhandledCriticalExtension => {
            "certificate has a critical extension that cannot be processed".into()
        }
        CertificateError::UnsupportedSignatureAlgorithmContext { .. }
        | CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
            "certificate uses an unacceptable signature algorithm".into()
        }
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "certificate is not meant for TLS servers (its extended key usage)".into()
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "certificate is not valid for the server's name".into()
        }
        CertificateError::Other(other) => match other.0.downcast_ref::<webpki::Error>() {
            Some(w) => webpki_words(w, end_entity),
            None => format!("certificate rejected: {other}"),
        },
        other => format!("certificate rejected: {other}"),
    }
}

/// A webpki path-building error about `end_entity`'s chain, in words.
pub(crate) fn webpki_words(e: &webpki::Error, end_entity: &CertificateDer<'_>) -> String {
    use webpki::Error as W;
    match e {
        W::CaUsedAsEndEntity if is_self_signed(end_entity) => {
            "self-signed certificate (a CA certificate presented as the server's own)".into()
        }
        W::CaUsedAsEndEntity => "the server presented a CA certificate as its own".into(),
        W::UnknownIssuer if is_self_signed(end_entity) => "self-signed certificate".into(),
        W::UnknownIssuer => {
            "no issuer found: an intermediate certificate is missing or does not chain to a trust anchor".into()
        }
        W::CertExpired { time, not_after } => format!(
            "a certificate in the chain expired on {}",
            date_words(*not_after, *time)
        ),
        W::CertNotValidYet { time, not_before } => format!(
            "a certificate in the chain is not valid until {}",
            date_words(*not_before, *time)
        ),
        W::InvalidSignatureForPublicKey => {
            "a certificate signature does not verify with its issuer's key".into()
        }
        W::EndEntityUsedAsCa => "a server certificate was used to issue another".into(),
        W::PathLenConstraintViolated => "the chain is longer than a CA allows".into(),
        W::NameConstraintViolation => "a name violates a CA's name constraints".into(),
        W::RequiredEkuNotFoundContext(_) | W::EmptyEkuExtension => {
            "certificate is not meant for TLS servers (its extended key usage)".into()
        }
        W::UnsupportedSignatureAlgorithmContext(_)
        | W::SignatureAlgorithmMismatch => "a certificate uses an unacceptable signature algorithm".into(),
        W::UnsupportedCriticalExtension => {
            "a certificate has a critical extension that cannot be processed".into()
        }
        W::CertRevoked => "a certificate in the chain is revoked".into(),
        W::CertDistrusted => "a certificate in the chain is distrusted".into(),
        W::MaximumPathDepthExceeded
        | W::MaximumPathBuildCallsExceeded
        | W::MaximumSignatureChecksExceeded => "the chain is too long or too complex to verify".into(),
        W::BadDer | W::BadDerTime | W::TrailingData(_) | W::MalformedExtensions => {
            "a certificate in the chain cannot be decoded".into()
        }
        W::CertNotValidForName(_) => "certificate is not valid for the server's name".into(),
        W::InvalidCertValidity => "a certificate has an invalid validity period".into(),
        W::UnsupportedCertVersion => "a certificate has an unsupported version".into(),
        _ => "the certificate chain is invalid".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_days_relative_to_now() {
        let day = 86400;
        let at = UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_795_910_400));
        let later =
            |s: u64| UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_795_910_400 + s));
        assert_eq!(date_words(at, later(day + 60)), "2026-11-29 (1 day ago)");
        assert_eq!(date_words(at, later(21 * day)), "2026-11-29 (21 days ago)");
        assert_eq!(date_words(at, later(7200)), "2026-11-29 (2 hours ago)");
        let earlier =
            UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_795_910_400 - 2 * day));
        assert_eq!(date_words(at, earlier), "2026-11-29 (in 2 days)");
    }
}
