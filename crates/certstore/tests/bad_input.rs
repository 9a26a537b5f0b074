//! Bad input gets a clear error and leaves the store exactly as it was:
//! truncated or garbage PEM/DER/PKCS#12, wrong passphrase, key mismatch,
//! non-FQDN names with the check on, missing store, read-only store.

mod common;

use std::os::unix::fs::PermissionsExt;

use portcullis_certstore::{CaListKind, Error, KeySpec, SelfSignedRequest, Store};

fn setup() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path().join("store")).unwrap();
    let mut req = SelfSignedRequest::new("mx1.example.com");
    req.key = KeySpec::EcdsaP256;
    store.create_self_signed("mx1", &req).unwrap();
    store.make_csr("mx1", None).unwrap();
    (dir, store)
}

/// Run `op`, require an error whose text contains `needle`, and require the
/// store directory to be byte-for-byte unchanged.
fn refused<T: std::fmt::Debug>(
    store: &Store,
    needle: &str,
    op: impl FnOnce() -> Result<T, Error>,
) -> Error {
    let before = common::snapshot(store.path());
    let err = op().expect_err("the operation must fail");
    assert!(
        err.to_string().contains(needle),
        "error {err:?} / {err} does not mention {needle:?}"
    );
    assert_eq!(
        common::snapshot(store.path()),
        before,
        "the store changed although {err} was reported"
    );
    err
}

#[test]
fn truncated_and_garbage_certificates() {
    let (_dir, store) = setup();
    let pem = store.export_pem("mx1", false).unwrap();
    let der = store.entry("mx1").unwrap().chain[0].to_vec();
    let truncated_pem = &pem.as_bytes()[..pem.len() / 2];
    refused(&store, "truncated", || {
        store.install_signed("mx1", truncated_pem, "signed.pem")
    });
    refused(
        &store,
        "signed.pem: no certificate or private key found",
        || store.install_signed("mx1", b"this is not a certificate", "signed.pem"),
    );
    refused(&store, "neither an X.509 certificate", || {
        store.install_signed("mx1", &der[..der.len() - 1], "signed.der")
    });
    let mut damaged = pem.clone().into_bytes();
    damaged[100] = b'!';
    refused(&store, "signed.pem", || {
        store.install_signed("mx1", &damaged, "signed.pem")
    });
    refused(&store, "contains no certificate", || {
        store.ca_import_custom(
            store.entry("mx1").unwrap().key.to_pem().as_bytes(),
            "ca.pem",
        )
    });
    refused(&store, "ca.pem", || store.ca_import_custom(b"", "ca.pem"));
    refused(&store, "bundle.pem", || {
        store.ca_update_system(b"-----BEGIN CERTIFICATE-----\nAAAA\n", "bundle.pem")
    });
    refused(&store, "no private key found", || {
        store.import_pem("x", pem.as_bytes(), None, "cert.pem", false)
    });
}

#[test]
fn truncated_garbage_and_wrong_passphrase_pkcs12() {
    let (_dir, store) = setup();
    let p12 = store.export_pkcs12("mx1", "right", false).unwrap();
    let e = refused(&store, "wrong passphrase", || {
        store.import_pkcs12("x", &p12, "wrong", "in.p12", false)
    });
    assert!(matches!(e, Error::WrongPassphrase { .. }));
    refused(&store, "in.p12", || {
        store.import_pkcs12("x", &p12[..p12.len() - 7], "right", "in.p12", false)
    });
    refused(&store, "in.p12", || {
        store.import_pkcs12("x", &p12[..20], "right", "in.p12", false)
    });
    refused(&store, "not a PKCS#12 file", || {
        store.import_pkcs12("x", b"garbage garbage", "right", "in.p12", false)
    });
    refused(&store, "empty passphrase", || {
        store.export_pkcs12("mx1", "", false)
    });
}

#[test]
fn key_mismatch_and_existing_names() {
    let (_dir, store) = setup();
    let other = Store::open_or_create(store.path().with_file_name("other")).unwrap();
    other
        .create_self_signed("y", &SelfSignedRequest::new("mx1.example.com"))
        .unwrap();
    let foreign = other.export_pem("y", false).unwrap();
    refused(&store, "does not match the private key of \"mx1\"", || {
        store.install_signed("mx1", foreign.as_bytes(), "y.pem")
    });
    let both = other.export_pem("y", true).unwrap();
    refused(&store, "already exists", || {
        store.import_pem("mx1", both.as_bytes(), None, "y.pem", false)
    });
    let mine = store.entry("mx1").unwrap().key.to_pem();
    refused(&store, "no certificate matches the private key", || {
        store.import_pem(
            "z",
            foreign.as_bytes(),
            Some(mine.as_bytes()),
            "y.pem",
            false,
        )
    });
    refused(&store, "no certificate named", || {
        store.install_signed("nope", foreign.as_bytes(), "y.pem")
    });
    refused(&store, "invalid certificate name", || {
        store.import_pem("../escape", both.as_bytes(), None, "y.pem", false)
    });
}

#[test]
fn names_countries_and_lifetimes_are_checked_before_anything_is_written() {
    let (_dir, store) = setup();
    let mut req = SelfSignedRequest::new("mail");
    refused(&store, "is not a fully qualified domain name", || {
        store.create_self_signed("new", &req)
    });
    req.common_name = "mx2.example.com".into();
    req.sans = vec!["localhost".into()];
    refused(&store, "subject alternative name \"localhost\"", || {
        store.create_self_signed("new", &req)
    });
    req.sans.clear();
    req.country = Some("EU".into());
    refused(&store, "two-letter ISO 3166", || {
        store.create_self_signed("new", &req)
    });
    req.country = Some("FR".into());
    req.days = 40_000;
    refused(&store, "out of range", || {
        store.create_self_signed("new", &req)
    });
    req.days = 30;
    refused(&store, "already exists", || {
        store.create_self_signed("mx1", &req)
    });
    // With the check off, a short name is accepted (lab setups).
    req.common_name = "mail".into();
    req.check_fqdn = false;
    store.create_self_signed("lab", &req).unwrap();
}

#[test]
fn missing_store_directory() {
    let dir = tempfile::tempdir().unwrap();
    let err = Store::open(dir.path().join("absent")).unwrap_err();
    assert!(matches!(err, Error::StoreMissing { .. }), "{err}");
    assert!(err.to_string().contains("does not exist"));
    assert!(!dir.path().join("absent").exists());
    // A directory that is not a store (and not empty) is not taken over.
    std::fs::write(dir.path().join("precious.txt"), b"x").unwrap();
    let err = Store::open_or_create(dir.path()).unwrap_err();
    assert!(
        err.to_string()
            .contains("not a Portcullis certificate store"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn read_only_store_refuses_every_change() {
    // Tests run as root, which ignores permission bits: the store itself
    // checks the owner-write bit of its directory before any write.
    let (_dir, store) = setup();
    let p12 = store.export_pkcs12("mx1", "pw", false).unwrap();
    let ca = store.export_pem("mx1", false).unwrap();
    let root = store.path().to_owned();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o500)).unwrap();
    let req = SelfSignedRequest::new("mx2.example.com");
    refused(&store, "read-only", || {
        store.create_self_signed("mx2", &req)
    });
    refused(&store, "read-only", || store.make_csr("mx1", None));
    refused(&store, "read-only", || {
        store.import_pkcs12("mx3", &p12, "pw", "a.p12", false)
    });
    refused(&store, "read-only", || store.delete("mx1"));
    refused(&store, "read-only", || {
        store.ca_set_enabled(CaListKind::System, false)
    });
    refused(&store, "read-only", || {
        store.ca_import_custom(ca.as_bytes(), "ca.pem")
    });
    // Reading still works.
    store.show("mx1", 30).unwrap();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700)).unwrap();
    store.delete("mx1").unwrap();
}
