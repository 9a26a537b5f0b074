//! DNSSEC-validated lookups against a real signed zone on loopback.
//!
//! The test signs a `test.` zone with `ldns-keygen`/`ldns-signzone`, serves
//! it and an unsigned child `insecure.test.` (delegated without DS) with
//! `knotd` on a free 127.0.0.1 port, and points [`DaneResolver`] at it with
//! the zone's KSK as trust anchor, so hickory does the validating itself.
//! One RRSIG is corrupted after signing to make a bogus answer. Needs the
//! Debian packages `knot` and `ldnsutils`.

use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use portcullis_dane::dns::{
    Answer, DaneResolver, DnssecStatus, Proof, ResolverSettings, SelfCheck,
};
use portcullis_dane::generate::tlsa_for_chain;
use portcullis_dane::pki_types::{CertificateDer, UnixTime};
use portcullis_dane::{MatchFailure, MatchOptions, ReferenceNames, TlsaSet, Verdict, match_chain};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

/// knotd child process, killed when dropped.
struct Knot(Child);

impl Drop for Knot {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run {cmd:?}: {e} (install the Debian packages `knot` and `ldnsutils`)")
    });
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn free_port() -> u16 {
    // UDP and TCP must both be free; knot binds both.
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

struct Pki {
    /// leaf for mx.example.test (DANE-EE published)
    ee_chain: Vec<CertificateDer<'static>>,
    /// leaf for real.target.test, issued by a CA published as DANE-TA
    ta_chain: Vec<CertificateDer<'static>>,
}

fn pki() -> Pki {
    let mut cap = CertificateParams::new(Vec::<String>::new()).unwrap();
    cap.distinguished_name
        .push(DnType::CommonName, "Zone Test CA");
    cap.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(cap, KeyPair::generate().unwrap()).unwrap();
    let leaf = |names: Vec<String>| {
        CertificateParams::new(names)
            .unwrap()
            .signed_by(&KeyPair::generate().unwrap(), &ca)
            .unwrap()
            .der()
            .clone()
    };
    Pki {
        ee_chain: vec![leaf(vec!["mx.example.test".into()]), ca.der().clone()],
        ta_chain: vec![leaf(vec!["real.target.test".into()]), ca.der().clone()],
    }
}

/// Writes, signs and serves the zones; returns the server, its address and
/// the trust anchor file.
fn start_zone(dir: &Path, pki: &Pki) -> (Knot, SocketAddr, std::path::PathBuf) {
    let ee = tlsa_for_chain(&pki.ee_chain, 0, 3, 1, 1).unwrap();
    let wrong = tlsa_for_chain(&pki.ta_chain, 0, 3, 1, 1).unwrap();
    let ta = tlsa_for_chain(&pki.ta_chain, 1, 2, 1, 1).unwrap();
    let pkix = tlsa_for_chain(&pki.ee_chain, 0, 1, 1, 1).unwrap();
    let zone = format!(
        "$ORIGIN test.\n$TTL 300\n\
         @ IN SOA ns.test. hostmaster.test. 1 3600 600 86400 300\n\
         @ IN NS ns.test.\n\
         ns IN A 127.0.0.1\n\
         example IN MX 10 mx.example.test.\n\
         mx.example IN A 127.0.0.1\n\
         _25._tcp.mx.example IN TLSA {ee}\n\
         nomatch IN MX 10 mx.nomatch.test.\n\
         mx.nomatch IN A 127.0.0.1\n\
         _25._tcp.mx.nomatch IN TLSA {wrong}\n\
         mx.bogus IN A 127.0.0.1\n\
         _25._tcp.mx.bogus IN TLSA {ee}\n\
         mx.alias IN CNAME real.target.test.\n\
         real.target IN A 127.0.0.1\n\
         _25._tcp.real.target IN TLSA {ta}\n\
         mx.unusable IN A 127.0.0.1\n\
         _25._tcp.mx.unusable IN TLSA 3 1 1 00\n\
         _25._tcp.mx.unusable IN TLSA {pkix}\n\
         _25._tcp.mx.unusable IN TLSA 3 1 9 {hash}\n\
         insecure IN NS ns.insecure.test.\n\
         ns.insecure IN A 127.0.0.1\n",
        hash = "ab".repeat(32),
    );
    let child = format!(
        "$ORIGIN insecure.test.\n$TTL 300\n\
         @ IN SOA ns.insecure.test. hostmaster.test. 1 3600 600 86400 300\n\
         @ IN NS ns.insecure.test.\n\
         ns IN A 127.0.0.1\n\
         mx IN A 127.0.0.1\n\
         _25._tcp.mx IN TLSA {ee}\n"
    );
    std::fs::write(dir.join("test.zone"), zone).unwrap();
    std::fs::write(dir.join("insecure.test.zone"), child).unwrap();
    let keygen = |ksk: bool| {
        let mut c = Command::new("ldns-keygen");
        c.current_dir(dir).args(["-a", "ECDSAP256SHA256"]);
        if ksk {
            c.arg("-k");
        }
        run(c.arg("test."))
    };
    let ksk = keygen(true);
    let zsk = keygen(false);
    run(Command::new("ldns-signzone").current_dir(dir).args([
        "-o",
        "test.",
        "test.zone",
        &zsk,
        &ksk,
    ]));

    // Corrupt the RRSIG over _25._tcp.mx.bogus.test. TLSA: flip one
    // character of the base64 signature (keeping it valid base64).
    let signed = std::fs::read_to_string(dir.join("test.zone.signed")).unwrap();
    let mut corrupted = 0;
    let lines: Vec<String> = signed
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.first() == Some(&"_25._tcp.mx.bogus.test.")
                && f.get(3) == Some(&"RRSIG")
                && f.get(4) == Some(&"TLSA")
            {
                corrupted += 1;
                let sig = f.last().unwrap();
                let mut s: Vec<char> = sig.chars().collect();
                s[10] = if s[10] == 'A' { 'B' } else { 'A' };
                let sig2: String = s.into_iter().collect();
                l.replacen(sig, &sig2, 1)
            } else {
                l.to_string()
            }
        })
        .collect();
    assert_eq!(corrupted, 1, "expected one RRSIG for the bogus TLSA");
    std::fs::write(dir.join("test.zone.signed"), lines.join("\n") + "\n").unwrap();

    let port = free_port();
    std::fs::create_dir_all(dir.join("db")).unwrap();
    let d = dir.display();
    let conf = format!(
        "server:\n    rundir: \"{d}\"\n    listen: 127.0.0.1@{port}\n\
         database:\n    storage: \"{d}/db\"\n\
         control:\n    listen: \"{d}/knot.sock\"\n\
         template:\n  - id: default\n    storage: \"{d}\"\n    zonefile-sync: -1\n    zonefile-load: whole\n    journal-content: none\n    semantic-checks: off\n\
         zone:\n  - domain: test.\n    file: test.zone.signed\n  - domain: insecure.test.\n    file: insecure.test.zone\n\
         log:\n  - target: stderr\n    any: warning\n"
    );
    std::fs::write(dir.join("knot.conf"), conf).unwrap();
    let child = Command::new("knotd")
        .arg("-c")
        .arg(dir.join("knot.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start knotd (Debian package `knot`)");
    let knot = Knot(child);
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "knotd did not start listening on {addr}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The trust anchor is the zone's whole DNSKEY RRset (KSK and ZSK):
    // hickory 0.26 only stops its DS chase below a non-root anchor when
    // every key of the RRset is an anchor.
    let mut anchor = std::fs::read_to_string(dir.join(format!("{ksk}.key"))).unwrap();
    anchor.push_str(&std::fs::read_to_string(dir.join(format!("{zsk}.key"))).unwrap());
    std::fs::write(dir.join("anchor.keys"), anchor).unwrap();
    (knot, addr, dir.join("anchor.keys"))
}

fn names(v: &[String]) -> ReferenceNames {
    ReferenceNames::new(v)
}

fn matches(
    set: &TlsaSet,
    chain: &[CertificateDer<'static>],
    reference: &ReferenceNames,
) -> Verdict {
    match_chain(
        set,
        chain,
        reference,
        UnixTime::now(),
        &MatchOptions::default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnssec_signed_zone_classification() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let (_knot, addr, anchor) = start_zone(dir.path(), &pki);

    let mut settings = ResolverSettings::new(vec![addr]);
    settings.trust_anchor_file = Some(anchor);
    settings.probe_name = Some("test.".into());
    let resolver = DaneResolver::new(&settings).unwrap();
    assert_eq!(resolver.self_check().await, SelfCheck::Validating);

    // Secure MX + secure TLSA that matches.
    let mx = resolver.mx("example.test").await.unwrap();
    assert_eq!(mx.status(), DnssecStatus::Secure, "{mx:?}");
    let Answer::Records(mx) = mx else {
        unreachable!()
    };
    let mx = mx.require(Proof::Secure).unwrap();
    assert_eq!(mx, vec![(10, "mx.example.test.".to_string())]);
    let t = resolver.tlsa("mx.example.test", 25).await.unwrap();
    assert_eq!(t.answer.status(), DnssecStatus::Secure, "{:?}", t.answer);
    assert_eq!(t.address_status, DnssecStatus::Secure);
    let Answer::Records(set) = t.answer else {
        unreachable!()
    };
    let set = set.require(Proof::Secure).unwrap();
    let v = matches(&set, &pki.ee_chain, &names(&t.reference_names));
    assert_eq!(v.matched().map(|m| m.depth()), Some(0), "{v}");
    let addrs = resolver.addresses("mx.example.test").await.unwrap();
    assert_eq!(addrs.status(), DnssecStatus::Secure);

    // Secure TLSA that does not match the presented certificate.
    let t = resolver.tlsa("mx.nomatch.test", 25).await.unwrap();
    let Answer::Records(set) = t.answer else {
        panic!("{:?}", t.answer)
    };
    let set = set.require(Proof::Secure).unwrap();
    let v = matches(&set, &pki.ee_chain, &names(&t.reference_names));
    assert!(
        matches!(v, Verdict::Failed(MatchFailure::NoMatch { .. })),
        "{v}"
    );

    // Secure denial: no TLSA for ns.test, proven.
    let t = resolver.tlsa("ns.test", 25).await.unwrap();
    assert!(
        matches!(
            t.answer,
            Answer::NoRecords {
                proof: Proof::Secure
            }
        ),
        "{:?}",
        t.answer
    );

    // Unsigned child zone (delegation without DS): records, but insecure.
    let t = resolver.tlsa("mx.insecure.test", 25).await.unwrap();
    assert_eq!(t.answer.status(), DnssecStatus::Insecure, "{:?}", t.answer);
    assert_eq!(t.address_status, DnssecStatus::Insecure);
    let Answer::Records(set) = t.answer else {
        unreachable!()
    };
    assert!(
        set.require(Proof::Secure).is_err(),
        "insecure TLSA must not be usable"
    );

    // Broken signature: bogus, never "no TLSA".
    let t = resolver.tlsa("mx.bogus.test", 25).await.unwrap();
    assert_eq!(t.answer.status(), DnssecStatus::Bogus, "{:?}", t.answer);

    // CNAME'd MX host: TLSA base domain is the secure expansion, and both
    // names are reference names; the DANE-TA record there matches a leaf
    // that only carries the target name.
    let t = resolver.tlsa("mx.alias.test", 25).await.unwrap();
    assert_eq!(t.base_domain, "real.target.test");
    assert_eq!(
        t.reference_names,
        vec!["mx.alias.test".to_string(), "real.target.test".to_string()]
    );
    let Answer::Records(set) = t.answer else {
        panic!("{:?}", t.answer)
    };
    let set = set.require(Proof::Secure).unwrap();
    let v = matches(&set, &pki.ta_chain, &names(&t.reference_names));
    assert_eq!(v.matched().map(|m| m.depth()), Some(1), "{v}");
    // With only the alias as reference name the DANE-TA name check fails.
    let v = matches(&set, &pki.ta_chain, &ReferenceNames::new(["mx.alias.test"]));
    assert!(
        matches!(v, Verdict::Failed(MatchFailure::NameMismatch { .. })),
        "{v}"
    );

    // All-unusable set: TLS mandatory, no authentication.
    let t = resolver.tlsa("mx.unusable.test", 25).await.unwrap();
    let Answer::Records(set) = t.answer else {
        panic!("{:?}", t.answer)
    };
    let set = set.require(Proof::Secure).unwrap();
    assert_eq!(set.records().len(), 3);
    let v = matches(&set, &pki.ee_chain, &names(&t.reference_names));
    assert!(
        matches!(v, Verdict::NoUsableRecords { ref unusable } if unusable.len() == 3),
        "{v}"
    );

    // The same server with the built-in root anchor cannot validate
    // anything: the self-check reports DANE unavailable.
    let mut root = ResolverSettings::new(vec![addr]);
    root.probe_name = Some("test.".into());
    root.timeout = Duration::from_secs(2);
    let resolver = DaneResolver::new(&root).unwrap();
    assert!(matches!(
        resolver.self_check().await,
        SelfCheck::Unavailable(_)
    ));
}
