//! `portcullis check DOMAIN` against the testkit's signed zone (knotd) and
//! SMTP sinks on loopback: DANE match and mismatch, MTA-STS enforce, no
//! STARTTLS, an expired certificate, a bogus TLSA answer. The JSON is
//! compared field by field with what `openssl s_client -starttls smtp` and
//! Postfix's `posttls-finger` say about the same hosts.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use portcullis_testkit::dns_zone::ZoneBuilder;
use portcullis_testkit::gateway::{GatewayFixture, destination};
use portcullis_testkit::mta_sts_server::{MtaStsServer, policy_text};
use portcullis_testkit::pki::{Leaf, TestPki};
use portcullis_testkit::runner::free_tcp_port;
use portcullis_testkit::sink::{Sink, SinkOptions, SinkTls};
use serde_json::Value;

/// The domains, each with one MX host `mx.<domain>` on its own address.
const DOMAINS: [&str; 6] = [
    "dane-ok.test",
    "dane-bad.test",
    "sts.test",
    "plain.test",
    "expired.test",
    "bogus.test",
];

fn ip_of(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 3, 10 + i as u8)
}

async fn sinks(tls: Vec<SinkTls>) -> (u16, Vec<Sink>) {
    'port: for _ in 0..20 {
        let port = free_tcp_port().unwrap();
        let mut out = Vec::new();
        for (i, t) in tls.iter().enumerate() {
            let mut o = SinkOptions::new(t.clone());
            o.hostname = format!("mx.{}", DOMAINS[i]);
            match Sink::start_on(SocketAddr::new(IpAddr::V4(ip_of(i)), port), o).await {
                Ok(s) => out.push(s),
                Err(_) => continue 'port,
            }
        }
        return (port, out);
    }
    panic!("no port free on every 127.0.3.x address");
}

struct Rig {
    fx: GatewayFixture,
    port: u16,
    root: std::path::PathBuf,
    _zone: portcullis_testkit::dns_zone::DnsZone,
    _sinks: Vec<Sink>,
    _sts: MtaStsServer,
}

fn check(rig: &Rig, domain: &str) -> (i32, Value, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("--store")
        .arg(rig.fx.data_dir().join("certs"))
        .args(["--json", "check", domain, "--timeout", "10", "--config"])
        .arg(rig.fx.dir().join("portcullis.toml"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "{domain}: {e}\n{stderr}\n{}",
            String::from_utf8_lossy(&o.stdout)
        )
    });
    (o.status.code().unwrap_or(-1), v, stderr)
}

fn address(v: &Value) -> &Value {
    &v["report"]["hosts"][0]["addresses"][0]
}

/// `openssl s_client -starttls smtp` with `-brief`: its summary lines.
fn openssl(rig: &Rig, i: usize, tlsa: &[String]) -> String {
    let host = format!("mx.{}", DOMAINS[i]);
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-brief", "-starttls", "smtp", "-connect"])
        .arg(format!("{}:{}", ip_of(i), rig.port))
        .args(["-servername", &host, "-verify_hostname", &host, "-CAfile"])
        .arg(&rig.root)
        .args(["-verify_return_error"]);
    if !tlsa.is_empty() {
        cmd.args(["-dane_tlsa_domain", &host]);
        for r in tlsa {
            cmd.args(["-dane_tlsa_rrdata", r]);
        }
    }
    let o = run_with_stdin_closed(&mut cmd);
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `posttls-finger -l secure` against the address, matching the MX name,
/// with a private Postfix configuration directory (no system daemon).
fn posttls_finger(rig: &Rig, i: usize) -> String {
    let host = format!("mx.{}", DOMAINS[i]);
    let conf = rig.fx.dir().join("postfix");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(conf.join("main.cf"), "compatibility_level = 3.6\n").unwrap();
    let o = run_with_stdin_closed(
        Command::new("posttls-finger")
            .env("MAIL_CONFIG", &conf)
            .args(["-t", "10", "-T", "10", "-l", "secure", "-F"])
            .arg(&rig.root)
            .arg(format!("[{}]:{}", ip_of(i), rig.port))
            .arg(&host),
    );
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn run_with_stdin_closed(cmd: &mut Command) -> Output {
    cmd.stdin(std::process::Stdio::null()).output().unwrap()
}

/// The field after `key` on its line (`Protocol version: TLSv1.3`).
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(key))
        .map(str::trim)
}

async fn rig() -> Rig {
    let pki = TestPki::new().unwrap();
    let leaf = |i: usize| Arc::new(pki.leaf(&[&format!("mx.{}", DOMAINS[i])]).unwrap());
    let expired = Arc::new(pki.expired_leaf(&["mx.expired.test"]).unwrap());
    let leaves: Vec<Arc<Leaf>> = (0..DOMAINS.len()).map(leaf).collect();
    let tls = vec![
        SinkTls::Offered(leaves[0].clone()),
        SinkTls::Offered(leaves[1].clone()),
        SinkTls::Offered(leaves[2].clone()),
        SinkTls::NotOffered,
        SinkTls::Offered(expired),
        SinkTls::Offered(leaves[5].clone()),
    ];
    let (port, sinks) = sinks(tls).await;
    let stranger = pki.leaf(&["someone.else.test"]).unwrap();
    let sts_leaf = pki.leaf(&["mta-sts.sts.test"]).unwrap();
    let sts = MtaStsServer::start(&sts_leaf, &policy_text("enforce", &["mx.sts.test"], 86400))
        .await
        .unwrap();

    let mut z = ZoneBuilder::new();
    for (i, d) in DOMAINS.iter().enumerate() {
        let mx = format!("mx.{d}");
        z = z.mx(d, 10, &mx).a(&mx, ip_of(i));
    }
    z = z
        .tlsa_for("mx.dane-ok.test", port, leaves[0].chain(), 0, [3, 1, 1])
        .unwrap()
        .tlsa_for("mx.dane-bad.test", port, stranger.chain(), 0, [3, 1, 1])
        .unwrap()
        .tlsa_for("mx.bogus.test", port, leaves[5].chain(), 0, [3, 1, 1])
        .unwrap()
        .bogus_tlsa("mx.bogus.test", port)
        .txt("_mta-sts.sts.test", "v=STSv1; id=20261201")
        .txt(
            "_smtp._tls.sts.test",
            "v=TLSRPTv1; rua=mailto:tlsrpt@sts.test",
        );
    let zone = z.start().unwrap();

    let mut fx = GatewayFixture::new().unwrap();
    fx.trust_ca(&pki.root_pem()).unwrap();
    fx.dns = format!(
        "resolvers = [\"{}\"]\ntrust-anchor-file = \"{}\"\ntimeout-seconds = 3\n",
        zone.authoritative_addr(),
        zone.trust_anchor_file().display()
    );
    fx.delivery += &format!("mx-port = {port}\n");
    fx.mta_sts = format!(
        "enabled = true\naddresses = {{ \"mta-sts.sts.test\" = \"{}\" }}\n",
        sts.addr()
    );
    fx.extra = destination("default", "preferred", "opportunistic", true);
    fx.validate().unwrap();
    let root = fx.dir().join("root.pem");
    pki.write_root_pem(&root).unwrap();
    Rig {
        fx,
        port,
        root,
        _zone: zone,
        _sinks: sinks,
        _sts: sts,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_what_openssl_and_posttls_finger_see() {
    let rig = rig().await;

    // DANE match: our JSON against openssl with the same TLSA records.
    let (code, v, stderr) = check(&rig, "dane-ok.test");
    assert!(
        stderr.contains("checking mx.dane-ok.test"),
        "progress on stderr: {stderr}"
    );
    assert_eq!(v["report"]["mx"]["dnssec"], "secure");
    let a = address(&v);
    let tls = &a["tls"];
    let records: Vec<String> = v["report"]["hosts"][0]["tlsa"]["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["record"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(records.len(), 1);
    let ossl = openssl(&rig, 0, &records);
    assert_eq!(
        Some(tls["protocol"].as_str().unwrap()),
        field(&ossl, "Protocol version:"),
        "{ossl}"
    );
    assert_eq!(
        Some(tls["cipher"].as_str().unwrap()),
        field(&ossl, "Ciphersuite:"),
        "{ossl}"
    );
    assert_eq!(field(&ossl, "Verification:"), Some("OK"), "{ossl}");
    assert_eq!(tls["dane_match"], true);
    assert!(
        ossl.contains("DANE TLSA 3 1 1"),
        "openssl matched by DANE too: {ossl}"
    );
    assert_eq!(tls["pkix_valid"], true);
    assert_eq!(a["starttls"], "offered");
    assert!(
        a["banner"]
            .as_str()
            .unwrap()
            .starts_with("220 mx.dane-ok.test")
    );
    assert!(
        a["ehlo"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k == "STARTTLS")
    );
    assert_eq!(a["decision"]["delivers"], true);
    assert_eq!(a["decision"]["outcome"], "deliver");
    // The test PKI's leaves live 10 days: expiry soon is a warning.
    assert!(
        (9..=10).contains(&tls["days_to_expiry"].as_i64().unwrap()),
        "{tls}"
    );
    assert_eq!(v["worst"], "warn");
    assert_eq!(code, 1);
    let pf = posttls_finger(&rig, 0);
    let ip = ip_of(0);
    assert!(
        pf.contains(&format!(
            "Verified TLS connection established to {ip}[{ip}]:{}: {} with cipher {} ",
            rig.port,
            tls["protocol"].as_str().unwrap(),
            tls["cipher"].as_str().unwrap()
        )),
        "{pf}"
    );
    let leaf = &tls["chain"][0];
    assert!(
        pf.contains(&format!(
            "fingerprint={}, ",
            leaf["sha256"].as_str().unwrap()
        )),
        "certificate fingerprint: {pf}\n{leaf}"
    );
    assert!(
        pf.contains(&format!(
            "pkey_fingerprint={}",
            leaf["spki_sha256"].as_str().unwrap()
        )),
        "public key fingerprint: {pf}\n{leaf}"
    );
    assert!(pf.contains("matched peername: mx.dane-ok.test"), "{pf}");

    // The same as a table for people (printed with --nocapture).
    let table = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("--store")
        .arg(rig.fx.data_dir().join("certs"))
        .args(["check", "dane-ok.test", "--timeout", "10", "--config"])
        .arg(rig.fx.dir().join("portcullis.toml"))
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout).into_owned();
    println!("{table}");
    assert!(table.contains("OK    DANE"), "{table}");
    assert!(table.contains("WARN  certificate"), "{table}");
    assert!(table.contains("verdict: WARN"), "{table}");

    // DANE mismatch: openssl with the published records refuses too.
    let (code, v, _) = check(&rig, "dane-bad.test");
    let a = address(&v);
    let records: Vec<String> = v["report"]["hosts"][0]["tlsa"]["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["record"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(a["tls"]["dane_match"], false);
    let ossl = openssl(&rig, 1, &records);
    assert_ne!(field(&ossl, "Verification:"), Some("OK"), "{ossl}");
    assert_eq!(a["decision"]["delivers"], false);
    assert_eq!(code, 2);

    // MTA-STS enforce with TLS-RPT.
    let (_, v, _) = check(&rig, "sts.test");
    let sts = &v["report"]["mta_sts"];
    assert_eq!(sts["mode"], "enforce");
    assert_eq!(sts["mx"][0], "mx.sts.test");
    assert_eq!(sts["mx_listed"], true);
    assert_eq!(v["report"]["tls_rpt"]["rua"][0], "mailto:tlsrpt@sts.test");
    let a = address(&v);
    assert_eq!(a["decision"]["delivers"], true);
    assert!(
        a["decision"]["reason"]
            .as_str()
            .unwrap()
            .contains("MTA-STS"),
        "{}",
        a["decision"]
    );
    let ossl = openssl(&rig, 2, &[]);
    assert_eq!(field(&ossl, "Verification:"), Some("OK"), "{ossl}");
    assert_eq!(a["tls"]["pkix_valid"], true);

    // No STARTTLS.
    let (code, v, _) = check(&rig, "plain.test");
    let a = address(&v);
    assert_eq!(a["starttls"], "not offered");
    assert!(a["tls"].is_null());
    let ossl = openssl(&rig, 3, &[]);
    assert!(ossl.contains("Didn't find STARTTLS"), "{ossl}");
    let pf = posttls_finger(&rig, 3);
    assert!(
        pf.contains("< 250"),
        "posttls-finger saw the EHLO reply: {pf}"
    );
    assert!(!pf.contains("STARTTLS"), "and no STARTTLS in it: {pf}");
    assert!(!pf.contains("TLS connection established"), "{pf}");
    assert_eq!(code, 2);

    // Expired certificate: PKIX fails for us, openssl and posttls-finger.
    let (_, v, _) = check(&rig, "expired.test");
    let tls = &address(&v)["tls"];
    assert_eq!(tls["pkix_valid"], false);
    assert!(
        tls["pkix_detail"].as_str().unwrap().contains("expired"),
        "{tls}"
    );
    assert!(tls["days_to_expiry"].as_i64().unwrap() < 0);
    let ossl = openssl(&rig, 4, &[]);
    assert!(ossl.contains("certificate has expired"), "{ossl}");
    let pf = posttls_finger(&rig, 4);
    assert!(pf.contains("certificate has expired"), "{pf}");
    assert!(!pf.contains("Verified TLS connection"), "{pf}");

    // Bogus TLSA: delivery would not connect; the verdict says why.
    let (code, v, _) = check(&rig, "bogus.test");
    let host = &v["report"]["hosts"][0];
    assert!(
        host["tlsa"]["finding"]
            .as_str()
            .unwrap()
            .starts_with("bogus"),
        "{host}"
    );
    assert_eq!(host["addresses"][0]["decision"]["delivers"], false);
    assert_eq!(code, 2);
}

#[test]
fn table_for_people() {
    // The table, not JSON, for the built-in configuration's view of a name
    // nobody resolves: exit 2 with the MX line saying why.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "data-dir = \"{}\"\n[[listener]]\nname = \"l\"\naddress = \"127.0.0.1:0\"\nrat.accept = [\"x.test\"]\n[dns]\nresolvers = [\"127.0.0.1:1\"]\ntimeout-seconds = 1\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["check", "nowhere.test", "--timeout", "2", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(
        out.starts_with("TLS check of nowhere.test from this gateway"),
        "{out}"
    );
    assert!(out.contains("FAIL  MX"), "{out}");
    assert!(
        !out.contains('\x1b'),
        "no colour when stdout is not a terminal"
    );
    let _ = Path::new("");
}
