//! The `Received` trace header (RFC 5321 §4.4) the gateway prepends to every
//! message it accepts: who sent it (HELO name and address, an IPv6 address
//! as `[IPv6:…]`, RFC 5321 §4.1.3), who received it, over what (RFC 3848:
//! `SMTP` after HELO, `ESMTP` after EHLO, `S` with TLS, `UTF8` with
//! SMTPUTF8), with the TLS protocol and cipher as Postfix writes them
//! (`TLSv1.3`, `TLS_AES_256_GCM_SHA384`) when there was TLS, and when.

use std::net::IpAddr;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;

use portcullis_smtp_tls::TlsInfo;

/// Facts for one `Received` header.
#[derive(Debug)]
pub(crate) struct Trace<'a> {
    pub helo: Option<&'a str>,
    /// The client greeted with EHLO.
    pub esmtp: bool,
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
    let protocol = match (t.esmtp, t.utf8, t.tls.is_some()) {
        (true, true, true) => "UTF8SMTPS",
        (true, true, false) => "UTF8SMTP",
        (true, false, true) => "ESMTPS",
        (true, false, false) => "ESMTP",
        (false, _, true) => "SMTPS",
        (false, _, false) => "SMTP",
    };
    let client = match t.client {
        IpAddr::V4(a) => format!("[{a}]"),
        IpAddr::V6(a) => format!("[IPv6:{a}]"),
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
        "Received: from {helo} ({client})\r\n\tby {} (Portcullis) with {protocol} id ICID{}{tls}{rcpt};\r\n\t{date}\r\n",
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
            protocol: "TLSv1.3".into(),
            cipher: "TLS_AES_256_GCM_SHA384".into(),
            peer_certificates: vec![],
        };
        let h = header(
            &Trace {
                helo: Some("evil\r\nX-Injected: yes (x);"),
                esmtp: true,
                client: "192.0.2.7".parse().unwrap(),
                by: "mx.example.org",
                tls: Some(&info),
                utf8: false,
                icid: 4,
                single_recipient: Some("<a@example.org>"),
            },
            OffsetDateTime::UNIX_EPOCH,
        );
        assert!(h.starts_with("Received: from evilX-Injected: yes x ([192.0.2.7])\r\n\tby mx.example.org (Portcullis) with ESMTPS id ICID4\r\n\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384)\r\n\tfor <a@example.org>;\r\n\t"), "{h}");
        assert!(h.ends_with("1970 00:00:00 +0000\r\n"), "{h}");
        assert_eq!(h.matches("\r\n").count(), 5);
    }

    #[test]
    fn helo_sessions_and_ipv6_clients_are_written_as_the_rfcs_say() {
        let info = TlsInfo {
            protocol: "TLSv1.3".into(),
            cipher: "TLS_AES_256_GCM_SHA384".into(),
            peer_certificates: vec![],
        };
        let trace = |esmtp, tls, client: &str| {
            header(
                &Trace {
                    helo: Some("client.example"),
                    esmtp,
                    client: client.parse().unwrap(),
                    by: "mx.example.org",
                    tls,
                    utf8: false,
                    icid: 9,
                    single_recipient: None,
                },
                OffsetDateTime::UNIX_EPOCH,
            )
        };
        let h = trace(false, None, "::1");
        assert!(
            h.starts_with("Received: from client.example ([IPv6:::1])\r\n\tby mx.example.org (Portcullis) with SMTP id ICID9;"),
            "{h}"
        );
        let h = trace(false, Some(&info), "2001:db8::7");
        assert!(
            h.contains("([IPv6:2001:db8::7])") && h.contains(" with SMTPS id "),
            "{h}"
        );
        assert!(
            h.contains("(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384)"),
            "{h}"
        );
        let h = trace(true, Some(&info), "192.0.2.1");
        assert!(
            h.contains("([192.0.2.1])") && h.contains(" with ESMTPS id "),
            "{h}"
        );
    }

    proptest::proptest! {
        /// Whatever a client sends as HELO, the header keeps its shape: one
        /// header field, folded at fixed places, nothing injected.
        #[test]
        fn any_helo_yields_one_well_formed_field(helo in proptest::prelude::any::<String>()) {
            let h = header(
                &Trace {
                    helo: Some(&helo),
                    esmtp: true,
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
