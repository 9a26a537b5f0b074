//! The `portcullis ca` commands, run as the built binary.

use std::path::Path;
use std::process::Command;

fn run(store: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("--store")
        .arg(store)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn ok(store: &Path, args: &[&str]) -> String {
    let (success, out, err) = run(store, args);
    assert!(success, "portcullis {args:?}: {err}");
    out
}

#[test]
fn ca_lists_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let store = d.join("certs");
    // Enable/disable creates the store; the summary shows both lists.
    ok(&store, &["ca", "disable", "system"]);
    let summary = ok(&store, &["ca", "list"]);
    assert!(summary.contains("system list: DISABLED"), "{summary}");
    assert!(
        summary.contains("custom list: enabled, 0 certificate(s)"),
        "{summary}"
    );
    ok(&store, &["ca", "enable", "system"]);

    // Export the system list and re-import part of it as custom CAs.
    let sys = d.join("system.pem");
    ok(
        &store,
        &["ca", "export", "system", "--out", sys.to_str().unwrap()],
    );
    let text = std::fs::read_to_string(&sys).unwrap();
    let two: String = text
        .split_inclusive("-----END CERTIFICATE-----\n")
        .take(2)
        .collect();
    std::fs::write(d.join("two.pem"), &two).unwrap();
    let out = ok(
        &store,
        &["ca", "import", d.join("two.pem").to_str().unwrap()],
    );
    assert!(out.contains("added 2 CA certificate(s)"), "{out}");

    let json: serde_json::Value =
        serde_json::from_str(&ok(&store, &["--json", "ca", "list", "custom"])).unwrap();
    let certs = json["certs"].as_array().unwrap();
    assert_eq!(certs.len(), 2);
    let fp = certs[1]["info"]["sha256"].as_str().unwrap().to_owned();
    ok(&store, &["ca", "delete", &fp[..23]]);
    let listed = ok(&store, &["ca", "list", "custom"]);
    assert!(!listed.contains(&fp), "{listed}");
    ok(&store, &["ca", "delete", "1"]);
    let (success, _, err) = run(&store, &["ca", "delete", "1"]);
    assert!(
        !success && err.starts_with("portcullis: error: no CA certificate"),
        "{err}"
    );

    // Update the system list from a bundle, then return to the shipped one.
    let out = ok(
        &store,
        &["ca", "update", d.join("two.pem").to_str().unwrap()],
    );
    assert!(out.contains("replaced by the 2 CA certificates"), "{out}");
    let out = ok(&store, &["ca", "update", "--shipped"]);
    assert!(out.contains("reset to the"), "{out}");

    std::fs::write(d.join("bad.pem"), "not pem").unwrap();
    let (success, _, err) = run(
        &store,
        &["ca", "import", d.join("bad.pem").to_str().unwrap()],
    );
    assert!(!success && err.contains("bad.pem"), "{err}");
}
