//! The DANE matching decision as one pure function: TLSA set + presented
//! chain + reference names + time + options → [`Verdict`].
//!
//! Rules (RFC 7671, RFC 7672 for SMTP):
//! - DANE-EE(3) matches the leaf only; names and dates are ignored (unless
//!   [`MatchOptions::check_dane_ee_names`] asks, as OpenSSL's default does).
//! - DANE-TA(2): a path from the leaf to a certificate or key a record
//!   matches. A `2 0 0` record may supply a certificate the server did not
//!   send; a `2 1 0` record supplies a bare key. Signatures are checked up to
//!   the anchor and validity below it (rustls-webpki path building, with the
//!   matched anchor as its only trust anchor), then the leaf's names.
//! - PKIX-TA(0)/PKIX-EE(1) only when [`MatchOptions::pkix_trust_anchors`]
//!   is set (RFC 6698 semantics); SMTP treats them as unusable.
//! - Precedence: DANE-EE, then DANE-TA at the lowest depth, then PKIX-EE,
//!   then PKIX-TA. Depths follow OpenSSL: 0 is the leaf; an anchor supplied
//!   as a full certificate sits one above the certificate it issued; a bare
//!   key reports the depth of the certificate it signed.

use std::cell::Cell;
use std::fmt;

use der::{Decode, Tagged};
use rustls_pki_types::{CertificateDer, Der, TrustAnchor, UnixTime};
use webpki::{EndEntityCert, KeyUsage, VerifiedPath};

use crate::cert::ParsedCert;
use crate::error::CertError;
use crate::names::ReferenceNames;
use crate::set::TlsaSet;
use crate::tlsa::{MatchingType, Selector, TlsaRecord, Unusable, Usage};

/// Options that change the matching rules. `Default` is RFC 7672 (SMTP).
#[derive(Debug, Clone, Default)]
pub struct MatchOptions {
    /// Trust anchors (CA certificates) for PKIX-TA/PKIX-EE records. `None`
    /// (the SMTP default) makes those usages unusable.
    pub pkix_trust_anchors: Option<Vec<CertificateDer<'static>>>,
    /// Also check the leaf's names for DANE-EE matches. RFC 7672 §3.1.1 says
    /// not to; OpenSSL does unless told otherwise.
    pub check_dane_ee_names: bool,
}

/// A successful match: which record authenticated the peer and at what depth.
///
/// Only the matcher creates one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaneMatch {
    record: TlsaRecord,
    depth: usize,
    name_checked: bool,
}

impl DaneMatch {
    /// The record that matched.
    pub fn record(&self) -> &TlsaRecord {
        &self.record
    }
    /// Depth of the match: 0 is the leaf (see the module docs for anchors
    /// that were not in the presented chain).
    pub fn depth(&self) -> usize {
        self.depth
    }
    /// Whether the leaf's names were checked against the reference names.
    pub fn name_checked(&self) -> bool {
        self.name_checked
    }
}

impl fmt::Display for DaneMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "matched TLSA {} ({}) at depth {}",
            short(&self.record),
            usage_name(self.record.usage()),
            self.depth
        )
    }
}

/// Why a usable TLSA set did not authenticate the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MatchFailure {
    /// The server presented no certificate.
    EmptyChain,
    /// The leaf certificate cannot be parsed.
    BadLeaf(CertError),
    /// No usable record matches any presented certificate or key.
    NoMatch {
        /// How many records were usable.
        usable: usize,
    },
    /// A record matched but the chain does not verify up to it (missing or
    /// wrong intermediate, bad signature, expired certificate below the
    /// anchor, …). OpenSSL reports these as errors such as 20.
    ChainNotVerified {
        /// The record that matched.
        record: TlsaRecord,
        /// Depth at which it matched.
        depth: usize,
        /// What rustls-webpki reported.
        detail: String,
    },
    /// The chain verified to an anchor but the leaf does not carry any of
    /// the reference names (OpenSSL error 62).
    NameMismatch {
        /// The record that matched.
        record: TlsaRecord,
        /// Depth at which it matched.
        depth: usize,
        /// Names in the leaf (SAN dNSNames, or CN without SAN).
        presented: Vec<String>,
        /// The names expected.
        reference: Vec<String>,
    },
}

impl fmt::Display for MatchFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmptyChain => f.write_str("the server presented no certificate"),
            Self::BadLeaf(e) => write!(f, "the server certificate cannot be read: {e}"),
            Self::NoMatch { usable } => write!(
                f,
                "none of the {usable} usable TLSA records matches the presented certificates"
            ),
            Self::ChainNotVerified {
                record,
                depth,
                detail,
            } => write!(
                f,
                "TLSA {} matched at depth {depth} but the chain does not verify up to it: {detail}",
                short(record)
            ),
            Self::NameMismatch {
                record,
                depth,
                presented,
                reference,
            } => write!(
                f,
                "TLSA {} matched at depth {depth} but the certificate names [{}] do not match [{}]",
                short(record),
                presented.join(", "),
                reference.join(", ")
            ),
        }
    }
}

/// The outcome of matching a chain against a TLSA set.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// The peer is authenticated by DANE.
    Matched(DaneMatch),
    /// The set has records but none is usable: TLS is mandatory but the peer
    /// cannot be authenticated (RFC 7672 §2.1.1). Distinct from [`Verdict::NoRecords`].
    NoUsableRecords {
        /// Each record with why it is unusable.
        unusable: Vec<(TlsaRecord, Unusable)>,
    },
    /// The set is empty: DANE does not apply.
    NoRecords,
    /// Usable records exist and the peer does not satisfy any of them.
    Failed(MatchFailure),
}

impl Verdict {
    /// The match, if authenticated.
    pub fn matched(&self) -> Option<&DaneMatch> {
        match self {
            Self::Matched(m) => Some(m),
            _ => None,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Matched(m) => write!(f, "{m}"),
            Self::NoUsableRecords { unusable } => {
                f.write_str("no usable TLSA records: TLS is mandatory but the server cannot be authenticated (RFC 7672 section 2.1.1)")?;
                for (r, why) in unusable {
                    write!(f, "; {} unusable: {why}", short(r))?;
                }
                Ok(())
            }
            Self::NoRecords => f.write_str("no TLSA records: DANE does not apply"),
            Self::Failed(e) => write!(f, "DANE authentication failed: {e}"),
        }
    }
}

fn usage_name(u: Usage) -> &'static str {
    match u {
        Usage::PkixTa => "PKIX-TA",
        Usage::PkixEe => "PKIX-EE",
        Usage::DaneTa => "DANE-TA",
        Usage::DaneEe => "DANE-EE",
        Usage::Unassigned(_) => "unassigned usage",
    }
}

/// The record as text, with long data shortened for messages.
fn short(r: &TlsaRecord) -> String {
    let s = r.to_string();
    if s.len() > 90 {
        format!("{}…", s.get(..80).unwrap_or(&s))
    } else {
        s
    }
}

/// Matches `chain` (leaf first, DER) against `set`.
///
/// `now` is used for validity of certificates below a DANE-TA anchor and for
/// PKIX validation; DANE-EE ignores it.
pub fn match_chain(
    set: &TlsaSet,
    chain: &[CertificateDer<'_>],
    names: &ReferenceNames,
    now: UnixTime,
    opts: &MatchOptions,
) -> Verdict {
    if set.is_empty() {
        return Verdict::NoRecords;
    }
    let classified = set.classify(opts.pkix_trust_anchors.is_some());
    // Duplicates (DNS servers do not always remove them) would only repeat
    // the same path building.
    let mut seen = std::collections::HashSet::new();
    let usable: Vec<&TlsaRecord> = classified
        .iter()
        .filter_map(|(r, why)| why.is_none().then_some(*r))
        .filter(|r| seen.insert(*r))
        .collect();
    if usable.is_empty() {
        return Verdict::NoUsableRecords {
            unusable: classified
                .into_iter()
                .filter_map(|(r, why)| why.map(|w| (r.clone(), w)))
                .collect(),
        };
    }
    let Some(leaf_der) = chain.first() else {
        return Verdict::Failed(MatchFailure::EmptyChain);
    };
    let leaf = match ParsedCert::parse(leaf_der, 0) {
        Ok(l) => l,
        Err(e) => return Verdict::Failed(MatchFailure::BadLeaf(e)),
    };
    // Each certificate is decoded (and hashed) once, however many records
    // the set holds: the work stays linear in records + certificates.
    let above_leaf: Vec<Option<ParsedCert>> = chain
        .iter()
        .enumerate()
        .skip(1)
        .map(|(i, c)| ParsedCert::parse(c, i).ok())
        .collect();
    let ctx = Ctx {
        chain,
        leaf: &leaf,
        above_leaf: &above_leaf,
        names,
        now,
    };
    let mut failures: Vec<MatchFailure> = Vec::new();

    // DANE-EE: the leaf alone.
    for r in usable.iter().filter(|r| r.usage() == Usage::DaneEe) {
        if leaf.matches(r) {
            match ctx.name_result(r, 0, opts.check_dane_ee_names) {
                Ok(m) => return Verdict::Matched(m),
                Err(f) => failures.push(f),
            }
        }
    }

    // DANE-TA: lowest depth wins.
    let mut best: Option<DaneMatch> = None;
    for r in usable.iter().filter(|r| r.usage() == Usage::DaneTa) {
        match ctx.dane_ta(r) {
            Some(Ok(m)) => keep_lowest(&mut best, m),
            Some(Err(f)) => failures.push(f),
            None => {}
        }
    }
    if let Some(m) = best {
        return Verdict::Matched(m);
    }

    if let Some(store) = &opts.pkix_trust_anchors {
        for r in usable.iter().filter(|r| r.usage() == Usage::PkixEe) {
            if let Some(res) = ctx.pkix(r, store, &usable) {
                match res {
                    Ok(m) => return Verdict::Matched(m),
                    Err(f) => failures.push(f),
                }
            }
        }
        let mut best: Option<DaneMatch> = None;
        for r in usable.iter().filter(|r| r.usage() == Usage::PkixTa) {
            match ctx.pkix(r, store, &usable) {
                Some(Ok(m)) => keep_lowest(&mut best, m),
                Some(Err(f)) => failures.push(f),
                None => {}
            }
        }
        if let Some(m) = best {
            return Verdict::Matched(m);
        }
    }

    // Report the most specific failure: a name mismatch means the chain was
    // otherwise fine; a chain failure means some record did match.
    let rank = |f: &MatchFailure| match f {
        MatchFailure::NameMismatch { depth, .. } => (0, *depth),
        MatchFailure::ChainNotVerified { depth, .. } => (1, *depth),
        _ => (2, 0),
    };
    failures.sort_by_key(rank);
    Verdict::Failed(
        failures
            .into_iter()
            .next()
            .unwrap_or(MatchFailure::NoMatch {
                usable: usable.len(),
            }),
    )
}

fn keep_lowest(best: &mut Option<DaneMatch>, m: DaneMatch) {
    if best.as_ref().is_none_or(|b| m.depth < b.depth) {
        *best = Some(m);
    }
}

struct Ctx<'a> {
    chain: &'a [CertificateDer<'a>],
    leaf: &'a ParsedCert,
    /// `chain[1..]` decoded; `None` where a certificate is unreadable.
    above_leaf: &'a [Option<ParsedCert>],
    names: &'a ReferenceNames,
    now: UnixTime,
}

/// Where a DANE-TA record's anchor comes from.
enum AnchorSource<'c> {
    /// A presented certificate at this index matched the record.
    Chain(usize, &'c CertificateDer<'c>),
    /// A full certificate carried in the record (`2 0 0`).
    RecordCert(CertificateDer<'c>),
    /// A bare public key carried in the record (`2 1 0`).
    RecordKey(&'c [u8]),
}

impl<'a> Ctx<'a> {
    fn name_result(
        &self,
        r: &TlsaRecord,
        depth: usize,
        check: bool,
    ) -> Result<DaneMatch, MatchFailure> {
        if check && !self.names.matches_any(&self.leaf.presented_names()) {
            return Err(MatchFailure::NameMismatch {
                record: r.clone(),
                depth,
                presented: self.leaf.presented_names(),
                reference: self.names.as_slice().to_vec(),
            });
        }
        Ok(DaneMatch {
            record: r.clone(),
            depth,
            name_checked: check,
        })
    }

    /// `None`: the record matches nothing at all.
    fn dane_ta(&self, r: &TlsaRecord) -> Option<Result<DaneMatch, MatchFailure>> {
        if self.leaf.matches(r) {
            // The leaf is itself the anchor: nothing to chain.
            return Some(self.name_result(r, 0, true));
        }
        let mut sources: Vec<AnchorSource<'_>> = Vec::new();
        for (i, (c, p)) in (1..).zip(self.chain.iter().skip(1).zip(self.above_leaf)) {
            if p.as_ref().is_some_and(|p| p.matches(r)) {
                sources.push(AnchorSource::Chain(i, c));
            }
        }
        if r.matching() == MatchingType::Exact {
            match r.selector() {
                Selector::FullCert => {
                    if !self.chain.iter().any(|c| c.as_ref() == r.data()) {
                        sources.push(AnchorSource::RecordCert(CertificateDer::from(r.data())));
                    }
                }
                // When the key's certificate was presented, the depth is
                // that certificate's; the bare key only stands in for an
                // anchor the server did not send.
                Selector::Spki if sources.is_empty() => {
                    sources.push(AnchorSource::RecordKey(r.data()))
                }
                Selector::Spki => {}
                Selector::Unassigned(_) => {}
            }
        }
        let mut first_failure: Option<MatchFailure> = None;
        let mut best: Option<usize> = None;
        for src in &sources {
            let outcome = match src {
                AnchorSource::Chain(i, c) => {
                    let Ok(ta) = webpki::anchor_from_trusted_cert(c) else {
                        continue;
                    };
                    self.path_to(&[ta], |n| n + 1).map_err(|e| (*i, e))
                }
                AnchorSource::RecordCert(c) => {
                    let Ok(ta) = webpki::anchor_from_trusted_cert(c) else {
                        continue;
                    };
                    self.path_to(&[ta], |n| n + 1)
                        .map_err(|e| (self.chain.len(), e))
                }
                AnchorSource::RecordKey(spki) => {
                    let Some(anchors) = self.bare_key_anchors(spki) else {
                        continue;
                    };
                    self.path_to(&anchors, |n| n)
                        .map_err(|e| (self.chain.len(), e))
                }
            };
            match outcome {
                Ok(depth) => {
                    if best.is_none_or(|b| depth < b) {
                        best = Some(depth);
                    }
                }
                Err((depth, e)) => {
                    // A key or certificate from DNS that signs nothing in the
                    // chain is simply "no match", not a broken chain.
                    if matches!(src, AnchorSource::Chain(..)) && first_failure.is_none() {
                        first_failure = Some(MatchFailure::ChainNotVerified {
                            record: r.clone(),
                            depth,
                            detail: webpki_message(&e),
                        });
                    }
                }
            }
        }
        match best {
            Some(depth) => Some(self.name_result(r, depth, true)),
            None => first_failure.map(Err),
        }
    }

    /// Trust anchors for a bare SubjectPublicKeyInfo: webpki chains by
    /// issuer name, so offer the key under every issuer name in the chain.
    fn bare_key_anchors(&self, spki: &'a [u8]) -> Option<Vec<TrustAnchor<'a>>> {
        let any = der::asn1::AnyRef::from_der(spki).ok()?;
        if any.tag() != der::Tag::Sequence {
            return None;
        }
        let content = any.value();
        let mut anchors: Vec<TrustAnchor<'a>> = Vec::new();
        for c in self.chain {
            let Ok(parsed) = EndEntityCert::try_from(c) else {
                continue;
            };
            let issuer = parsed.issuer().to_vec();
            if anchors
                .iter()
                .all(|a| a.subject.as_ref() != issuer.as_slice())
            {
                anchors.push(TrustAnchor {
                    subject: Der::from(issuer),
                    subject_public_key_info: Der::from_slice(content),
                    name_constraints: None,
                });
            }
        }
        Some(anchors)
    }

    /// Builds a verified path from the leaf through presented certificates
    /// to one of `anchors`; returns the depth computed from the number of
    /// intermediates used.
    fn path_to(
        &self,
        anchors: &[TrustAnchor<'_>],
        depth_of: impl Fn(usize) -> usize,
    ) -> Result<usize, webpki::Error> {
        let Some(leaf) = self.chain.first() else {
            return Err(webpki::Error::BadDer);
        };
        let intermediates = self.chain.get(1..).unwrap_or_default();
        let ee = EndEntityCert::try_from(leaf)?;
        let depth = Cell::new(0usize);
        let record_depth = |p: &VerifiedPath<'_>| -> Result<(), webpki::Error> {
            depth.set(depth_of(p.intermediate_certificates().count()));
            Ok(())
        };
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            anchors,
            intermediates,
            self.now,
            KeyUsage::server_auth(),
            None,
            Some(&record_depth),
        )?;
        Ok(depth.get())
    }

    /// PKIX-EE/PKIX-TA with RFC 6698 semantics against the trust store.
    /// Full certificates from `0 0 0` records serve as extra intermediates.
    fn pkix(
        &self,
        r: &TlsaRecord,
        store: &[CertificateDer<'static>],
        usable: &[&TlsaRecord],
    ) -> Option<Result<DaneMatch, MatchFailure>> {
        let anchored: Vec<(&CertificateDer<'static>, TrustAnchor<'_>)> = store
            .iter()
            .filter_map(|c| webpki::anchor_from_trusted_cert(c).ok().map(|ta| (c, ta)))
            .collect();
        let anchors: Vec<TrustAnchor<'_>> = anchored.iter().map(|(_, ta)| ta.clone()).collect();
        let mut intermediates: Vec<CertificateDer<'_>> =
            self.chain.get(1..).unwrap_or_default().to_vec();
        for extra in usable.iter().filter(|x| {
            x.usage() == Usage::PkixTa
                && x.selector() == Selector::FullCert
                && x.matching() == MatchingType::Exact
        }) {
            intermediates.push(CertificateDer::from(extra.data()));
        }
        let leaf_der = self.chain.first()?;
        let ee = match EndEntityCert::try_from(leaf_der) {
            Ok(ee) => ee,
            Err(e) => {
                return Some(Err(MatchFailure::BadLeaf(CertError::BadCertificate {
                    index: 0,
                    detail: webpki_message(&e),
                })));
            }
        };
        let matches = |der: &[u8]| {
            ParsedCert::parse(der, 0)
                .ok()
                .and_then(|p| p.association(r.selector(), r.matching()))
                .as_deref()
                == Some(r.data())
        };
        let leaf_matches = matches(leaf_der);
        if r.usage() == Usage::PkixEe && !leaf_matches {
            return None;
        }
        let found = Cell::new(None::<usize>);
        let check_path = |p: &VerifiedPath<'_>| -> Result<(), webpki::Error> {
            if r.usage() == Usage::PkixEe {
                found.set(Some(0));
                return Ok(());
            }
            let mut path: Vec<Vec<u8>> = vec![leaf_der.to_vec()];
            path.extend(p.intermediate_certificates().map(|c| c.der().to_vec()));
            let anchor = p.anchor();
            if let Some((c, _)) = anchored.iter().find(|(_, ta)| {
                ta.subject == anchor.subject
                    && ta.subject_public_key_info == anchor.subject_public_key_info
            }) {
                path.push(c.to_vec());
            }
            match path.iter().position(|d| matches(d)) {
                Some(depth) => {
                    found.set(Some(depth));
                    Ok(())
                }
                None => Err(webpki::Error::UnknownIssuer),
            }
        };
        let result = ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            &intermediates,
            self.now,
            KeyUsage::server_auth(),
            None,
            Some(&check_path),
        );
        match (result, found.get()) {
            (Ok(_), Some(depth)) => Some(self.name_result(r, depth, true)),
            (Err(e), _) if leaf_matches => Some(Err(MatchFailure::ChainNotVerified {
                record: r.clone(),
                depth: 0,
                detail: webpki_message(&e),
            })),
            _ => None,
        }
    }
}

/// A chain error below a DANE anchor, in words (the leaf is not a
/// self-signed certificate question here: the anchor is the TLSA record's).
fn webpki_message(e: &webpki::Error) -> String {
    crate::words::webpki_words(e, &CertificateDer::from(&[][..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair};

    fn self_signed(sans: Vec<String>, cn: &str) -> CertificateDer<'static> {
        let mut p = CertificateParams::new(sans).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.self_signed(&KeyPair::generate().unwrap())
            .unwrap()
            .der()
            .clone()
    }

    fn set(records: &[&str]) -> TlsaSet {
        records
            .iter()
            .map(|r| r.parse::<TlsaRecord>().unwrap())
            .collect()
    }

    fn run(set: &TlsaSet, chain: &[CertificateDer<'_>], names: &[&str]) -> Verdict {
        match_chain(
            set,
            chain,
            &ReferenceNames::new(names),
            UnixTime::now(),
            &MatchOptions::default(),
        )
    }

    #[test]
    fn empty_set_is_not_unusable_set() {
        let leaf = self_signed(vec!["mx.example.com".into()], "x");
        assert_eq!(
            run(
                &TlsaSet::default(),
                std::slice::from_ref(&leaf),
                &["mx.example.com"]
            ),
            Verdict::NoRecords
        );
        let v = run(
            &set(&["4 0 0 00", "3 1 1 00"]),
            &[leaf],
            &["mx.example.com"],
        );
        let Verdict::NoUsableRecords { unusable } = v else {
            panic!("{v}")
        };
        assert_eq!(unusable.len(), 2);
    }

    #[test]
    fn empty_chain_and_garbage_leaf_are_failures() {
        let s = set(&[&format!("3 1 1 {}", "00".repeat(32))]);
        assert_eq!(
            run(&s, &[], &["a.example"]),
            Verdict::Failed(MatchFailure::EmptyChain)
        );
        let v = run(
            &s,
            &[CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00])],
            &["a.example"],
        );
        assert!(
            matches!(v, Verdict::Failed(MatchFailure::BadLeaf(_))),
            "{v}"
        );
    }

    #[test]
    fn self_signed_leaf_as_dane_ta_checks_names() {
        let leaf = self_signed(vec!["mx.example.com".into()], "x");
        let r = crate::generate::tlsa_for_chain(std::slice::from_ref(&leaf), 0, 2, 0, 1).unwrap();
        let s: TlsaSet = [r].into_iter().collect();
        assert_eq!(
            run(&s, std::slice::from_ref(&leaf), &["mx.example.com"])
                .matched()
                .map(|m| m.depth()),
            Some(0)
        );
        let v = run(&s, &[leaf], &["other.example.com"]);
        assert!(
            matches!(
                v,
                Verdict::Failed(MatchFailure::NameMismatch { depth: 0, .. })
            ),
            "{v}"
        );
    }

    #[test]
    fn cn_is_used_only_without_dns_sans() {
        let cn_only = self_signed(vec![], "mx.example.com");
        let r =
            crate::generate::tlsa_for_chain(std::slice::from_ref(&cn_only), 0, 2, 1, 1).unwrap();
        let s: TlsaSet = [r].into_iter().collect();
        assert!(
            run(&s, std::slice::from_ref(&cn_only), &["mx.example.com"])
                .matched()
                .is_some()
        );
        let both = self_signed(vec!["other.example.com".into()], "mx.example.com");
        let r = crate::generate::tlsa_for_chain(std::slice::from_ref(&both), 0, 2, 1, 1).unwrap();
        let s: TlsaSet = [r].into_iter().collect();
        assert!(run(&s, &[both], &["mx.example.com"]).matched().is_none());
    }

    /// A large TLSA set from DNS against a long presented chain: each
    /// certificate is decoded once, not once per record (which was
    /// records × certificates decodes and hashes).
    #[test]
    fn many_records_and_a_long_chain_decode_each_certificate_once() {
        let chain: Vec<CertificateDer<'static>> = (0..24)
            .map(|i| self_signed(vec![format!("c{i}.example.com")], "x"))
            .collect();
        let records: Vec<TlsaRecord> = (0..300u32)
            .map(|i| {
                let mut data = [0u8; 32];
                data[..4].copy_from_slice(&i.to_be_bytes());
                TlsaRecord::new(2 + (i % 2) as u8, (i / 2 % 2) as u8, 1, data.to_vec())
            })
            .collect();
        let before = crate::cert::PARSES.with(|n| n.get());
        let v = run(&TlsaSet::new(records), &chain, &["mx.example.com"]);
        let parses = crate::cert::PARSES.with(|n| n.get()) - before;
        assert!(
            matches!(v, Verdict::Failed(MatchFailure::NoMatch { usable: 300 })),
            "{v}"
        );
        assert_eq!(parses, chain.len(), "certificates decoded");
    }

    #[test]
    fn duplicate_records_count_once() {
        let leaf = self_signed(vec!["mx.example.com".into()], "x");
        let bad = format!("3 1 1 {}", "00".repeat(32));
        let v = run(&set(&[&bad, &bad, &bad]), &[leaf], &["mx.example.com"]);
        assert!(
            matches!(v, Verdict::Failed(MatchFailure::NoMatch { usable: 1 })),
            "{v}"
        );
    }

    #[test]
    fn dane_ee_ignores_names_by_default_and_digest_agility_applies() {
        let leaf = self_signed(vec!["mx.example.com".into()], "x");
        let good256 =
            crate::generate::tlsa_for_chain(std::slice::from_ref(&leaf), 0, 3, 1, 1).unwrap();
        let bad512 = format!("3 1 2 {}", "00".repeat(64));
        // A matching SHA-256 record is ignored when a SHA-512 record exists.
        let s = set(&[&good256.to_string(), &bad512]);
        assert!(matches!(
            run(&s, std::slice::from_ref(&leaf), &["x"]),
            Verdict::Failed(MatchFailure::NoMatch { usable: 1 })
        ));
        let s = set(&[&good256.to_string()]);
        assert!(run(&s, &[leaf], &["unrelated.example"]).matched().is_some());
    }
}
