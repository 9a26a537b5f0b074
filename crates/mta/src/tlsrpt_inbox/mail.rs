//! The report inside a report mail (RFC 8460 §5.3): a `multipart/report`
//! whose report part is `application/tlsrpt+gzip` or
//! `application/tlsrpt+json`, decoded from its transfer encoding by
//! mail-parser. Senders that label the part `application/gzip` or
//! `application/json` (or `application/octet-stream`) with a file name
//! ending `.json.gz` / `.json` are accepted too: the bytes are checked by
//! the parser either way.

use mail_parser::{MessageParser, MimeHeaders};

/// The report bytes of a report mail, or why there are none.
pub fn report_part(message: &[u8]) -> Result<Vec<u8>, String> {
    let parsed = MessageParser::default()
        .parse(message)
        .ok_or_else(|| "the message is not a MIME message mail-parser can read".to_owned())?;
    let mut fallback = None;
    for part in &parsed.parts {
        let Some(ct) = part.content_type() else {
            continue;
        };
        let subtype = ct.subtype().unwrap_or_default().to_ascii_lowercase();
        if !ct.ctype().eq_ignore_ascii_case("application") {
            continue;
        }
        if subtype == "tlsrpt+gzip" || subtype == "tlsrpt+json" {
            return Ok(part.contents().to_vec());
        }
        let named = part.attachment_name().is_some_and(|n| {
            let n = n.to_ascii_lowercase();
            n.ends_with(".json.gz") || n.ends_with(".json")
        });
        if fallback.is_none()
            && named
            && matches!(
                subtype.as_str(),
                "gzip" | "json" | "octet-stream" | "x-gzip"
            )
        {
            fallback = Some(part.contents().to_vec());
        }
    }
    fallback.ok_or_else(|| {
        "no application/tlsrpt+gzip or application/tlsrpt+json part in the message (RFC 8460 section 5.3)".to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_base64_report_part_of_a_multipart_report() {
        let mail = "From: reporter@sender.example\r\n\
            To: tlsrpt@example.com\r\n\
            Subject: Report Domain: example.com Submitter: sender.example Report-ID: <1>\r\n\
            MIME-Version: 1.0\r\n\
            Content-Type: multipart/report; report-type=\"tlsrpt\"; boundary=\"b\"\r\n\
            \r\n\
            --b\r\n\
            Content-Type: text/plain\r\n\
            \r\n\
            This is a TLS report.\r\n\
            --b\r\n\
            Content-Type: application/tlsrpt+gzip\r\n\
            Content-Transfer-Encoding: base64\r\n\
            Content-Disposition: attachment; filename=\"x.json.gz\"\r\n\
            \r\n\
            H4sIAAAAAAAA/6uuBQBDv6ajAgAAAA==\r\n\
            --b--\r\n";
        let part = report_part(mail.as_bytes()).unwrap();
        assert_eq!(&part[..2], &[0x1f, 0x8b]);
    }

    #[test]
    fn a_mail_without_a_report_says_so() {
        let mail = "From: a@b.example\r\nSubject: hi\r\n\r\nno report here\r\n";
        let err = report_part(mail.as_bytes()).unwrap_err();
        assert!(err.contains("no application/tlsrpt+gzip"), "{err}");
    }
}
