//! The `Received` trace header (RFC 5321 §4.4) the gateway prepends to every
//! message it accepts: who sent it (HELO name and address), who received
//! it, over what (ESMTP, ESMTPS with TLS), with the TLS protocol and cipher
//! when there was TLS, and when.

use std::net::IpAddr;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;

use portcullis_smtp_tls::TlsInfo;

/// Facts for one `Received` header.
#[derive(Debug)]
pub(crate) struct Trace<'a> {
    pub helo: Option<&'a str>,
    pub client: IpAddr,
    pub by: &'a str,
    pub tls: Option<&'a TlsInfo>,
    pub utf8: bool,
    pub icid: u64,
    pub single_recipient: Option<&'a str>,
}

/// Keeps only characters that cannot break the header (a HELO name is
/// client-chosen text).
fn clean(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() && !matches!(c, '(' | ')' | ';'))
        .take(255)
        .collect()
}

/// The header, CRLF-terminated, folded.
pub(crate) fn header(t: &Trace<'_>, now: OffsetDateTime) -> String {
    let protocol = match (t.utf8, t.tls.is_some()) {
        (true, true) => "UTF8SMTPS",
        (true, false) => "UTF8SMTP",
        (false, true) => "ESMTPS",
        (false, false) => "ESMTP",
    };
    let helo = t.helo.map(clean).unwrap_or_else(|| "unknown".into());
    let tls = t
        .tls
        .map(|i| {
            format!(
                "\r\n\t(using {} with cipher {})",
                clean(&i.protocol),
                clean(&i.cipher)
            )
        })
        .unwrap_or_default();
    let rcpt = t
        .single_recipient
        .map(|r| format!("\r\n\tfor {}", clean(r)))
        .unwrap_or_default();
    let date = now
        .format(&Rfc2822)
        .unwrap_or_else(|_| now.unix_timestamp().to_string());
    format!(
        "Received: from {helo} ([{}])\r\n\tby {} (Portcullis) with {protocol} id ICID{}{tls}{rcpt};\r\n\t{date}\r\n",
        t.client,
        clean(t.by),
        t.icid
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_clean_and_folded() {
        let info = TlsInfo {
            protocol: "TLSv1_3".into(),
            cipher: "TLS13_AES_256_GCM_SHA384".into(),
            peer_certificates: vec![],
        };
        let h = header(
            &Trace {
                helo: Some("evil\r\nX-Injected: yes (x);"),
                client: "192.0.2.7".parse().unwrap(),
                by: "mx.example.org",
                tls: Some(&info),
                utf8: false,
                icid: 4,
                single_recipient: Some("<a@example.org>"),
            },
            OffsetDateTime::UNIX_EPOCH,
        );
        assert!(h.starts_with("Received: from evilX-Injected: yes x ([192.0.2.7])\r\n\tby mx.example.org (Portcullis) with ESMTPS id ICID4\r\n\t(using TLSv1_3 with cipher TLS13_AES_256_GCM_SHA384)\r\n\tfor <a@example.org>;\r\n\t"), "{h}");
        assert!(h.ends_with("1970 00:00:00 +0000\r\n"), "{h}");
        assert_eq!(h.matches("\r\n").count(), 5);
    }

    proptest::proptest! {
        /// Whatever a client sends as HELO, the header keeps its shape: one
        /// header field, folded at fixed places, nothing injected.
        #[test]
        fn any_helo_yields_one_well_formed_field(helo in proptest::prelude::any::<String>()) {
            let h = header(
                &Trace {
                    helo: Some(&helo),
                    client: "192.0.2.7".parse().unwrap(),
                    by: "mx.example.org",
                    tls: None,
                    utf8: false,
                    icid: 1,
                    single_recipient: None,
                },
                OffsetDateTime::UNIX_EPOCH,
            );
            proptest::prop_assert!(h.starts_with("Received: from "));
            proptest::prop_assert_eq!(h.matches("\r\n").count(), 3);
            for line in h.trim_end_matches("\r\n").split("\r\n").skip(1) {
                proptest::prop_assert!(line.starts_with('\t'));
            }
            proptest::prop_assert!(!h.contains('\n') || h.matches('\n').count() == 3);
        }
    }
}
