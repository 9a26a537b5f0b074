//! The gateway's resolver (`portcullis-dane`'s `DaneResolver`) against the
//! signed loopback zone, for what an operator configures: a trust anchor
//! given as the KSK alone or as a DS record, names outside a private
//! anchor's tree, a resolver path that strips DNSSEC (the self-check must
//! say so and how to fix it), trusting the AD bit of a validating resolver
//! (unbound in front of knotd), priority levels of servers, per-domain
//! servers (split DNS) and cache flushes. Needs `knot`, `ldnsutils` and
//! `unbound` (scripts/install-test-deps.sh); all traffic stays on loopback.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

use portcullis_dane::TlsaFinding;
use portcullis_dane::dns::{
    Answer, DaneResolver, DnssecMode, DnssecStatus, DomainServers, Proof, ResolverSettings,
    SelfCheck,
};
use portcullis_testkit::dns_zone::{DnsZone, ZoneBuilder};
use portcullis_testkit::pki::TestPki;

const LOCAL: Ipv4Addr = Ipv4Addr::LOCALHOST;

fn settings(servers: Vec<SocketAddr>, anchor: Option<PathBuf>) -> ResolverSettings {
    let mut s = ResolverSettings::new(servers);
    s.trust_anchor_file = anchor;
    s.timeout = Duration::from_secs(2);
    s
}

fn resolver(s: &ResolverSettings) -> DaneResolver {
    DaneResolver::new(s).unwrap()
}

/// secure.test (MX, TLSA 3 1 1), bogus.test (broken TLSA signature),
/// insecure.test (unsigned child), outside.example (outside the tree).
fn zone(builder: ZoneBuilder) -> DnsZone {
    let pki = TestPki::new().unwrap();
    let leaf = pki.leaf(&["mx.secure.test"]).unwrap();
    builder
        .mx("secure.test", 10, "mx.secure.test")
        .a("mx.secure.test", LOCAL)
        .tlsa_for("mx.secure.test", 25, leaf.chain(), 0, [3, 1, 1])
        .unwrap()
        .a("mx.bogus.test", LOCAL)
        .tlsa_for("mx.bogus.test", 25, leaf.chain(), 0, [3, 1, 1])
        .unwrap()
        .bogus_tlsa("mx.bogus.test", 25)
        .mx("insecure.test", 10, "mx.insecure.test")
        .a("mx.insecure.test", LOCAL)
        .mx("outside.example", 10, "mx.outside.example")
        .a("mx.outside.example", LOCAL)
        .start()
        .unwrap()
}

/// A UDP port on loopback where nothing answers.
fn dead_server() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ksk_alone_or_a_ds_record_anchors_the_zone() {
    let zone = zone(ZoneBuilder::new());
    for anchor in [
        zone.ksk_anchor_file(),
        zone.ds_anchor_file(),
        zone.trust_anchor_file(),
    ] {
        let r = resolver(&settings(
            vec![zone.authoritative_addr()],
            Some(anchor.clone()),
        ));
        assert_eq!(r.probe_name(), "test.");
        assert_eq!(r.self_check().await, SelfCheck::Validating, "{anchor:?}");
        let mx = r.mx("secure.test").await.unwrap();
        assert_eq!(mx.status(), DnssecStatus::Secure, "{anchor:?}: {mx:?}");
        let t = r.tlsa("mx.secure.test", 25).await.unwrap();
        assert!(
            matches!(t.answer.into_finding(), TlsaFinding::SecureUsable(ref s) if s.records().len() == 1),
            "{anchor:?}"
        );
        let t = r.tlsa("mx.bogus.test", 25).await.unwrap();
        assert!(
            matches!(t.answer.into_finding(), TlsaFinding::Bogus { .. }),
            "{anchor:?}"
        );
        let mx = r.mx("insecure.test").await.unwrap();
        assert_eq!(mx.status(), DnssecStatus::Insecure, "{anchor:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anchor_that_matches_no_key_is_explained() {
    let zone = zone(ZoneBuilder::new());
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong-ds.keys");
    // A DS for key tag 1 with a digest of nothing the zone has.
    std::fs::write(&wrong, format!("test. IN DS 1 13 2 {}\n", "ab".repeat(32))).unwrap();
    let r = resolver(&settings(vec![zone.authoritative_addr()], Some(wrong)));
    let SelfCheck::Unavailable(why) = r.self_check().await else {
        panic!("a wrong anchor must not validate");
    };
    assert!(why.contains("matches the trust anchor"), "{why}");
    assert!(why.contains("Fix: check trust-anchor-file"), "{why}");
    // Nothing under the anchor is trusted: bogus, never secure or insecure.
    assert_eq!(
        r.mx("secure.test").await.unwrap().status(),
        DnssecStatus::Bogus
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_outside_a_private_anchor_are_indeterminate_not_bogus() {
    let zone = zone(ZoneBuilder::new());
    let r = resolver(&settings(
        vec![zone.authoritative_addr()],
        Some(zone.ksk_anchor_file()),
    ));
    let mx = r.mx("outside.example").await.unwrap();
    assert_eq!(mx.status(), DnssecStatus::Indeterminate, "{mx:?}");
    let Answer::Records(mx) = mx else {
        unreachable!()
    };
    assert_eq!(mx.proof(), Proof::Indeterminate);
    assert!(mx.require(Proof::Secure).is_err(), "never secure");
    let a = r.addresses("mx.outside.example").await.unwrap();
    assert_eq!(a.status(), DnssecStatus::Indeterminate);
    let t = r.tlsa("mx.outside.example", 25).await.unwrap();
    assert!(
        matches!(
            t.answer.into_finding(),
            TlsaFinding::Insecure {
                status: DnssecStatus::Indeterminate,
                records: false
            }
        ),
        "DANE does not apply, and the lookup did not fail"
    );
    // With the built-in root anchor the same answer has no chain at all
    // (this root has no keys): that is bogus, as it should be.
    let root = resolver(&settings(vec![zone.authoritative_addr()], None));
    assert!(matches!(
        root.mx("outside.example").await.unwrap().status(),
        DnssecStatus::Bogus | DnssecStatus::LookupFailed
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_that_strips_dnssec_is_named_with_the_fix() {
    let zone = zone(ZoneBuilder::new().without_signatures());
    for anchor in [zone.trust_anchor_file(), zone.ksk_anchor_file()] {
        let r = resolver(&settings(vec![zone.authoritative_addr()], Some(anchor)));
        let SelfCheck::Unavailable(why) = r.self_check().await else {
            panic!("an unsigned answer under a trust anchor must not validate");
        };
        assert!(why.contains("without DNSSEC signatures (RRSIG)"), "{why}");
        assert!(why.contains("strips DNSSEC records"), "{why}");
        assert!(why.contains("Fix:"), "{why}");
        // Every lookup below the anchor fails validation, with a short
        // reason (it goes into deferral lines), never as "insecure".
        let mx = r.mx("secure.test").await.unwrap();
        match &mx {
            Answer::Bogus { detail } | Answer::LookupFailed { detail } => {
                assert!(detail.len() < 200, "{detail}")
            }
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_ad_takes_the_local_validators_verdict() {
    let zone = zone(ZoneBuilder::new().with_validating_resolver());
    let mut s = settings(vec![zone.resolver_addr().unwrap()], None);
    s.dnssec = DnssecMode::TrustAd;
    s.probe_name = Some("test.".into());
    let r = resolver(&s);
    assert_eq!(r.self_check().await, SelfCheck::Validating);
    let mx = r.mx("secure.test").await.unwrap();
    assert_eq!(mx.status(), DnssecStatus::Secure, "{mx:?}");
    let t = r.tlsa("mx.secure.test", 25).await.unwrap();
    assert_eq!(t.address_status, DnssecStatus::Secure);
    assert!(matches!(
        t.answer.into_finding(),
        TlsaFinding::SecureUsable(_)
    ));
    assert_eq!(
        r.mx("insecure.test").await.unwrap().status(),
        DnssecStatus::Insecure
    );
    // unbound answers SERVFAIL for the broken signature: a failed lookup.
    let t = r.tlsa("mx.bogus.test", 25).await.unwrap();
    assert!(
        matches!(t.answer.into_finding(), TlsaFinding::Failed { ref detail } if detail.contains("SERVFAIL"))
    );
    // A secure denial keeps its AD bit (hickory's resolver would lose it).
    let t = r.tlsa("ns.test", 25).await.unwrap();
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

    // knotd does not validate: no AD bit, so nothing is secure, and the
    // self-check says why.
    let mut s = settings(vec![zone.authoritative_addr()], None);
    s.dnssec = DnssecMode::TrustAd;
    s.probe_name = Some("test.".into());
    let r = resolver(&s);
    let SelfCheck::Unavailable(why) = r.self_check().await else {
        panic!("knotd sets no AD bit");
    };
    assert!(why.contains("without the AD bit"), "{why}");
    assert_eq!(
        r.mx("secure.test").await.unwrap().status(),
        DnssecStatus::Insecure
    );

    // A trust anchor makes no sense when the resolvers hold them.
    let mut s = settings(
        vec![zone.authoritative_addr()],
        Some(zone.trust_anchor_file()),
    );
    s.dnssec = DnssecMode::TrustAd;
    assert!(DaneResolver::new(&s).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priority_levels_and_per_domain_servers() {
    let main = zone(ZoneBuilder::new().a("host.test", Ipv4Addr::new(127, 0, 0, 1)));
    let other = ZoneBuilder::new()
        .a("host.test", Ipv4Addr::new(127, 0, 0, 2))
        .a("srv.split.test", Ipv4Addr::new(127, 0, 0, 3))
        .start()
        .unwrap();
    let ip = |n: u8| IpAddr::from(Ipv4Addr::new(127, 0, 0, n));

    // The first level is dead: the second answers, validated as usual.
    let mut s = settings(vec![dead_server()], Some(main.ksk_anchor_file()));
    s.fallback_servers = vec![vec![main.authoritative_addr()]];
    let r = resolver(&s);
    assert_eq!(r.self_check().await, SelfCheck::Validating);
    let a = r.addresses("host.test").await.unwrap();
    assert_eq!(a.status(), DnssecStatus::Secure, "{a:?}");

    // The first level answers: the second is not asked.
    let mut s = settings(vec![other.authoritative_addr()], None);
    s.fallback_servers = vec![vec![main.authoritative_addr()]];
    let r = resolver(&s);
    assert_eq!(
        r.unvalidated_addresses("host.test").await.unwrap(),
        vec![ip(2)]
    );

    // Split DNS: split.test goes to the other server (insecure: an internal
    // zone without a delegation), everything else to the main one.
    let mut s = settings(
        vec![main.authoritative_addr()],
        Some(main.ksk_anchor_file()),
    );
    let mut split = DomainServers::new("split.test", vec![other.authoritative_addr()]);
    split.insecure = true;
    s.domains = vec![split];
    let r = resolver(&s);
    let Answer::Records(a) = r.addresses("srv.split.test").await.unwrap() else {
        panic!("split.test must come from its own server");
    };
    assert_eq!(a.proof(), Proof::Insecure);
    assert_eq!(a.into_parts().1.1, vec![ip(3)]);
    let Answer::Records(a) = r.addresses("host.test").await.unwrap() else {
        panic!("host.test from the main server");
    };
    assert_eq!(a.proof(), Proof::Secure);
    assert_eq!(a.into_parts().1.1, vec![ip(1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_forgets_cached_answers() {
    let mut zone = ZoneBuilder::new().txt("note.test", "one").start().unwrap();
    let r = resolver(&settings(
        vec![zone.authoritative_addr()],
        Some(zone.ksk_anchor_file()),
    ));
    assert_eq!(r.txt("note.test").await.unwrap(), vec![b"one".to_vec()]);
    zone.add(|b| Ok(b.txt("note.test", "two"))).unwrap();
    zone.publish().unwrap();
    // Still cached (TTL 300 s).
    assert_eq!(r.txt("note.test").await.unwrap(), vec![b"one".to_vec()]);
    r.flush_cache().unwrap();
    let mut txt = r.txt("note.test").await.unwrap();
    txt.sort();
    assert_eq!(txt, vec![b"one".to_vec(), b"two".to_vec()]);
    assert_eq!(r.self_check().await, SelfCheck::Validating, "primed again");
}
