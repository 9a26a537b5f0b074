//! ACME against Pebble (the ACME test server) on loopback, through the real
//! `portcullis` binary: `cert acme` issues a certificate over HTTP-01 (and
//! over TLS-ALPN-01), a second run renews it with the same key, and a name
//! Pebble cannot validate fails with the CA's reason. Pebble resolves names
//! with the testkit's signed zone (knotd), so nothing leaves the machine.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Output};

use portcullis_testkit::dns_zone::{DnsZone, ZoneBuilder};
use portcullis_testkit::pebble::{Pebble, free_tcp_port};

fn portcullis(store: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("--store")
        .arg(store)
        .args(args)
        .output()
        .expect("run portcullis")
}

fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn show(store: &Path, name: &str) -> serde_json::Value {
    let o = portcullis(store, &["--json", "cert", "show", name]);
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

struct Rig {
    _zone: DnsZone,
    pebble: Pebble,
    http_port: u16,
    tls_port: u16,
    dir: tempfile::TempDir,
}

fn rig() -> Rig {
    let zone = ZoneBuilder::new()
        .a("mx1.test", Ipv4Addr::new(127, 0, 0, 1))
        .a("mx2.test", Ipv4Addr::new(127, 0, 0, 1))
        // Nothing listens on 127.0.0.2: the CA's connection is refused.
        .a("nobody.test", Ipv4Addr::new(127, 0, 0, 2))
        .start()
        .expect("signed test zone (knotd)");
    let http_port = free_tcp_port().unwrap();
    let tls_port = free_tcp_port().unwrap();
    let pebble = Pebble::start(zone.authoritative_addr(), http_port, tls_port)
        .expect("pebble (Debian package pebble; scripts/install-test-deps.sh)");
    Rig {
        _zone: zone,
        pebble,
        http_port,
        tls_port,
        dir: tempfile::tempdir().unwrap(),
    }
}

impl Rig {
    fn acme(&self, extra: &[&str]) -> Output {
        let dir = self.pebble.directory();
        let ca = self.pebble.server_ca_file().display().to_string();
        let http = format!("127.0.0.1:{}", self.http_port);
        let tls = format!("127.0.0.1:{}", self.tls_port);
        let mut args = vec![
            "cert",
            "acme",
            "--directory",
            &dir,
            "--directory-ca",
            &ca,
            "--http-listen",
            &http,
            "--tls-alpn-listen",
            &tls,
            "--contact",
            "mailto:postmaster@mx1.test",
        ];
        args.extend_from_slice(extra);
        portcullis(&self.dir.path().join("certs"), &args)
    }

    fn store(&self) -> std::path::PathBuf {
        self.dir.path().join("certs")
    }
}

#[test]
fn issue_then_renew_with_the_same_key_and_a_failed_challenge_is_explained() {
    let rig = rig();
    let issued = rig.acme(&["mx1", "--domain", "mx1.test"]);
    assert!(
        issued.status.success(),
        "{}\npebble:\n{}",
        text(&issued),
        rig.pebble.log_text()
    );
    assert!(
        String::from_utf8_lossy(&issued.stdout).contains("key kept: TLSA 3 1 1"),
        "{}",
        text(&issued)
    );
    let first = show(&rig.store(), "mx1");
    let leaf = &first["chain"][0];
    assert_eq!(leaf["sans"][0], "DNS:mx1.test");
    assert!(
        leaf["issuer"].as_str().unwrap().contains("Pebble"),
        "issued by Pebble's CA: {leaf}"
    );
    assert_eq!(leaf["self_signed"], false);
    assert!(
        first["chain"].as_array().unwrap().len() >= 2,
        "with its intermediate"
    );
    // The ACME account key is in the store, owner-only.
    let accounts = rig.store().join("acme-accounts.json");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&accounts).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Renewal: a new certificate, the same key (a 3 1 1 record stays valid),
    // the same account.
    let renewed = rig.acme(&["mx1", "--domain", "mx1.test"]);
    assert!(renewed.status.success(), "{}", text(&renewed));
    let second = show(&rig.store(), "mx1");
    assert_eq!(first["key_spki_sha256"], second["key_spki_sha256"]);
    assert_ne!(
        first["chain"][0]["serial"], second["chain"][0]["serial"],
        "a new certificate"
    );
    let accounts_after: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&accounts).unwrap()).unwrap();
    assert_eq!(accounts_after["accounts"].as_object().unwrap().len(), 1);

    // A name whose address has no challenge listener: the CA's reason.
    let failed = rig.acme(&["nobody", "--domain", "nobody.test"]);
    assert!(!failed.status.success(), "{}", text(&failed));
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(
        err.contains("could not validate nobody.test: nobody.test:"),
        "{}",
        text(&failed)
    );
    assert!(
        err.contains("127.0.0.2"),
        "the CA says where it connected: {err}"
    );
    // The entry keeps its self-signed certificate; nothing half-installed.
    let kept = show(&rig.store(), "nobody");
    assert_eq!(kept["chain"][0]["self_signed"], true);
}

#[test]
fn tls_alpn_01_challenge_issues_too() {
    let rig = rig();
    let issued = rig.acme(&[
        "mx2",
        "--domain",
        "mx2.test",
        "--challenge",
        "tls-alpn-01",
        "--key",
        "rsa2048",
    ]);
    assert!(
        issued.status.success(),
        "{}\npebble:\n{}",
        text(&issued),
        rig.pebble.log_text()
    );
    let shown = show(&rig.store(), "mx2");
    assert!(
        shown["chain"][0]["issuer"]
            .as_str()
            .unwrap()
            .contains("Pebble")
    );
    assert!(shown["key"].to_string().contains("RSA"), "{}", shown["key"]);
}
