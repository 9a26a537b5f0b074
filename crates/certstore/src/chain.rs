//! Putting an uploaded bundle in order: leaf first, then each issuer, and
//! reporting what an operator gets wrong when pasting what the CA mailed
//! (the seeds' "ESA certificate misconfiguration" chapter): an intermediate
//! left out, the same intermediate pasted twice (typical after a renewal), or
//! a certificate that belongs to another chain.

use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::info::CertInfo;

/// A problem with a certificate chain. None of these stops an install, but
/// each one can make peers fail verification, so `show` keeps reporting it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ChainProblem {
    /// The top of the chain is issued by a CA that is neither in the chain nor
    /// in an enabled CA list.
    MissingIntermediate {
        /// Subject of the last certificate in the chain.
        last: String,
        /// The issuer we could not find.
        issuer: String,
    },
    /// The same certificate was supplied more than once; the copy was dropped.
    Duplicate {
        /// Subject of the duplicated certificate.
        subject: String,
        /// Its SHA-256 fingerprint.
        sha256: String,
    },
    /// A certificate that is not part of the leaf's chain; it was dropped.
    Unrelated {
        /// Its subject.
        subject: String,
        /// Its SHA-256 fingerprint.
        sha256: String,
    },
    /// An intermediate that is not marked as a CA (basicConstraints).
    NotACa {
        /// Its subject.
        subject: String,
    },
}

impl std::fmt::Display for ChainProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChainProblem::MissingIntermediate { last, issuer } => write!(
                f,
                "incomplete chain: {last} is issued by {issuer}, which is neither in the chain nor a trusted CA; add the intermediate certificate your CA provided"
            ),
            ChainProblem::Duplicate { subject, sha256 } => write!(
                f,
                "duplicate certificate {subject} (SHA-256 {sha256}) was supplied more than once; the extra copy was dropped"
            ),
            ChainProblem::Unrelated { subject, sha256 } => write!(
                f,
                "certificate {subject} (SHA-256 {sha256}) is not part of this certificate's chain; it was dropped"
            ),
            ChainProblem::NotACa { subject } => write!(
                f,
                "intermediate {subject} is not a CA certificate (no basicConstraints CA flag); peers will reject the chain"
            ),
        }
    }
}

/// A chain in leaf → intermediates order, with the problems found.
#[derive(Debug, Clone)]
pub struct OrderedChain {
    /// Leaf first, then each issuer in turn.
    pub certs: Vec<CertificateDer<'static>>,
    /// Parsed facts, parallel to `certs`.
    pub infos: Vec<CertInfo>,
    /// What was wrong with the input.
    pub problems: Vec<ChainProblem>,
}

/// Order `others` behind `leaf`. `is_trusted_issuer` answers whether a DER
/// subject name belongs to a CA in an enabled list (then the chain may end
/// there without a missing-intermediate warning).
pub fn order(
    leaf: CertificateDer<'static>,
    others: Vec<CertificateDer<'static>>,
    is_trusted_issuer: &dyn Fn(&CertInfo) -> bool,
) -> Result<OrderedChain> {
    let leaf_info = CertInfo::from_der(&leaf, "leaf certificate")?;
    let mut problems = Vec::new();
    let mut seen = vec![leaf_info.sha256.clone()];
    let mut pool: Vec<(CertificateDer<'static>, CertInfo)> = Vec::new();
    for (i, der) in others.into_iter().enumerate() {
        let info = CertInfo::from_der(&der, &format!("certificate {} of the bundle", i + 1))?;
        if seen.contains(&info.sha256) {
            if info.sha256 != leaf_info.sha256 {
                problems.push(ChainProblem::Duplicate {
                    subject: info.label(),
                    sha256: info.sha256.clone(),
                });
            }
            continue;
        }
        seen.push(info.sha256.clone());
        pool.push((der, info));
    }

    let mut certs = vec![leaf];
    let mut infos = vec![leaf_info];
    // Walk up from the leaf; a self-signed certificate is the top.
    while let Some(current) = infos.last().filter(|c| !c.self_signed) {
        let Some(pos) = pool.iter().position(|(_, cand)| current.issued_by(cand)) else {
            break;
        };
        let (der, info) = pool.remove(pos);
        if !info.is_ca {
            problems.push(ChainProblem::NotACa {
                subject: info.label(),
            });
        }
        certs.push(der);
        infos.push(info);
    }
    if let Some(top) = infos.last()
        && !top.self_signed
        && !is_trusted_issuer(top)
    {
        problems.push(ChainProblem::MissingIntermediate {
            last: top.label(),
            issuer: top.issuer.clone(),
        });
    }
    for (_, info) in pool {
        problems.push(ChainProblem::Unrelated {
            subject: info.label(),
            sha256: info.sha256,
        });
    }
    Ok(OrderedChain {
        certs,
        infos,
        problems,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

    fn ca(
        name: &str,
        parent: Option<&CertifiedIssuer<'static, KeyPair>>,
    ) -> CertifiedIssuer<'static, KeyPair> {
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, name);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        match parent {
            None => CertifiedIssuer::self_signed(p, key).unwrap(),
            Some(parent) => CertifiedIssuer::signed_by(p, key, parent).unwrap(),
        }
    }

    fn leaf(issuer: &CertifiedIssuer<'static, KeyPair>) -> CertificateDer<'static> {
        let mut p = CertificateParams::new(vec!["mx1.example.com".into()]).unwrap();
        p.distinguished_name
            .push(DnType::CommonName, "mx1.example.com");
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        p.signed_by(&key, issuer).unwrap().der().clone()
    }

    fn der(i: &CertifiedIssuer<'static, KeyPair>) -> CertificateDer<'static> {
        i.as_ref().der().clone()
    }

    /// `default` cases unless `PROPTEST_CASES` asks for another number (a long
    /// run before a release).
    fn cases(default: u32) -> u32 {
        std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(default)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(cases(24)))]
        /// Whatever order and duplication an operator pastes a chain in, the
        /// result is leaf, then each issuer in turn, with one duplicate note per extra copy.
        #[test]
        fn any_permutation_with_duplicates_is_ordered(
            depth in 1usize..4,
            shuffle in proptest::collection::vec(proptest::prelude::any::<u16>(), 0..8),
            dups in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3),
        ) {
            let root = ca("Root", None);
            let mut cas = vec![root];
            for i in 0..depth {
                let next = ca(&format!("Intermediate {i}"), cas.last());
                cas.push(next);
            }
            let leaf = leaf(cas.last().unwrap());
            let mut bundle: Vec<CertificateDer<'static>> = cas[1..].iter().map(der).collect();
            for d in &dups {
                let extra = bundle[usize::from(*d) % bundle.len()].clone();
                bundle.push(extra);
            }
            for (i, s) in shuffle.iter().enumerate() {
                let n = bundle.len();
                bundle.swap(i % n, usize::from(*s) % n);
            }
            let got = order(leaf.clone(), bundle, &|i: &CertInfo| i.issuer == "CN=Root").unwrap();
            let mut want = vec![leaf];
            want.extend(cas[1..].iter().rev().map(der));
            proptest::prop_assert_eq!(&got.certs, &want);
            let dup_notes = got.problems.iter().filter(|p| matches!(p, ChainProblem::Duplicate { .. })).count();
            proptest::prop_assert_eq!(dup_notes, dups.len());
            proptest::prop_assert_eq!(got.problems.len(), dups.len());
        }
    }

    #[test]
    fn orders_shuffled_bundle_and_flags_problems() {
        let root = ca("Root", None);
        let mid1 = ca("Intermediate 1", Some(&root));
        let mid2 = ca("Intermediate 2", Some(&mid1));
        let other = ca("Other CA", None);
        let leaf = leaf(&mid2);
        let trusted = |i: &CertInfo| i.issuer == "CN=Root";
        let got = order(
            leaf.clone(),
            vec![der(&mid1), der(&other), der(&mid2), der(&mid1)],
            &trusted,
        )
        .unwrap();
        assert_eq!(got.certs, vec![leaf.clone(), der(&mid2), der(&mid1)]);
        assert_eq!(got.problems.len(), 2, "{:?}", got.problems);
        assert!(
            matches!(&got.problems[0], ChainProblem::Duplicate { subject, .. } if subject == "CN=Intermediate 1")
        );
        assert!(
            matches!(&got.problems[1], ChainProblem::Unrelated { subject, .. } if subject == "CN=Other CA")
        );

        let got = order(leaf, vec![der(&mid2)], &trusted).unwrap();
        assert_eq!(
            got.problems,
            vec![ChainProblem::MissingIntermediate {
                last: "CN=Intermediate 2".into(),
                issuer: "CN=Intermediate 1".into()
            }]
        );
    }
}
