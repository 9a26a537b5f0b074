//! `portcullis dane tlsa` and `portcullis dane verify`, run as the real
//! binary on certificates generated in the test: output format, verdicts and
//! exit codes (0 match, 1 no match, 2 bad input).

use std::path::Path;
use std::process::{Command, Output};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

fn portcullis(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .output()
        .expect("run portcullis")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Writes leaf.pem (leaf only) and chain.pem (leaf + CA) for mx.example.com.
fn write_chain(dir: &Path) {
    let mut cap = CertificateParams::new(Vec::<String>::new()).unwrap();
    cap.distinguished_name
        .push(DnType::CommonName, "CLI Test CA");
    cap.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(cap, KeyPair::generate().unwrap()).unwrap();
    let leaf = CertificateParams::new(vec!["mx.example.com".to_string()])
        .unwrap()
        .signed_by(&KeyPair::generate().unwrap(), &ca)
        .unwrap();
    std::fs::write(dir.join("leaf.pem"), leaf.pem()).unwrap();
    std::fs::write(dir.join("chain.pem"), format!("{}{}", leaf.pem(), ca.pem())).unwrap();
}

/// `dane tlsa` output: "<owner> IN TLSA u s m hex"; returns "u s m hex".
fn record_of(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout(out);
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields.len(), 7, "{line:?}");
    assert_eq!(&fields[1..3], ["IN", "TLSA"]);
    fields[3..].join(" ")
}

#[test]
fn tlsa_prints_zone_line() {
    let dir = tempfile::tempdir().unwrap();
    write_chain(dir.path());
    let leaf = dir.path().join("leaf.pem");
    let out = portcullis(&[
        "dane",
        "tlsa",
        "--usage",
        "3",
        "--selector",
        "1",
        "--matching",
        "1",
        "--name",
        "_25._tcp.mx.example.com",
        leaf.to_str().unwrap(),
    ]);
    let line = stdout(&out);
    assert!(
        line.starts_with("_25._tcp.mx.example.com. IN TLSA 3 1 1 "),
        "{line}"
    );
    let hex = line.split_whitespace().last().unwrap();
    assert_eq!(hex.len(), 64);
    // SHA-512 gives 128 hex digits.
    let out = portcullis(&["dane", "tlsa", "--matching", "2", leaf.to_str().unwrap()]);
    assert_eq!(
        record_of(&out).split_whitespace().last().unwrap().len(),
        128
    );
    // Unreadable input is exit 2.
    let out = portcullis(&[
        "dane",
        "tlsa",
        dir.path().join("missing.pem").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn verify_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    write_chain(dir.path());
    let chain = dir.path().join("chain.pem");
    let chain = chain.to_str().unwrap();
    let ee = record_of(&portcullis(&["dane", "tlsa", chain]));
    // Usage 2 defaults to the top of the chain: the CA.
    let ta = record_of(&portcullis(&["dane", "tlsa", "--usage", "2", chain]));

    let out = portcullis(&[
        "dane",
        "verify",
        "--tlsa",
        &ee,
        "--chain",
        chain,
        "--name",
        "mx.example.com",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("depth 0"), "{}", stdout(&out));

    let out = portcullis(&[
        "dane",
        "verify",
        "--tlsa",
        &ta,
        "--chain",
        chain,
        "--name",
        "mx.example.com",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("depth 1"), "{}", stdout(&out));

    // DANE-TA with the wrong name: no match, exit 1, names in the message.
    let out = portcullis(&[
        "dane",
        "verify",
        "--tlsa",
        &ta,
        "--chain",
        chain,
        "--name",
        "mx.other.net",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("mx.other.net"), "{}", stdout(&out));

    // DANE-EE with a wrong name: OpenSSL-style check by default, RFC 7672 with the flag.
    let out = portcullis(&[
        "dane",
        "verify",
        "--tlsa",
        &ee,
        "--chain",
        chain,
        "--name",
        "mx.other.net",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let out = portcullis(&[
        "dane",
        "verify",
        "--tlsa",
        &ee,
        "--chain",
        chain,
        "--name",
        "mx.other.net",
        "--no-ee-namecheck",
    ]);
    assert_eq!(out.status.code(), Some(0));

    // A set of several records, one matching.
    let wrong = format!("3 1 1 {}", "00".repeat(32));
    let out = portcullis(&[
        "dane",
        "verify",
        "--tlsa",
        &wrong,
        "--tlsa",
        &ee,
        "--chain",
        chain,
        "--name",
        "mx.example.com",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let out = portcullis(&[
        "dane",
        "verify",
        "--tlsa",
        &wrong,
        "--chain",
        chain,
        "--name",
        "mx.example.com",
    ]);
    assert_eq!(out.status.code(), Some(1));

    // All-unusable set: exit 1 with the RFC 7672 wording.
    let out = portcullis(&[
        "dane",
        "verify",
        "--tlsa",
        "3 1 1 00",
        "--chain",
        chain,
        "--name",
        "mx.example.com",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("TLS is mandatory"),
        "{}",
        stdout(&out)
    );

    // Bad input: exit 2.
    let out = portcullis(&[
        "dane",
        "verify",
        "--tlsa",
        "3 1 1 xyz",
        "--chain",
        chain,
        "--name",
        "mx.example.com",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let out = portcullis(&[
        "dane",
        "verify",
        "--tlsa",
        &ee,
        "--chain",
        "/nonexistent.pem",
        "--name",
        "mx.example.com",
    ]);
    assert_eq!(out.status.code(), Some(2));
    // Without a reference name nothing can be checked: a usage error.
    let out = portcullis(&["dane", "verify", "--tlsa", &ee, "--chain", chain]);
    assert_eq!(out.status.code(), Some(2));
}
