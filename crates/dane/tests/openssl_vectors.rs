//! Runs OpenSSL's DANE test vectors (`danetest.in`, `dane-cross.in`) through
//! [`match_chain`] with the expected verdicts and depths.
//!
//! The vectors are not in this repository: they are read from
//! `$PORTCULLIS_DANE_VECTORS` or `../shared/vectors/openssl-dane` next to
//! the checkout. Without them the test says so loudly and passes, unless
//! `PORTCULLIS_REQUIRE_VECTORS=1` (set by CI) makes their absence a failure.
//!
//! Harness settings follow OpenSSL's `test/danetest.c`: reference name
//! `example.com` (`server.example` for the cross case), digest agility on,
//! PKIX usages enabled with `danetest.pem` (resp. `cross-root.pem`) as the
//! trusted CA, and `nonamechecks` mapped to [`MatchOptions::check_dane_ee_names`]
//! (OpenSSL checks DANE-EE names unless told not to; RFC 7672 SMTP does not:
//! see `rfc7672_smtp_defaults_differ_on_case_54`).

use std::path::PathBuf;

use portcullis_dane::{
    MatchFailure, MatchOptions, ReferenceNames, TlsaRecord, TlsaSet, Verdict,
    certs_from_pem_or_der, match_chain,
};
use rustls_pki_types::{CertificateDer, UnixTime};

fn vectors_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("PORTCULLIS_DANE_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../../shared/vectors/openssl-dane"
            ))
        });
    if dir.join("danetest.in").is_file() {
        return Some(dir);
    }
    let msg = format!(
        "\n!!!!!!!! OpenSSL DANE vectors NOT FOUND at {} — vector test SKIPPED !!!!!!!!\n\
         set PORTCULLIS_DANE_VECTORS to the directory holding danetest.in\n",
        dir.display()
    );
    if std::env::var("PORTCULLIS_REQUIRE_VECTORS").as_deref() == Ok("1") {
        panic!("{msg}(PORTCULLIS_REQUIRE_VECTORS=1 makes this a failure)");
    }
    eprintln!("{msg}");
    None
}

#[derive(Debug)]
struct Case {
    number: usize,
    records: Vec<TlsaRecord>,
    chain: Vec<CertificateDer<'static>>,
    nonamechecks: bool,
    error: i32,
    depth: i32,
}

/// Parses OpenSSL's format: header `<ntlsa> <ncert> <nonamechecks> <err> <depth>`,
/// `ntlsa` record lines, then `ncert` PEM certificates (leaf first); text
/// between PEM blocks and `#` lines are ignored.
fn parse_cases(text: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut lines = text.lines().peekable();
    let mut number = 0;
    while let Some(line) = lines.next() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let h: Vec<i32> = t
            .split_whitespace()
            .map(|w| w.parse().expect("header number"))
            .collect();
        assert_eq!(h.len(), 5, "bad header line {t:?}");
        number += 1;
        let mut records = Vec::new();
        while records.len() < h[0] as usize {
            let l = lines.next().expect("TLSA line").trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            records.push(l.parse::<TlsaRecord>().expect("TLSA line parses"));
        }
        let mut pem = String::new();
        let mut certs = 0;
        while certs < h[1] as usize {
            let l = lines.next().expect("certificate line");
            if l.starts_with("-----BEGIN") {
                pem.push_str(l);
                pem.push('\n');
                for l in lines.by_ref() {
                    pem.push_str(l);
                    pem.push('\n');
                    if l.starts_with("-----END") {
                        break;
                    }
                }
                certs += 1;
            }
        }
        let chain = certs_from_pem_or_der(pem.as_bytes()).expect("PEM chain");
        assert_eq!(chain.len(), h[1] as usize);
        cases.push(Case {
            number,
            records,
            chain,
            nonamechecks: h[2] == 1,
            error: h[3],
            depth: h[4],
        });
    }
    cases
}

/// The verdict mapped onto OpenSSL's (verify error, match depth) pair.
fn openssl_outcome(v: &Verdict) -> (i32, i32) {
    match v {
        Verdict::Matched(m) => (0, m.depth() as i32),
        Verdict::Failed(MatchFailure::NoMatch { .. }) => (65, -1),
        Verdict::Failed(MatchFailure::ChainNotVerified { depth, .. }) => (20, *depth as i32),
        Verdict::Failed(MatchFailure::NameMismatch { depth, .. }) => (62, *depth as i32),
        other => panic!("verdict OpenSSL has no code for: {other}"),
    }
}

fn run_file(dir: &std::path::Path, file: &str, ca: &str, name: &str) -> usize {
    let text = std::fs::read_to_string(dir.join(file)).expect("read vectors");
    let ca = certs_from_pem_or_der(&std::fs::read(dir.join(ca)).expect("read CA")).expect("CA");
    let names = ReferenceNames::new([name]);
    let cases = parse_cases(&text);
    let mut failed = Vec::new();
    for c in &cases {
        let opts = MatchOptions {
            pkix_trust_anchors: Some(ca.clone()),
            check_dane_ee_names: !c.nonamechecks,
        };
        let set = TlsaSet::new(c.records.clone());
        let v = match_chain(&set, &c.chain, &names, UnixTime::now(), &opts);
        let got = openssl_outcome(&v);
        if got != (c.error, c.depth) {
            failed.push(format!(
                "{file} case {}: expected ({}, {}), got {got:?}: {v}",
                c.number, c.error, c.depth
            ));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} cases differ:\n{}",
        failed.len(),
        cases.len(),
        failed.join("\n")
    );
    cases.len()
}

#[test]
fn all_openssl_dane_vectors() {
    let Some(dir) = vectors_dir() else { return };
    let n = run_file(&dir, "danetest.in", "danetest.pem", "example.com");
    assert_eq!(n, 54, "danetest.in should hold 54 cases");
    let n = run_file(&dir, "dane-cross.in", "cross-root.pem", "server.example");
    assert_eq!(n, 1);
}

/// RFC 7672 §3.1.1: with SMTP defaults, DANE-EE ignores names, so case 54
/// (OpenSSL: error 62 because its default checks DANE-EE names) verifies.
#[test]
fn rfc7672_smtp_defaults_differ_on_case_54() {
    let Some(dir) = vectors_dir() else { return };
    let text = std::fs::read_to_string(dir.join("danetest.in")).expect("read vectors");
    let cases = parse_cases(&text);
    let c = cases.iter().find(|c| c.number == 54).expect("case 54");
    let v = match_chain(
        &TlsaSet::new(c.records.clone()),
        &c.chain,
        &ReferenceNames::new(["example.com"]),
        UnixTime::now(),
        &MatchOptions::default(),
    );
    assert_eq!(v.matched().map(|m| m.depth()), Some(0), "{v}");
    // And with SMTP defaults the PKIX cases are all-unusable sets.
    let c = cases.iter().find(|c| c.number == 23).expect("case 23");
    let v = match_chain(
        &TlsaSet::new(c.records.clone()),
        &c.chain,
        &ReferenceNames::new(["example.com"]),
        UnixTime::now(),
        &MatchOptions::default(),
    );
    assert!(matches!(v, Verdict::NoUsableRecords { .. }), "{v}");
}
