//! TLSA record generation for operators who publish their own records:
//! pick a certificate in a chain and compute the association data for any
//! usage, selector and matching type.

use rustls_pki_types::CertificateDer;

use crate::cert::ParsedCert;
use crate::error::CertError;
use crate::tlsa::{MatchingType, Selector, TlsaRecord, Usage};

/// The record for `chain[depth]` with the given field values.
///
/// Usage is not checked against depth (a `2 x x` record for the leaf is
/// legal if odd); unassigned selector or matching values are refused since
/// nothing could be computed for them.
pub fn tlsa_for_chain(
    chain: &[CertificateDer<'_>],
    depth: usize,
    usage: u8,
    selector: u8,
    matching: u8,
) -> Result<TlsaRecord, CertError> {
    let der = chain.get(depth).ok_or_else(|| {
        CertError::Empty(format!(" at depth {depth} (chain has {})", chain.len()))
    })?;
    let parsed = ParsedCert::parse(der, depth)?;
    let sel = Selector::from(selector);
    let mt = MatchingType::from(matching);
    if let Usage::Unassigned(n) = Usage::from(usage) {
        return Err(CertError::Unsupported(format!(
            "certificate usage {n} is not assigned (0-3)"
        )));
    }
    if let Selector::Unassigned(n) = sel {
        return Err(CertError::Unsupported(format!(
            "selector {n} is not assigned (0-1)"
        )));
    }
    if let MatchingType::Unassigned(n) = mt {
        return Err(CertError::Unsupported(format!(
            "matching type {n} is not assigned (0-2)"
        )));
    }
    let data = parsed
        .association(sel, mt)
        .ok_or_else(|| CertError::Unsupported("no association data".into()))?;
    Ok(TlsaRecord::new(usage, sel, mt, data))
}

/// A zone-file line: `<name> IN TLSA u s m hex` (name defaults to `@`).
pub fn zone_line(record: &TlsaRecord, name: Option<&str>) -> String {
    let owner = match name {
        Some(n) if n.ends_with('.') => n.to_string(),
        Some(n) => format!("{n}."),
        None => "@".to_string(),
    };
    format!("{owner} IN TLSA {record}")
}
