//! The `_smtp._tls.<domain>` TXT record that asks for TLS reports (RFC 8460
//! §3):
//!
//! ```text
//! tlsrpt-record = tlsrpt-version 1*(field-delim tlsrpt-field) [field-delim]
//! tlsrpt-version = %s"v=TLSRPTv1"
//! field-delim    = *WSP ";" *WSP
//! tlsrpt-field   = tlsrpt-rua / tlsrpt-extension
//! tlsrpt-rua     = %s"rua=" tlsrpt-uri *(*WSP "," *WSP tlsrpt-uri)
//! tlsrpt-uri     = URI   ; mailto: or https:
//! ```
//!
//! Records not starting with `v=TLSRPTv1` are ignored; exactly one must be
//! left. The text comes from DNS: untrusted bytes.

/// A valid TLS-RPT record: where reports go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsRptTxtRecord {
    rua: Vec<String>,
}

/// Why a domain's TLS-RPT record cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsRptTxtError {
    /// No record starts with `v=TLSRPTv1`.
    #[error("no record starts with v=TLSRPTv1")]
    NoRecord,
    /// More than one does (RFC 8460 §3: then none counts).
    #[error("{0} records start with v=TLSRPTv1; exactly one must")]
    SeveralRecords(usize),
    /// The record is not text.
    #[error("the record is not ASCII text")]
    NotText,
    /// No `rua=` field.
    #[error("the record has no rua= field (where to send reports)")]
    NoRua,
    /// A report address that is neither `mailto:` nor `https:`.
    #[error("report address {0:?} is neither mailto: nor https:")]
    BadUri(String),
    /// A field that is not `name=value`.
    #[error("field {0:?} is not name=value")]
    BadField(String),
}

impl TlsRptTxtRecord {
    /// The report addresses (`mailto:…`, `https://…`).
    pub fn rua(&self) -> &[String] {
        &self.rua
    }

    /// Parses one record.
    pub fn parse(record: &[u8]) -> Result<Self, TlsRptTxtError> {
        let text = std::str::from_utf8(record)
            .ok()
            .filter(|t| t.is_ascii())
            .ok_or(TlsRptTxtError::NotText)?;
        let mut fields = text.split(';').map(|f| f.trim_matches([' ', '\t']));
        if fields.next() != Some("v=TLSRPTv1") {
            return Err(TlsRptTxtError::NoRecord);
        }
        let mut rua = None;
        for field in fields.filter(|f| !f.is_empty()) {
            let (name, value) = field
                .split_once('=')
                .filter(|(n, v)| !n.is_empty() && !v.is_empty())
                .ok_or_else(|| TlsRptTxtError::BadField(field.to_owned()))?;
            if name == "rua" && rua.is_none() {
                let mut uris = Vec::new();
                for uri in value.split(',').map(|u| u.trim_matches([' ', '\t'])) {
                    let scheme_ok = uri
                        .get(..7)
                        .is_some_and(|s| s.eq_ignore_ascii_case("mailto:"))
                        && uri.len() > 7
                        || uri
                            .get(..8)
                            .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
                            && uri.len() > 8;
                    if !scheme_ok || uri.contains(char::is_whitespace) {
                        return Err(TlsRptTxtError::BadUri(uri.to_owned()));
                    }
                    uris.push(uri.to_owned());
                }
                rua = Some(uris);
            }
        }
        Ok(TlsRptTxtRecord {
            rua: rua.ok_or(TlsRptTxtError::NoRua)?,
        })
    }

    /// The one TLS-RPT record among a name's TXT records.
    pub fn select<'a>(records: impl IntoIterator<Item = &'a [u8]>) -> Result<Self, TlsRptTxtError> {
        let candidates: Vec<&[u8]> = records
            .into_iter()
            .filter(|r| r.starts_with(b"v=TLSRPTv1"))
            .collect();
        match candidates.as_slice() {
            [] => Err(TlsRptTxtError::NoRecord),
            [one] => Self::parse(one),
            more => Err(TlsRptTxtError::SeveralRecords(more.len())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_report_addresses() {
        let r = TlsRptTxtRecord::parse(
            b"v=TLSRPTv1; rua=mailto:tls@example.com, https://r.example.com/tlsrpt",
        )
        .unwrap();
        assert_eq!(
            r.rua(),
            ["mailto:tls@example.com", "https://r.example.com/tlsrpt"]
        );
        assert_eq!(
            TlsRptTxtRecord::parse(b"v=TLSRPTv1;").unwrap_err(),
            TlsRptTxtError::NoRua
        );
        assert_eq!(
            TlsRptTxtRecord::parse(b"v=TLSRPTv1; rua=http://x").unwrap_err(),
            TlsRptTxtError::BadUri("http://x".into())
        );
        assert_eq!(
            TlsRptTxtRecord::parse(b"v=STSv1; id=1").unwrap_err(),
            TlsRptTxtError::NoRecord
        );
        assert_eq!(
            TlsRptTxtRecord::select([
                &b"v=TLSRPTv1; rua=mailto:a@b"[..],
                b"v=TLSRPTv1; rua=mailto:c@d"
            ])
            .unwrap_err(),
            TlsRptTxtError::SeveralRecords(2)
        );
        assert!(TlsRptTxtRecord::select([&b"other"[..], b"v=TLSRPTv1;rua=mailto:a@b"]).is_ok());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = TlsRptTxtRecord::parse(&data);
        }

        #[test]
        fn generated_records_parse(
            uris in proptest::collection::vec("(mailto:[a-z]{1,8}@[a-z]{1,8}\\.test|https://[a-z]{1,8}\\.test/[a-z]{0,8})", 1..4),
            ext in proptest::option::of("[a-z]{1,6}=[a-z0-9]{1,6}"),
        ) {
            let mut text = format!("v=TLSRPTv1; rua={}", uris.join(","));
            if let Some(e) = ext {
                text.push_str("; ");
                text.push_str(&e);
            }
            let r = TlsRptTxtRecord::parse(text.as_bytes()).unwrap();
            prop_assert_eq!(r.rua(), uris.as_slice());
        }
    }
}
