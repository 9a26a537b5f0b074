//! Fuzzes the TLSA RDATA (wire) parser and the matcher fed with the parsed
//! record and a presented chain: nothing from DNS or the peer may panic.
//!
//! Input: a flags byte (1: check DANE-EE names; 2: the real CA is a PKIX
//! trust anchor; 4: the reference name is the real leaf's), the RDATA length
//! (u16, big-endian), the RDATA, then the chain as concatenated DER
//! certificates (the seeds use the real leaf and CA below).
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use portcullis_dane::pki_types::{CertificateDer, UnixTime};
use portcullis_dane::{MatchOptions, ReferenceNames, TlsaRecord, TlsaSet, match_chain};

/// The CA of `seeds/make.sh`'s run, which issued the leaf in the seeds.
const REAL_CA: &[u8] = include_bytes!("pkcs12_pool/ca.der");
/// 2027-01-15, inside the validity of the seeds' certificates.
const NOW: Duration = Duration::from_secs(1_800_000_000);

fuzz_target!(|data: &[u8]| {
    let [flags, hi, lo, rest @ ..] = data else {
        return;
    };
    let cut = usize::from(u16::from_be_bytes([*hi, *lo])).min(rest.len());
    let (rdata, certs) = rest.split_at(cut);
    let Ok(record) = TlsaRecord::from_wire(rdata) else {
        return;
    };
    assert_eq!(record.to_wire(), rdata);
    let set = TlsaSet::new(vec![record.clone(), record]);
    let chain: Vec<CertificateDer<'_>> = der_items(certs).map(CertificateDer::from).collect();
    let options = MatchOptions {
        check_dane_ee_names: flags & 1 != 0,
        pkix_trust_anchors: (flags & 2 != 0).then(|| vec![CertificateDer::from(REAL_CA)]),
    };
    let name = if flags & 4 != 0 {
        "mx1.example.com"
    } else {
        "mx.example.net"
    };
    let verdict = match_chain(
        &set,
        &chain,
        &ReferenceNames::new([name]),
        UnixTime::since_unix_epoch(NOW),
        &options,
    );
    if let Some(m) = verdict.matched() {
        // The anchor is in the chain or, carried by the record, just above it.
        assert!(m.depth() <= chain.len(), "{verdict}");
    }
    let _ = verdict.to_string();
});

/// Splits concatenated DER items by their outer length; what does not parse
/// as a header stays one last item. By hand rather than with `der`'s reader,
/// which refuses non-minimal lengths: here they must reach the matcher.
fn der_items(mut bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        if bytes.is_empty() {
            return None;
        }
        let end = der_len(bytes).map_or(bytes.len(), |n| n.min(bytes.len()));
        let (item, rest) = bytes.split_at(end);
        bytes = rest;
        Some(item)
    })
}

/// Header plus content length of the DER item at the start of `b`.
fn der_len(b: &[u8]) -> Option<usize> {
    let first = *b.get(1)?;
    if first < 0x80 {
        return Some(2 + usize::from(first));
    }
    let n = usize::from(first & 0x7f);
    if n == 0 || n > 3 {
        return None;
    }
    let len = b
        .get(2..2 + n)?
        .iter()
        .fold(0, |acc, x| acc << 8 | usize::from(*x));
    Some(2 + n + len)
}
