//! Property tests: the parsers never panic on any input, and a record
//! generated from a chain always matches that chain at the expected depth,
//! whatever unrelated records share the set.

use std::sync::OnceLock;

use portcullis_dane::generate::tlsa_for_chain;
use portcullis_dane::pki_types::{CertificateDer, UnixTime};
use portcullis_dane::{MatchOptions, ReferenceNames, TlsaRecord, TlsaSet, Verdict, match_chain};
use proptest::prelude::*;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

/// leaf (mx.example.com) ← intermediate ← root, all presented.
fn chain() -> &'static Vec<CertificateDer<'static>> {
    static CHAIN: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    CHAIN.get_or_init(|| {
        let ca = |cn: &str| {
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            p.distinguished_name.push(DnType::CommonName, cn);
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p
        };
        let root =
            CertifiedIssuer::self_signed(ca("P Root"), KeyPair::generate().unwrap()).unwrap();
        let inter =
            CertifiedIssuer::signed_by(ca("P Inter"), KeyPair::generate().unwrap(), &root).unwrap();
        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["mx.example.com".to_string()])
            .unwrap()
            .signed_by(&key, &inter)
            .unwrap();
        vec![leaf.der().clone(), inter.der().clone(), root.der().clone()]
    })
}

proptest! {
    #[test]
    fn presentation_parser_never_panics(s in "\\PC*") {
        let _ = s.parse::<TlsaRecord>();
    }

    #[test]
    fn presentation_parser_never_panics_on_near_misses(
        u in "[0-9]{1,4}", sel in "[0-9x]{1,3}", m in "[0-9]{1,3}", hex in "[0-9a-fA-F ()g]{0,80}"
    ) {
        if let Ok(r) = format!("{u} {sel} {m} {hex}").parse::<TlsaRecord>() {
            prop_assert_eq!(r.to_string().parse::<TlsaRecord>(), Ok(r.clone()));
        }
    }

    #[test]
    fn wire_parser_never_panics_and_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        match TlsaRecord::from_wire(&bytes) {
            Ok(r) => prop_assert_eq!(r.to_wire(), bytes),
            Err(_) => prop_assert!(bytes.len() < 3),
        }
    }

    #[test]
    fn generated_record_matches_at_its_depth(
        depth in 0usize..3,
        dane_ee in any::<bool>(),
        selector in 0u8..2,
        matching in 0u8..3,
        noise in proptest::collection::vec(
            (any::<u8>(), any::<u8>(), any::<u8>(), proptest::collection::vec(any::<u8>(), 0..70)),
            0..4,
        ),
    ) {
        let chain = chain();
        // DANE-EE only makes sense for the leaf.
        let usage = if dane_ee && depth == 0 { 3 } else { 2 };
        let record = tlsa_for_chain(chain, depth, usage, selector, matching).unwrap();
        let mut records: Vec<TlsaRecord> =
            noise.into_iter().map(|(u, s, m, d)| TlsaRecord::new(u, s, m, d)).collect();
        records.push(record.clone());
        let set = TlsaSet::new(records);
        // A random well-formed SHA-512 sibling would (rightly) retire a
        // SHA-256 record under digest agility; such sets are not this property.
        prop_assume!(set.usable(false).contains(&&record));
        let v = match_chain(&set, chain, &ReferenceNames::new(["mx.example.com"]), UnixTime::now(), &MatchOptions::default());
        match &v {
            Verdict::Matched(m) => {
                prop_assert_eq!(m.depth(), depth, "{}", v);
                prop_assert_eq!(m.record(), &record);
            }
            other => prop_assert!(false, "expected a match at depth {depth}, got {other}"),
        }
    }

    #[test]
    fn anchor_from_dns_matches_above_presented_chain(selector in 0u8..2) {
        // The root is published in DNS (`2 0 0` or `2 1 0`) but not sent.
        let chain = chain();
        let presented = &chain[..2];
        let record = tlsa_for_chain(chain, 2, 2, selector, 0).unwrap();
        let v = match_chain(&TlsaSet::new(vec![record]), presented, &ReferenceNames::new(["mx.example.com"]), UnixTime::now(), &MatchOptions::default());
        // A full certificate sits above the intermediate (depth 2); a bare
        // key reports the depth of the certificate it signed (1), as OpenSSL does.
        let expected = if selector == 0 { 2 } else { 1 };
        prop_assert_eq!(v.matched().map(|m| m.depth()), Some(expected), "{}", v);
    }
}
