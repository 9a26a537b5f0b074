//! Interoperability with the real `openssl` command: it accepts our
//! certificates, chains, CSRs and PKCS#12 files, and we accept what it makes.

mod common;

use common::{openssl, openssl_ca, openssl_sign};
use portcullis_certstore::{ChainProblem, Error, KeySpec, SelfSignedRequest, Store};

fn request(key: KeySpec) -> SelfSignedRequest {
    let mut r = SelfSignedRequest::new("mx1.example.com");
    r.key = key;
    r.country = Some("JP".into());
    r.state = Some("Tokyo".into());
    r.locality = Some("Chiyoda".into());
    r.organization = Some("Example KK".into());
    r.unit = Some("Mail".into());
    r.sans = vec!["mail.example.com".into(), "192.0.2.25".into()];
    r
}

#[test]
fn openssl_reads_and_verifies_our_self_signed_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path().join("store")).unwrap();
    for (i, key) in [
        KeySpec::Rsa2048,
        KeySpec::Rsa3072,
        KeySpec::EcdsaP256,
        KeySpec::EcdsaP384,
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("e{i}");
        store.create_self_signed(&name, &request(key)).unwrap();
        let pem_file = format!("{name}.pem");
        std::fs::write(
            dir.path().join(&pem_file),
            store.export_pem(&name, false).unwrap(),
        )
        .unwrap();
        let text = openssl(dir.path(), &["x509", "-in", &pem_file, "-noout", "-text"]);
        assert!(
            text.contains("DNS:mx1.example.com, DNS:mail.example.com, IP Address:192.0.2.25"),
            "{text}"
        );
        assert!(
            text.contains("CN = mx1.example.com") || text.contains("CN=mx1.example.com"),
            "{text}"
        );
        assert!(text.contains("C = JP") || text.contains("C=JP"), "{text}");
        let want_key = match key {
            KeySpec::Rsa2048 => "Public-Key: (2048 bit)",
            KeySpec::Rsa3072 => "Public-Key: (3072 bit)",
            KeySpec::EcdsaP256 => "Public-Key: (256 bit)",
            KeySpec::EcdsaP384 => "Public-Key: (384 bit)",
            other => unreachable!("{other:?} is not in this test's list"),
        };
        assert!(text.contains(want_key), "{text}");
        // A self-signed certificate verifies against itself.
        let out = openssl(dir.path(), &["verify", "-CAfile", &pem_file, &pem_file]);
        assert!(out.contains(": OK"), "{out}");
        // Our fingerprint is openssl's.
        let fp = openssl(
            dir.path(),
            &[
                "x509",
                "-in",
                &pem_file,
                "-noout",
                "-fingerprint",
                "-sha256",
            ],
        );
        let view = store.show(&name, 30).unwrap();
        assert!(
            fp.contains(&view.chain[0].sha256),
            "{fp} vs {}",
            view.chain[0].sha256
        );
    }
}

#[test]
fn openssl_verifies_our_csr() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path().join("store")).unwrap();
    store
        .create_self_signed("mx1", &request(KeySpec::Rsa2048))
        .unwrap();
    let csr = store.make_csr("mx1", None).unwrap();
    std::fs::write(dir.path().join("mx1.csr"), &csr).unwrap();
    let out = openssl(
        dir.path(),
        &["req", "-in", "mx1.csr", "-verify", "-noout", "-text"],
    );
    assert!(
        out.contains("verify OK") || out.contains("self-signature verify OK"),
        "{out}"
    );
    assert!(out.contains("DNS:mx1.example.com"), "{out}");
    assert!(
        out.contains("O = Example KK") || out.contains("O=Example KK"),
        "{out}"
    );
    // The pending state is visible and the CSR can be fetched again.
    let view = store.show("mx1", 30).unwrap();
    assert_eq!(view.pending.unwrap().csr_pem, csr);
}

#[test]
fn openssl_ca_signs_our_csr_and_we_install_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    openssl_ca(d);
    let store = Store::open_or_create(d.join("store")).unwrap();
    store
        .create_self_signed("mx1", &request(KeySpec::EcdsaP256))
        .unwrap();
    std::fs::write(d.join("mx1.csr"), store.make_csr("mx1", None).unwrap()).unwrap();
    openssl_sign(d, "mx1.csr", "mx1.pem", "10");

    // Upload in the wrong order, intermediate twice, root included: the
    // store orders it and reports the duplicate.
    let mut upload = std::fs::read(d.join("int.pem")).unwrap();
    upload.extend(std::fs::read(d.join("mx1.pem")).unwrap());
    upload.extend(std::fs::read(d.join("int.pem")).unwrap());
    let report = store.install_signed("mx1", &upload, "upload.pem").unwrap();
    assert_eq!(report.entry.chain.len(), 2);
    assert_eq!(
        report.entry.chain[0].common_name.as_deref(),
        Some("mx1.example.com")
    );
    assert_eq!(
        report.entry.chain[1].common_name.as_deref(),
        Some("Interop Test Intermediate")
    );
    assert!(report.entry.pending.is_none());
    assert!(
        report
            .problems
            .iter()
            .any(|p| matches!(p, ChainProblem::Duplicate { .. })),
        "{:?}",
        report.problems
    );
    // The intermediate's issuer (the openssl root) is in no list: incomplete.
    assert!(
        report
            .problems
            .iter()
            .any(|p| matches!(p, ChainProblem::MissingIntermediate { .. }))
    );
    // ... and a verifying peer would reject it.
    let view = store.show("mx1", 5).unwrap();
    assert!(
        view.warnings
            .iter()
            .any(|w| w.kind == "untrusted" && w.message.contains("UnknownIssuer")),
        "{:?}",
        view.warnings
    );

    // openssl verifies the chain we export, leaf first.
    std::fs::write(d.join("chain.pem"), store.export_pem("mx1", false).unwrap()).unwrap();
    let out = openssl(
        d,
        &[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "chain.pem",
            "chain.pem",
        ],
    );
    assert!(out.contains("chain.pem: OK"), "{out}");

    // Once the root is in the custom list, the chain is complete and trusted,
    // without reinstalling: warnings are judged against the lists as they are now.
    store
        .ca_import_custom(&std::fs::read(d.join("root.pem")).unwrap(), "root.pem")
        .unwrap();
    let view = store.show("mx1", 5).unwrap();
    assert!(view.warnings.is_empty(), "{:?}", view.warnings);
    let report = store
        .install_signed(
            "mx1",
            &std::fs::read(d.join("chain.pem")).unwrap(),
            "chain.pem",
        )
        .unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let view = store.show("mx1", 5).unwrap();
    assert!(view.warnings.is_empty(), "{:?}", view.warnings);
}

#[test]
fn renewal_with_a_new_key_switches_key_on_install() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    openssl_ca(d);
    let store = Store::open_or_create(d.join("store")).unwrap();
    store
        .create_self_signed("mx1", &request(KeySpec::EcdsaP256))
        .unwrap();
    let old_key = store.show("mx1", 30).unwrap().key_spki_sha256;
    std::fs::write(
        d.join("new.csr"),
        store.make_csr("mx1", Some(KeySpec::EcdsaP384)).unwrap(),
    )
    .unwrap();
    // Until the answer arrives, the old key still serves.
    assert_eq!(store.show("mx1", 30).unwrap().key_spki_sha256, old_key);
    openssl_sign(d, "new.csr", "new.pem", "10");
    let mut upload = std::fs::read(d.join("new.pem")).unwrap();
    upload.extend(std::fs::read(d.join("int.pem")).unwrap());
    let report = store.install_signed("mx1", &upload, "new.pem").unwrap();
    assert!(report.switched_to_new_key);
    assert_eq!(report.entry.key.algorithm, "ECDSA P-384");
    assert_ne!(report.entry.key_spki_sha256, old_key);
}

#[test]
fn certificate_for_another_key_is_refused_and_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    openssl_ca(d);
    let store = Store::open_or_create(d.join("store")).unwrap();
    store
        .create_self_signed("mx1", &request(KeySpec::EcdsaP256))
        .unwrap();
    store.make_csr("mx1", None).unwrap();
    // A CSR from some other key (another server), signed by the same CA.
    openssl(
        d,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "other.key",
            "-out",
            "other.csr",
            "-subj",
            "/CN=mx1.example.com",
        ],
    );
    openssl_sign(d, "other.csr", "other.pem", "10");
    let before = common::snapshot(&d.join("store"));
    let err = store
        .install_signed(
            "mx1",
            &std::fs::read(d.join("other.pem")).unwrap(),
            "other.pem",
        )
        .unwrap_err();
    assert!(matches!(err, Error::KeyMismatch { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("does not match the private key of \"mx1\""),
        "{err}"
    );
    assert_eq!(common::snapshot(&d.join("store")), before);
}

#[test]
fn expired_chain_is_refused_and_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    openssl_ca(d);
    let store = Store::open_or_create(d.join("store")).unwrap();
    store
        .create_self_signed("mx1", &request(KeySpec::EcdsaP256))
        .unwrap();
    std::fs::write(d.join("mx1.csr"), store.make_csr("mx1", None).unwrap()).unwrap();
    // `-days -1`: OpenSSL 3.0 makes notAfter one day before notBefore (now), i.e. expired yesterday.
    openssl_sign(d, "mx1.csr", "old.pem", "-1");
    let before = common::snapshot(&d.join("store"));
    let err = store
        .install_signed("mx1", &std::fs::read(d.join("old.pem")).unwrap(), "old.pem")
        .unwrap_err();
    assert!(matches!(err, Error::NotValidNow { .. }), "{err}");
    assert!(err.to_string().contains("it expired on "), "{err}");
    assert_eq!(common::snapshot(&d.join("store")), before);
}

#[test]
fn openssl_reads_our_pkcs12_exports() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let store = Store::open_or_create(d.join("store")).unwrap();
    store
        .create_self_signed("mx1", &request(KeySpec::Rsa2048))
        .unwrap();
    let fp = store.show("mx1", 30).unwrap().chain[0].sha256.clone();
    for legacy in [false, true] {
        let p12 = store.export_pkcs12("mx1", "correct horse", legacy).unwrap();
        std::fs::write(d.join("out.p12"), p12).unwrap();
        let mut args = vec![
            "pkcs12",
            "-in",
            "out.p12",
            "-passin",
            "pass:correct horse",
            "-nodes",
            "-out",
            "dump.pem",
        ];
        if legacy {
            // OpenSSL 3 needs the legacy provider to decrypt 3DES/RC2 PKCS#12.
            args.push("-legacy");
        }
        openssl(d, &args);
        let dump = std::fs::read_to_string(d.join("dump.pem")).unwrap();
        assert!(dump.contains("-----BEGIN PRIVATE KEY-----"), "{dump}");
        assert!(dump.contains("-----BEGIN CERTIFICATE-----"), "{dump}");
        let fp_out = openssl(
            d,
            &[
                "x509",
                "-in",
                "dump.pem",
                "-noout",
                "-fingerprint",
                "-sha256",
            ],
        );
        assert!(fp_out.contains(&fp), "{fp_out}");
        // And openssl says the key belongs to the certificate.
        let m1 = openssl(d, &["x509", "-in", "dump.pem", "-noout", "-pubkey"]);
        let m2 = openssl(d, &["pkey", "-in", "dump.pem", "-pubout"]);
        assert_eq!(m1, m2);
    }
}

#[test]
fn we_import_pkcs12_written_by_openssl_default_and_legacy() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    openssl_ca(d);
    let store = Store::open_or_create(d.join("store")).unwrap();
    store
        .ca_import_custom(&std::fs::read(d.join("root.pem")).unwrap(), "root.pem")
        .unwrap();
    openssl(
        d,
        &[
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=mx2.example.com",
            "-addext",
            "subjectAltName=DNS:mx2.example.com",
        ],
    );
    openssl_sign(d, "leaf.csr", "leaf.pem", "10");
    for (i, legacy) in [false, true].into_iter().enumerate() {
        let mut args = vec![
            "pkcs12",
            "-export",
            "-in",
            "leaf.pem",
            "-inkey",
            "leaf.key",
            "-certfile",
            "int.pem",
            "-passout",
            "pass:s3cret",
            "-name",
            "mx2",
            "-out",
            "in.p12",
        ];
        if legacy {
            args.push("-legacy");
        }
        openssl(d, &args);
        let data = std::fs::read(d.join("in.p12")).unwrap();
        let before = common::snapshot(&d.join("store"));
        let err = store
            .import_pkcs12("x", &data, "wrong", "in.p12", false)
            .unwrap_err();
        assert!(
            matches!(err, Error::WrongPassphrase { .. }),
            "legacy={legacy}: {err}"
        );
        assert_eq!(
            common::snapshot(&d.join("store")),
            before,
            "a wrong passphrase must change nothing"
        );

        let name = format!("mx2-{i}");
        let report = store
            .import_pkcs12(&name, &data, "s3cret", "in.p12", false)
            .unwrap();
        assert_eq!(report.entry.chain.len(), 2, "legacy={legacy}");
        assert_eq!(
            report.entry.chain[0].common_name.as_deref(),
            Some("mx2.example.com")
        );
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(report.entry.key.algorithm, "RSA");
        assert_eq!(report.entry.key.bits, 2048);
    }
}

#[test]
fn we_import_openssl_pem_keys_in_every_form() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let store = Store::open_or_create(d.join("store")).unwrap();
    // PKCS#1 RSA, SEC1 EC and PKCS#8 keys, as different openssl commands write them.
    openssl(d, &["genrsa", "-traditional", "-out", "rsa1.key", "2048"]);
    openssl(
        d,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "ec.key",
        ],
    );
    openssl(
        d,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-out",
            "p8.key",
        ],
    );
    for (i, key) in ["rsa1.key", "ec.key", "p8.key"].into_iter().enumerate() {
        openssl(
            d,
            &[
                "req",
                "-new",
                "-x509",
                "-key",
                key,
                "-subj",
                "/CN=mx3.example.com",
                "-days",
                "5",
                "-out",
                "c.pem",
            ],
        );
        let head = std::fs::read_to_string(d.join(key)).unwrap();
        assert!(head.starts_with("-----BEGIN"), "{head}");
        let report = store
            .import_pem(
                &format!("k{i}"),
                &std::fs::read(d.join("c.pem")).unwrap(),
                Some(&std::fs::read(d.join(key)).unwrap()),
                "c.pem",
                false,
            )
            .unwrap();
        assert_eq!(
            report.entry.chain[0].common_name.as_deref(),
            Some("mx3.example.com")
        );
        // Exported as PKCS#8, openssl agrees it matches the certificate.
        std::fs::write(
            d.join("back.pem"),
            store.export_pem(&format!("k{i}"), true).unwrap(),
        )
        .unwrap();
        assert_eq!(
            openssl(d, &["x509", "-in", "back.pem", "-noout", "-pubkey"]),
            openssl(d, &["pkey", "-in", "back.pem", "-pubout"])
        );
    }
}
