//! The `portcullis cert` commands, run as the built binary: the CSR flow an
//! operator follows (create → csr → a CA made with openssl signs → install-signed
//! → show/list/export), PKCS#12 export/import, and one-line errors with a
//! non-zero exit status.

use std::path::Path;
use std::process::{Command, Output};

fn portcullis(store: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("--store")
        .arg(store)
        .args(args)
        .env_remove("PORTCULLIS_STORE")
        .output()
        .unwrap()
}

fn ok(store: &Path, args: &[&str]) -> String {
    let out = portcullis(store, args);
    assert!(
        out.status.success(),
        "portcullis {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Run a failing command: returns (exit code, stderr) and checks the error is one line.
fn fails(store: &Path, args: &[&str]) -> (i32, String) {
    let out = portcullis(store, args);
    assert!(
        !out.status.success(),
        "portcullis {args:?} unexpectedly succeeded"
    );
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "error must be one line: {err:?}"
    );
    assert!(err.starts_with("portcullis: error: "), "{err}");
    (out.status.code().unwrap_or(-1), err)
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl must be installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn make_openssl_ca(d: &Path) {
    std::fs::write(
        d.join("ca.ext"),
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n",
    )
    .unwrap();
    std::fs::write(
        d.join("leaf.ext"),
        "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n",
    )
    .unwrap();
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "root.key",
            "-out",
            "root.pem",
            "-subj",
            "/CN=CLI Test Root",
            "-days",
            "30",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
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
            "int.key",
            "-out",
            "int.csr",
            "-subj",
            "/CN=CLI Test Intermediate",
        ],
    );
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "int.csr",
            "-CA",
            "root.pem",
            "-CAkey",
            "root.key",
            "-CAcreateserial",
            "-days",
            "20",
            "-extfile",
            "ca.ext",
            "-out",
            "int.pem",
        ],
    );
}

#[test]
fn csr_flow_with_an_openssl_ca() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let store = d.join("certs");
    make_openssl_ca(d);

    let out = ok(
        &store,
        &[
            "cert",
            "create",
            "mx1",
            "--cn",
            "mx1.example.com",
            "--org",
            "Example Ltd",
            "--country",
            "gb",
            "--san",
            "smtp.example.com",
            "--key",
            "ec-p256",
            "--days",
            "90",
        ],
    );
    assert!(out.contains("created \"mx1\""), "{out}");
    assert!(out.contains("self-signed"), "{out}");

    ok(
        &store,
        &[
            "cert",
            "csr",
            "mx1",
            "--out",
            d.join("mx1.csr").to_str().unwrap(),
        ],
    );
    openssl(d, &["req", "-in", "mx1.csr", "-verify", "-noout"]);
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "mx1.csr",
            "-CA",
            "int.pem",
            "-CAkey",
            "int.key",
            "-CAcreateserial",
            "-days",
            "10",
            "-copy_extensions",
            "copy",
            "-extfile",
            "leaf.ext",
            "-out",
            "mx1.pem",
        ],
    );

    // Intermediate first, leaf second, as operators often paste them.
    let out = ok(
        &store,
        &[
            "cert",
            "install-signed",
            "mx1",
            d.join("int.pem").to_str().unwrap(),
            d.join("mx1.pem").to_str().unwrap(),
        ],
    );
    assert!(out.contains("installed the signed certificate"), "{out}");
    assert!(
        out.contains("incomplete chain"),
        "root not in any list yet: {out}"
    );

    let json: serde_json::Value =
        serde_json::from_str(&ok(&store, &["--json", "cert", "show", "mx1"])).unwrap();
    assert_eq!(json["chain"][0]["common_name"], "mx1.example.com");
    assert_eq!(json["chain"][1]["common_name"], "CLI Test Intermediate");
    assert_eq!(json["chain"][0]["sans"][1], "DNS:smtp.example.com");
    assert!(json["pending"].is_null());

    // Trust the root: the chain is complete and `show` is clean after reinstalling.
    ok(
        &store,
        &["ca", "import", d.join("root.pem").to_str().unwrap()],
    );
    ok(
        &store,
        &[
            "cert",
            "export",
            "mx1",
            "--out",
            d.join("chain.pem").to_str().unwrap(),
        ],
    );
    ok(
        &store,
        &[
            "cert",
            "install-signed",
            "mx1",
            d.join("chain.pem").to_str().unwrap(),
        ],
    );
    let show = ok(&store, &["cert", "show", "mx1", "--warn-days", "5"]);
    assert!(show.contains("Warnings:    none"), "{show}");
    assert!(show.contains("Chain [1]:"), "{show}");

    // openssl accepts the exported chain.
    let out = Command::new("openssl")
        .args([
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "chain.pem",
            "chain.pem",
        ])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let list = ok(&store, &["cert", "list"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with("mx1 ") && l.contains("mx1.example.com")),
        "{list}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(&store, &["--json", "cert", "list"])).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 1);
}

#[test]
fn pkcs12_round_trip_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let store = d.join("certs");
    ok(
        &store,
        &[
            "cert",
            "create",
            "mx1",
            "--cn",
            "mx1.example.com",
            "--key",
            "ec-p384",
        ],
    );
    std::fs::write(d.join("pass"), "open sesame\n").unwrap();
    let p12 = d.join("mx1.p12");
    ok(
        &store,
        &[
            "cert",
            "export",
            "mx1",
            "--format",
            "pkcs12",
            "--passphrase-file",
            d.join("pass").to_str().unwrap(),
            "--out",
            p12.to_str().unwrap(),
        ],
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&p12).unwrap().permissions().mode() & 0o777,
        0o600
    );
    openssl(
        d,
        &[
            "pkcs12",
            "-in",
            "mx1.p12",
            "-passin",
            "pass:open sesame",
            "-nodes",
            "-out",
            "dump.pem",
        ],
    );

    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args([
            "--store",
            store.to_str().unwrap(),
            "cert",
            "import",
            "copy",
            p12.to_str().unwrap(),
            "--passphrase-env",
            "P12PASS",
        ])
        .env("P12PASS", "open sesame")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let a: serde_json::Value =
        serde_json::from_str(&ok(&store, &["--json", "cert", "show", "mx1"])).unwrap();
    let b: serde_json::Value =
        serde_json::from_str(&ok(&store, &["--json", "cert", "show", "copy"])).unwrap();
    assert_eq!(a["chain"][0]["sha256"], b["chain"][0]["sha256"]);

    let (_, err) = fails(
        &store,
        &[
            "cert",
            "import",
            "again",
            p12.to_str().unwrap(),
            "--passphrase-env",
            "NO_SUCH_VAR_X",
        ],
    );
    assert!(err.contains("NO_SUCH_VAR_X is not set"), "{err}");
}

#[test]
fn errors_are_one_line_with_non_zero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let store = d.join("certs");
    let (code, err) = fails(&store, &["cert", "list"]);
    assert_eq!(code, 1);
    assert!(err.contains("does not exist"), "{err}");

    let (_, err) = fails(&store, &["cert", "create", "x", "--cn", "localhost"]);
    assert!(err.contains("not a fully qualified domain name"), "{err}");
    assert!(
        !store.exists(),
        "a refused create must not create the store"
    );
    let (_, err) = fails(
        &store,
        &[
            "cert",
            "create",
            "x",
            "--cn",
            "mx.example.com",
            "--country",
            "XX",
        ],
    );
    assert!(err.contains("ISO 3166"), "{err}");

    ok(
        &store,
        &[
            "cert",
            "create",
            "mx1",
            "--cn",
            "mx1.example.com",
            "--key",
            "ec-p256",
        ],
    );
    std::fs::write(
        d.join("junk.pem"),
        "-----BEGIN CERTIFICATE-----\nMIIBIjAN\n",
    )
    .unwrap();
    let (_, err) = fails(
        &store,
        &[
            "cert",
            "install-signed",
            "mx1",
            d.join("junk.pem").to_str().unwrap(),
        ],
    );
    assert!(
        err.contains("junk.pem") && err.contains("truncated"),
        "{err}"
    );
    let (_, err) = fails(&store, &["cert", "show", "nope"]);
    assert!(err.contains("no certificate named \"nope\""), "{err}");
    let (_, err) = fails(
        &store,
        &["cert", "export", "mx1", "--format", "pkcs12", "--out", "-"],
    );
    assert!(err.contains("needs a passphrase"), "{err}");

    // Expiring query: exit 3 when something is due, 0 otherwise.
    let out = portcullis(&store, &["cert", "expiring", "--days", "30"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = portcullis(&store, &["cert", "expiring", "--days", "400"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stdout).contains("mx1"));

    ok(&store, &["cert", "delete", "mx1"]);
    let (_, err) = fails(&store, &["cert", "delete", "mx1"]);
    assert!(err.contains("no certificate named"), "{err}");
}

#[test]
fn read_only_store_is_refused_by_the_cli() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("certs");
    ok(
        &store,
        &[
            "cert",
            "create",
            "mx1",
            "--cn",
            "mx1.example.com",
            "--key",
            "ec-p256",
        ],
    );
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o500)).unwrap();
    let (_, err) = fails(&store, &["cert", "delete", "mx1"]);
    assert!(err.contains("read-only"), "{err}");
    ok(&store, &["cert", "show", "mx1"]);
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o700)).unwrap();
}

#[test]
fn help_explains_the_store_default() {
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["cert", "create", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(
        help.contains("PORTCULLIS_STORE") && help.contains("portcullis-data/certs"),
        "{help}"
    );
    assert!(help.contains("--country"), "{help}");
    let store = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["cert", "list"])
        .env("PORTCULLIS_STORE", store.path().join("from-env"))
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("from-env"),
        "the environment variable picks the store: {err}"
    );
}
