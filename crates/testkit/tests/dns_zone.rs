//! The DNSSEC zone fixture answers what it was built with, classified the
//! way the gateway's resolver (`portcullis-dane`, hickory validating with
//! the fixture's trust anchor) classifies it: secure MX+TLSA, insecure
//! delegation, bogus signature, CNAME'd TLSA base, all-unusable set; both
//! straight from knotd and through the validating unbound. Also: records
//! added after start are served once published. Needs the Debian packages
//! `knot`, `ldnsutils` and `unbound` (scripts/install-test-deps.sh).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use portcullis_dane::dns::{
    Answer, DaneResolver, DnssecStatus, Proof, ResolverSettings, SelfCheck,
};
use portcullis_testkit::dns_zone::ZoneBuilder;
use portcullis_testkit::pki::TestPki;

fn resolver(server: SocketAddr, anchor: std::path::PathBuf) -> DaneResolver {
    let mut s = ResolverSettings::new(vec![server]);
    s.trust_anchor_file = Some(anchor);
    s.probe_name = Some("test.".into());
    s.timeout = Duration::from_secs(5);
    DaneResolver::new(&s).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zone_classifications_through_knot_and_unbound() {
    let pki = TestPki::new().unwrap();
    let leaf = pki.leaf(&["mx.secure.test"]).unwrap();
    let ip = Ipv4Addr::new(127, 0, 0, 1);
    let zone = ZoneBuilder::new()
        .with_validating_resolver()
        .mx("secure.test", 10, "mx.secure.test")
        .a("mx.secure.test", ip)
        .tlsa_for("mx.secure.test", 25, leaf.chain(), 0, [3, 1, 1])
        .unwrap()
        .mx("bogus.test", 10, "mx.bogus.test")
        .a("mx.bogus.test", ip)
        .tlsa_for("mx.bogus.test", 25, leaf.chain(), 0, [3, 1, 1])
        .unwrap()
        .bogus_tlsa("mx.bogus.test", 25)
        .cname("mx.alias.test", "real.target.test")
        .a("real.target.test", ip)
        .tlsa_for("real.target.test", 25, leaf.chain(), 1, [2, 1, 1])
        .unwrap()
        .a("mx.unusable.test", ip)
        .tlsa("mx.unusable.test", 25, "3 1 1 00")
        .tlsa(
            "mx.unusable.test",
            25,
            &format!("3 1 9 {}", "ab".repeat(32)),
        )
        .mx("insecure.test", 10, "mx.insecure.test")
        .a("mx.insecure.test", ip)
        .tlsa_for("mx.insecure.test", 25, leaf.chain(), 0, [3, 1, 1])
        .unwrap()
        .start()
        .unwrap();

    for server in [zone.authoritative_addr(), zone.resolver_addr().unwrap()] {
        let r = resolver(server, zone.trust_anchor_file());
        assert_eq!(r.self_check().await, SelfCheck::Validating, "via {server}");

        let mx = r.mx("secure.test").await.unwrap();
        assert_eq!(mx.status(), DnssecStatus::Secure, "via {server}: {mx:?}");
        let t = r.tlsa("mx.secure.test", 25).await.unwrap();
        assert_eq!(t.answer.status(), DnssecStatus::Secure, "via {server}");
        let Answer::Records(set) = t.answer else {
            panic!("no TLSA via {server}")
        };
        let set = set.require(Proof::Secure).unwrap();
        assert_eq!(set.records().len(), 1);

        let t = r.tlsa("mx.insecure.test", 25).await.unwrap();
        assert_eq!(
            t.answer.status(),
            DnssecStatus::Insecure,
            "via {server}: {:?}",
            t.answer
        );

        // knotd serves the broken signature, hickory calls it bogus;
        // unbound refuses to pass it on (SERVFAIL), a lookup failure. Both
        // must never look like "no TLSA".
        let t = r.tlsa("mx.bogus.test", 25).await;
        match t {
            Ok(t) => assert!(
                matches!(
                    t.answer.status(),
                    DnssecStatus::Bogus | DnssecStatus::LookupFailed
                ),
                "via {server}: {:?}",
                t.answer
            ),
            Err(e) => assert!(!e.to_string().is_empty()),
        }

        let t = r.tlsa("mx.alias.test", 25).await.unwrap();
        assert_eq!(t.base_domain, "real.target.test", "via {server}");
        assert_eq!(t.answer.status(), DnssecStatus::Secure);

        let t = r.tlsa("mx.unusable.test", 25).await.unwrap();
        let Answer::Records(set) = t.answer else {
            panic!("no TLSA via {server}")
        };
        assert_eq!(set.require(Proof::Secure).unwrap().records().len(), 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_added_after_start_are_served_once_published() {
    let pki = TestPki::new().unwrap();
    let leaf = pki.leaf(&["mx.later.test"]).unwrap();
    let mut zone = ZoneBuilder::new()
        .a("mx.later.test", Ipv4Addr::new(127, 0, 0, 9))
        .start()
        .unwrap();
    let r = resolver(zone.authoritative_addr(), zone.trust_anchor_file());
    let t = r.tlsa("mx.later.test", 25).await.unwrap();
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
    zone.add(|b| b.tlsa_for("mx.later.test", 25, leaf.chain(), 0, [3, 1, 1]))
        .unwrap();
    zone.publish().unwrap();
    // A fresh resolver: no negative cache.
    let r = resolver(zone.authoritative_addr(), zone.trust_anchor_file());
    let t = r.tlsa("mx.later.test", 25).await.unwrap();
    assert_eq!(t.answer.status(), DnssecStatus::Secure, "{:?}", t.answer);
}

#[test]
fn records_outside_the_test_zone_are_refused() {
    let e = ZoneBuilder::new()
        .a("mx.example.com", Ipv4Addr::LOCALHOST)
        .start()
        .unwrap_err();
    assert!(e.to_string().contains("outside the test zone"), "{e}");
}
