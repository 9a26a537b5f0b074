//! A report as RFC 8460 §5.3 mail: `multipart/report;
//! report-type="tlsrpt"` with a short text part and the gzipped JSON as
//! `application/tlsrpt+gzip`, the `TLS-Report-Domain` and
//! `TLS-Report-Submitter` header fields, the subject
//! `Report Domain: <domain> Submitter: <submitter> Report-ID: <<id>>` and
//! the file name `<submitter>!<domain>!<begin>!<end>.json.gz`, signed with
//! DKIM (mail-auth) over those header fields so the receiver can tell the
//! report is ours.

use std::path::Path;

use mail_auth::common::crypto::{DkimKey, Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{DkimSigner, Done};
use mail_builder::MessageBuilder;
use mail_builder::headers::HeaderType;
use mail_builder::headers::address::Address;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::{BodyPart, MimePart};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;

use super::report::BuiltReport;

/// The header fields the DKIM signature covers.
const SIGNED_HEADERS: [&str; 9] = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "TLS-Report-Domain",
    "TLS-Report-Submitter",
];

/// Who signs report mail: the signing domain, selector and key.
pub struct DkimSigning {
    signer: DkimSigner<DkimKey, Done>,
    domain: String,
    selector: String,
}

impl std::fmt::Debug for DkimSigning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DkimSigning")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .finish_non_exhaustive()
    }
}

impl DkimSigning {
    /// A signer from a PEM private key (PKCS#8 RSA or Ed25519, or PKCS#1
    /// RSA).
    pub fn from_pem(domain: &str, selector: &str, pem: &[u8]) -> Result<Self, String> {
        let der = PrivateKeyDer::from_pem_slice(pem)
            .map_err(|e| format!("no PEM private key found ({e})"))?;
        let key = match &der {
            PrivateKeyDer::Pkcs8(p8) => Ed25519Key::from_pkcs8_der(p8.secret_pkcs8_der())
                .map(DkimKey::Ed25519)
                .ok(),
            _ => None,
        };
        let key = match key {
            Some(k) => k,
            None => RsaKey::<Sha256>::from_key_der(der)
                .map(DkimKey::Rsa)
                .map_err(|e| format!("not an RSA or Ed25519 signing key ({e})"))?,
        };
        Ok(DkimSigning {
            signer: DkimSigner::from_key(key)
                .domain(domain)
                .selector(selector)
                .headers(SIGNED_HEADERS),
            domain: domain.to_owned(),
            selector: selector.to_owned(),
        })
    }

    /// Reads the key file.
    pub fn from_file(domain: &str, selector: &str, path: &Path) -> Result<Self, String> {
        let pem = std::fs::read(path)
            .map_err(|e| format!("cannot read the DKIM key {}: {e}", path.display()))?;
        Self::from_pem(domain, selector, &pem)
            .map_err(|e| format!("DKIM key {}: {e}", path.display()))
    }

    fn sign(&self, message: &[u8]) -> Result<String, String> {
        self.signer
            .sign(message)
            .map(|s| s.to_header())
            .map_err(|e| format!("DKIM signing failed: {e}"))
    }
}

/// What the mail needs besides the report.
#[derive(Debug, Clone)]
pub struct MailParts<'a> {
    pub from: &'a str,
    pub to: &'a [String],
    pub submitter: &'a str,
    /// Seconds since 1970 for the Date field.
    pub now_unix: u64,
}

/// The complete message, DKIM-Signature first when `dkim` is given.
pub fn report_mail(
    report: &BuiltReport,
    parts: &MailParts<'_>,
    dkim: Option<&DkimSigning>,
) -> Result<Vec<u8>, String> {
    let domain = report.domain.as_str();
    let submitter = parts.submitter;
    let id = &report.report.report_id;
    let text = format!(
        "This is an aggregate TLS report (RFC 8460) from {submitter}.\r\n\r\n\
         Report Domain: {domain}\r\n\
         Submitter: {submitter}\r\n\
         Report-ID: <{id}>\r\n\
         Period: {} to {}\r\n",
        report.report.date_range.start_datetime, report.report.date_range.end_datetime
    );
    let message = MessageBuilder::new()
        .from(parts.from)
        .header(
            "To",
            HeaderType::Address(Address::List(
                parts.to.iter().map(|t| t.as_str().into()).collect(),
            )),
        )
        .message_id(format!("tlsrpt.{id}"))
        .date(parts.now_unix)
        .header("TLS-Report-Domain", HeaderType::Text(domain.into()))
        .header("TLS-Report-Submitter", HeaderType::Text(submitter.into()))
        .header("Auto-Submitted", HeaderType::Text("auto-generated".into()))
        // Raw: the §5.3 format, not an encoded word (it is all ASCII).
        .header(
            "Subject",
            HeaderType::Raw(Raw::new(format!(
                "Report Domain: {domain} Submitter: {submitter} Report-ID: <{id}>"
            ))),
        )
        .body(MimePart::new(
            ContentType::new("multipart/report").attribute("report-type", "tlsrpt"),
            BodyPart::Multipart(vec![
                MimePart::new(ContentType::new("text/plain"), BodyPart::Text(text.into())),
                MimePart::new(
                    ContentType::new("application/tlsrpt+gzip"),
                    BodyPart::Binary(report.gzip.as_slice().into()),
                )
                .attachment(report.file_name(submitter)),
            ]),
        ))
        .write_to_vec()
        .map_err(|e| format!("cannot write the report mail: {e}"))?;
    let Some(dkim) = dkim else {
        return Ok(message);
    };
    let signature = dkim.sign(&message)?;
    let mut out = signature.into_bytes();
    out.extend_from_slice(&message);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlsrpt::counts::DomainDay;
    use crate::tlsrpt::day::UtcDay;
    use crate::tlsrpt::report::{Reporting, build};
    use base64::Engine as _;

    fn pem(label: &str, der: &[u8]) -> String {
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            base64::engine::general_purpose::STANDARD.encode(der)
        )
    }

    #[test]
    fn keys_dkim_cannot_use_are_refused_by_name() {
        let e = DkimSigning::from_pem("example.com", "s", b"not a key").unwrap_err();
        assert!(e.contains("no PEM private key"), "{e}");
        // rcgen's default: ECDSA P-256, which DKIM does not define.
        let ec = rcgen::KeyPair::generate().unwrap().serialize_pem();
        let e = DkimSigning::from_pem("example.com", "s", ec.as_bytes()).unwrap_err();
        assert!(e.contains("not an RSA or Ed25519 signing key"), "{e}");
    }

    #[test]
    fn an_ed25519_signed_report_mail_has_the_rfc_8460_layout() {
        let der = Ed25519Key::generate_pkcs8().unwrap();
        let dkim =
            DkimSigning::from_pem("gw.example", "ed", pem("PRIVATE KEY", &der).as_bytes()).unwrap();
        let who = Reporting {
            organization_name: "Org".into(),
            contact_info: "mailto:p@gw.example".into(),
            submitter: "gw.example".into(),
        };
        let day = UtcDay::parse("2026-12-01").unwrap();
        let report = build(&who, day, "rcpt.example", &DomainDay::default()).unwrap();
        let to = vec!["tls@rcpt.example".to_owned()];
        let parts = MailParts {
            from: "tls-reports@gw.example",
            to: &to,
            submitter: "gw.example",
            now_unix: day.start_unix() + 86_400,
        };
        let mail = String::from_utf8(report_mail(&report, &parts, Some(&dkim)).unwrap()).unwrap();
        assert!(
            mail.starts_with("DKIM-Signature: v=1; a=ed25519-sha256; s=ed; d=gw.example;"),
            "{mail}"
        );
        for needle in [
            "TLS-Report-Domain: rcpt.example\r\n",
            "TLS-Report-Submitter: gw.example\r\n",
            "Subject: Report Domain: rcpt.example Submitter: gw.example Report-ID:",
            "<2026-12-01.rcpt.example@gw.example>",
            "report-type=\"tlsrpt\"",
            "Content-Type: application/tlsrpt+gzip",
            "gw.example!rcpt.example!1796083200!1796169599.json.gz",
        ] {
            assert!(mail.contains(needle), "{needle} missing in\n{mail}");
        }
        let unsigned = report_mail(&report, &parts, None).unwrap();
        assert!(unsigned.starts_with(b"From: "));
    }
}
