//! Certificates on autopilot in the running gateway (the real binary):
//! `[acme]` renews a listener's certificate from Pebble through the
//! gateway's HTTP-01 listener and the listener presents it without a
//! restart; a DANE key rollover switches to the next key only after the
//! next key's TLSA record is published in the signed test zone (knotd), and
//! `dane check` says what DNS is missing before and after.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use portcullis_smtp_tls::{TlsOutcome, TlsRequirement};
use portcullis_testkit::client::{SendOptions, send};
use portcullis_testkit::dns_zone::ZoneBuilder;
use portcullis_testkit::gateway::{GatewayFixture, relay_hat};
use portcullis_testkit::pebble::{Pebble, free_tcp_port};

fn portcullis(store: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("--store")
        .arg(store)
        .args(args)
        .output()
        .expect("run portcullis")
}

fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "status {}\n{}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn spki(store: &Path, name: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(&ok(portcullis(store, &["--json", "cert", "show", name]))).unwrap();
    hex(v["key_spki_sha256"].as_str().unwrap())
}

fn hex(fingerprint: &str) -> String {
    fingerprint.replace(':', "").to_ascii_lowercase()
}

/// The leaf certificate the gateway presents on STARTTLS.
async fn presented(fx: &GatewayFixture) -> portcullis_certstore::CertInfo {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = Arc::new(portcullis_dane::PeerVerifier::any_certificate(provider))
        .client_config(&[&rustls::version::TLS13], None)
        .unwrap();
    let options = SendOptions {
        requirement: TlsRequirement::Required,
        tls: Some((Arc::new(config), "mx1.test".into())),
        ..SendOptions::default()
    };
    let delivery = send(
        fx.listen,
        "a@local.test",
        &["b@local.test"],
        "tls",
        &options,
    )
    .await
    .unwrap();
    let TlsOutcome::Established(info) = delivery.tls else {
        panic!("no TLS: {:?}", delivery.tls)
    };
    portcullis_certstore::CertInfo::from_der(&info.peer_certificates[0], "presented").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_renews_from_acme_and_presents_the_new_certificate_without_restart() {
    let zone = ZoneBuilder::new()
        .a("mx1.test", Ipv4Addr::new(127, 0, 0, 1))
        .start()
        .unwrap();
    let http_port = free_tcp_port().unwrap();
    let pebble = Pebble::start(
        zone.authoritative_addr(),
        http_port,
        free_tcp_port().unwrap(),
    )
    .expect("pebble");
    let mut fx = GatewayFixture::new().unwrap();
    let store = fx.data_dir().join("certs");
    ok(portcullis(
        &store,
        &[
            "cert", "create", "mx1", "--cn", "mx1.test", "--key", "ec-p256",
        ],
    ));
    let key = spki(&store, "mx1");
    fx.listener =
        "kind = \"private\"\ncertificate = \"mx1\"\nrat.accept = [\"local.test\"]\n".into();
    fx.hat = relay_hat("preferred");
    fx.extra = format!(
        "[acme]\ndirectory = \"{}\"\nserver-ca-file = \"{}\"\nhttp-listen = \"127.0.0.1:{http_port}\"\n\
         contact = [\"mailto:postmaster@mx1.test\"]\n\n[[acme.certificate]]\nname = \"mx1\"\ndomains = [\"mx1.test\"]\n",
        pebble.directory(),
        pebble.server_ca_file().display()
    );
    fx.validate().unwrap();
    let gw = fx.start().unwrap();
    assert!(presented(&fx).await.self_signed, "before: self-signed");
    let line = gw
        .wait_for_line(&["ACME: renewed mx1"], Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("{e}\npebble:\n{}", pebble.log_text()));
    assert!(line.contains("because it is self-signed"), "{line}");
    assert!(line.contains("same key"), "{line}");
    assert!(
        !gw.lines_with(&["ACME: HTTP-01 challenge listener on 127.0.0.1"])
            .is_empty()
    );
    // The listener follows the store: the next handshake shows Pebble's
    // certificate (it checks the entry at most once a second).
    let mut after = presented(&fx).await;
    for _ in 0..50 {
        if !after.self_signed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        after = presented(&fx).await;
    }
    assert!(after.issuer.contains("Pebble"), "{}", after.issuer);
    assert_eq!(hex(&after.spki_sha256), key, "the key is kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollover_switches_only_after_the_next_tlsa_record_is_published() {
    let mut zone = ZoneBuilder::new()
        .a("mx1.test", Ipv4Addr::new(127, 0, 0, 1))
        .start()
        .unwrap();
    let mut fx = GatewayFixture::new().unwrap();
    let store = fx.data_dir().join("certs");
    ok(portcullis(
        &store,
        &[
            "cert", "create", "mx1", "--cn", "mx1.test", "--key", "ec-p256",
        ],
    ));
    let current = spki(&store, "mx1");
    zone.add(|z| Ok(z.record_ttl("_25._tcp.mx1.test", 2, "TLSA", &format!("3 1 1 {current}"))))
        .unwrap();
    zone.publish().unwrap();

    // Step one: the next key and its certificate (a CA answers the CSR).
    let csr_path = fx.dir().join("next.csr");
    let plan = ok(portcullis(
        &store,
        &[
            "dane",
            "rollover",
            "mx1",
            "--csr",
            &csr_path.display().to_string(),
        ],
    ));
    assert!(
        plan.contains(&format!(
            "_25._tcp.mx1.test. IN TLSA 3 1 1 {current}   ; current key"
        )),
        "{plan}"
    );
    let csr = std::fs::read_to_string(&csr_path).unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca, rcgen::KeyPair::generate().unwrap()).unwrap();
    let signed = rcgen::CertificateSigningRequestParams::from_pem(&csr)
        .unwrap()
        .signed_by(&ca)
        .unwrap();
    let crt = fx.dir().join("next.crt");
    std::fs::write(&crt, signed.pem()).unwrap();
    let installed = ok(portcullis(
        &store,
        &["cert", "install-signed", "mx1", &crt.display().to_string()],
    ));
    assert!(installed.contains("next key's certificate"), "{installed}");
    let show: serde_json::Value =
        serde_json::from_str(&ok(portcullis(&store, &["--json", "cert", "show", "mx1"]))).unwrap();
    let next = hex(show["next"]["key_spki_sha256"].as_str().unwrap());
    assert_ne!(next, current);

    fx.listener =
        "kind = \"private\"\ncertificate = \"mx1\"\nrat.accept = [\"local.test\"]\n".into();
    fx.hat = relay_hat("preferred");
    fx.dns = format!(
        "resolvers = [\"{}\"]\ntrust-anchor-file = \"{}\"\ntimeout-seconds = 3\n",
        zone.authoritative_addr(),
        zone.trust_anchor_file().display()
    );
    fx.extra = "[dane]\nrollover-check-seconds = 1\n".into();
    fx.validate().unwrap();
    let config = fx.dir().join("portcullis.toml");
    let gw = fx.start().unwrap();

    // Not published: the gateway keeps the current key, and says why.
    gw.wait_for_line(
        &["DANE: rollover of mx1: waiting for the next key's TLSA record (DNSSEC-secure) at mx1.test"],
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    let check = portcullis(
        &store,
        &[
            "dane",
            "check",
            "mx1",
            "--config",
            &config.display().to_string(),
        ],
    );
    let text = String::from_utf8_lossy(&check.stdout).into_owned();
    assert_eq!(check.status.code(), Some(1), "{text}");
    assert!(text.contains("matches the served key"), "{text}");
    assert!(
        text.contains(&format!("fix: a key rollover is waiting for the next key's record: publish _25._tcp.mx1.test. IN TLSA 3 1 1 {next}")),
        "{text}"
    );
    // Several looks later it still serves the current key.
    gw.wait_for_line(&["DNS: DNSSEC check passed"], Duration::from_secs(30))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(hex(&presented(&fx).await.spki_sha256), current);
    assert!(gw.lines_with(&["now serving key"]).is_empty());

    // Step two: publish the next key's record beside the current one.
    zone.add(|z| Ok(z.record_ttl("_25._tcp.mx1.test", 2, "TLSA", &format!("3 1 1 {next}"))))
        .unwrap();
    zone.publish().unwrap();
    let seen = gw
        .wait_for_line(
            &["rollover of mx1: the next key's TLSA record is published"],
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert!(seen.contains("TTL 2s"), "{seen}");
    let switched = gw
        .wait_for_line(
            &["DANE: rollover of mx1", "now serving key"],
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert!(switched.contains(&next), "{switched}");
    let lines = gw.lines();
    let at = |needle: &str| lines.iter().position(|l| l.contains(needle)).unwrap();
    assert!(at("TLSA record is published") < at("now serving key"));
    let mut served = presented(&fx).await;
    for _ in 0..50 {
        if hex(&served.spki_sha256) == next {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        served = presented(&fx).await;
    }
    assert_eq!(hex(&served.spki_sha256), next);

    // Afterwards `dane check` points at the old record to remove.
    let check = portcullis(
        &store,
        &[
            "dane",
            "check",
            "mx1",
            "--config",
            &config.display().to_string(),
        ],
    );
    let text = String::from_utf8_lossy(&check.stdout).into_owned();
    assert!(
        text.contains(&format!(
            "3 1 1 {current}  matches no key of this certificate"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("3 1 1 {next}  matches the served key")),
        "{text}"
    );
}
