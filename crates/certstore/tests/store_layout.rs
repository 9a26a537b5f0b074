//! The on-disk contract: owner-only modes, one file per entry, an interrupted
//! write (a leftover temporary file) never visible, old state kept until the
//! rename; the demonstration certificate; expiry queries; CA list export.

use std::os::unix::fs::PermissionsExt;

use portcullis_certstore::{
    CaListKind, DEMO_ENTRY, ExpirySeverity, KeySpec, SelfSignedRequest, Store, Timestamp,
};

fn req(cn: &str, days: u32) -> SelfSignedRequest {
    let mut r = SelfSignedRequest::new(cn);
    r.key = KeySpec::EcdsaP256;
    r.days = days;
    r
}

#[test]
fn files_are_owner_only_and_one_per_entry() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path().join("s")).unwrap();
    store
        .create_self_signed("mx1", &req("mx1.example.com", 30))
        .unwrap();
    store.ca_set_enabled(CaListKind::System, false).unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(store.path()), 0o700);
    assert_eq!(mode(&store.path().join("entries")), 0o700);
    assert_eq!(mode(&store.path().join("entries/mx1.json")), 0o600);
    assert_eq!(mode(&store.path().join("ca.json")), 0o600);
    let names: Vec<_> = std::fs::read_dir(store.path().join("entries"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("mx1.json")]);
}

#[test]
fn interrupted_write_leaves_old_state() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path().join("s")).unwrap();
    store
        .create_self_signed("mx1", &req("mx1.example.com", 30))
        .unwrap();
    let before = store.show("mx1", 30).unwrap();
    // A crash after writing the temporary file and before the rename leaves
    // exactly this behind: a half-written temp file next to the old entry.
    let tmp = store.path().join("entries/.tmp-4242-0-mx1.json");
    std::fs::write(
        &tmp,
        b"{\"format\":1,\"name\":\"mx1\",\"key_pem\":\"-----BEGIN PRI",
    )
    .unwrap();
    let after = store.show("mx1", 30).unwrap();
    assert_eq!(after.chain[0].sha256, before.chain[0].sha256);
    assert_eq!(store.names().unwrap(), vec!["mx1".to_owned()]);
    // The next write cleans it up and succeeds.
    store.make_csr("mx1", None).unwrap();
    assert!(!tmp.exists());
}

#[test]
fn damaged_entry_file_is_reported_not_panicked_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path().join("s")).unwrap();
    std::fs::write(
        store.path().join("entries/bad.json"),
        b"{\"format\": 1, \"name\"",
    )
    .unwrap();
    let err = store.show("bad", 30).unwrap_err();
    assert!(err.to_string().contains("is damaged"), "{err}");
}

#[test]
fn demo_certificate_is_created_once_and_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path().join("s")).unwrap();
    let first = store.demo_certificate("gateway.example.net").unwrap();
    let again = store.demo_certificate("other.example.net").unwrap();
    assert!(first.demo);
    assert_eq!(first.chain, again.chain, "generated on first use only");
    let view = store.show(DEMO_ENTRY, 30).unwrap();
    assert!(
        view.warnings.iter().any(|w| w.kind == "demo"),
        "{:?}",
        view.warnings
    );
    // Usable as a server certificate.
    store
        .server_config(DEMO_ENTRY, &Default::default())
        .unwrap();
}

#[test]
fn expiry_query_sorts_and_grades() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path().join("s")).unwrap();
    store
        .create_self_signed("soon", &req("a.example.com", 3))
        .unwrap();
    store
        .create_self_signed("later", &req("b.example.com", 20))
        .unwrap();
    store
        .create_self_signed("fine", &req("c.example.com", 365))
        .unwrap();
    let now = Timestamp::now();
    let got = store.expiring_within(30, now).unwrap();
    let names: Vec<_> = got.iter().map(|n| (n.name.as_str(), n.severity)).collect();
    assert_eq!(
        names,
        vec![
            ("soon", ExpirySeverity::Critical),
            ("later", ExpirySeverity::Warning)
        ]
    );
    // A year from now everything has expired.
    let later = Timestamp {
        unix: now.unix + 400 * 86_400,
    };
    assert!(
        store
            .expiring_within(30, later)
            .unwrap()
            .iter()
            .all(|n| n.severity == ExpirySeverity::Expired)
    );
    let view = store.show("soon", 30).unwrap();
    assert!(
        view.warnings.iter().any(|w| w.kind == "expiring"),
        "{:?}",
        view.warnings
    );
}

#[test]
fn system_list_can_be_disabled_updated_reset_and_exported() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path().join("s")).unwrap();
    let shipped = store.ca_list(CaListKind::System).unwrap();
    assert!(
        shipped.enabled && shipped.certs.len() > 100,
        "{}",
        shipped.certs.len()
    );
    let exported = store.ca_export(CaListKind::System).unwrap();
    assert_eq!(
        exported.matches("-----BEGIN CERTIFICATE-----").count(),
        shipped.certs.len()
    );
    // Update from a bundle holding the first 10 roots.
    let ten: String = exported
        .split_inclusive("-----END CERTIFICATE-----\n")
        .take(10)
        .collect();
    assert_eq!(
        store
            .ca_update_system(ten.as_bytes(), "bundle.pem")
            .unwrap(),
        10
    );
    let updated = store.ca_list(CaListKind::System).unwrap();
    assert_eq!(updated.certs.len(), 10);
    assert!(updated.source.contains("bundle.pem"));
    store.ca_set_enabled(CaListKind::System, false).unwrap();
    assert!(!store.ca_list(CaListKind::System).unwrap().enabled);
    assert!(store.trusted_cas().unwrap().is_empty());
    store.ca_reset_system().unwrap();
    store.ca_set_enabled(CaListKind::System, true).unwrap();
    assert_eq!(
        store.ca_list(CaListKind::System).unwrap().certs.len(),
        shipped.certs.len()
    );
}

#[test]
fn custom_list_import_dedupes_and_deletes_by_index_or_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path().join("s")).unwrap();
    let system = store.ca_export(CaListKind::System).unwrap();
    let three: String = system
        .split_inclusive("-----END CERTIFICATE-----\n")
        .take(3)
        .collect();
    let report = store
        .ca_import_custom(three.as_bytes(), "three.pem")
        .unwrap();
    assert_eq!(report.added.len(), 3);
    let report = store
        .ca_import_custom(three.as_bytes(), "three.pem")
        .unwrap();
    assert_eq!((report.added.len(), report.already_present), (0, 3));
    let list = store.ca_list(CaListKind::Custom).unwrap();
    let second = list.certs[1].info.clone();
    let removed = store.ca_delete_custom("2").unwrap();
    assert_eq!(removed.sha256, second.sha256);
    let third_fp = list.certs[2].info.sha256.to_lowercase().replace(':', "");
    store.ca_delete_custom(&third_fp[..12]).unwrap();
    let left = store.ca_list(CaListKind::Custom).unwrap();
    assert_eq!(left.certs.len(), 1);
    assert_eq!(left.certs[0].info.sha256, list.certs[0].info.sha256);
    assert!(store.ca_delete_custom("7").is_err());
    assert!(
        store
            .ca_delete_custom("xyz")
            .unwrap_err()
            .to_string()
            .contains("neither an index")
    );
}

#[test]
fn store_creation_interrupted_before_the_marker_is_finished_next_time() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("s");
    // What a crash between mkdir and writing the marker leaves behind.
    std::fs::create_dir_all(root.join("entries")).unwrap();
    std::fs::write(root.join(".tmp-1-0-portcullis-store.json"), b"{\"for").unwrap();
    assert!(Store::open(&root).is_err());
    let store = Store::open_or_create(&root).unwrap();
    store
        .create_self_signed("mx1", &req("mx1.example.com", 30))
        .unwrap();
    assert!(!root.join(".tmp-1-0-portcullis-store.json").exists());
}
