//! Broken configurations and the exact line, column and key path each
//! problem is reported at; the example file and the built-in default pass.

use super::LoadedConfig;

const LISTENER: &str =
    "[[listener]]\nname = \"in\"\naddress = \"127.0.0.1:2525\"\nrat.accept = [\"example.com\"]\n";

/// Runs parse + validate and returns the report lines.
fn problems(text: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    // Keep the store lookups inside the temporary directory.
    let text = format!("data-dir = {:?}\n{text}", dir.path().display().to_string());
    let report = match LoadedConfig::parse("c.toml", &text) {
        Ok(l) => l.validate().unwrap_err(),
        Err(r) => r,
    };
    report.to_string().lines().map(str::to_owned).collect()
}

fn has(lines: &[String], prefix: &str, words: &str) {
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(prefix) && l.contains(words)),
        "no line starting {prefix:?} containing {words:?} in\n{}",
        lines.join("\n")
    );
}

#[test]
fn bad_cidr_and_unknown_policy_in_hat() {
    let p = problems(&format!(
        "{LISTENER}[[listener.hat.sender-group]]\nname = \"NET\"\nmatch = [\"10.0.0.0/8\", \"10.0.0.1/8\"]\npolicy = \"NOPE\"\n"
    ));
    has(
        &p,
        "c.toml:8:24: listener[0].hat.sender-group[0].match[1]:",
        "10.0.0.1/8",
    );
    has(
        &p,
        "c.toml:9:1: listener[0].hat.sender-group[0].policy:",
        "no mail flow policy named \"NOPE\"",
    );
    assert_eq!(p.len(), 2, "{p:#?}");
}

#[test]
fn open_relay_is_refused_at_its_sender_group() {
    let p = problems(
        "[[listener]]\nname = \"in\"\naddress = \"0.0.0.0:25\"\nrat.accept = [\"example.com\"]\n\
         [[listener.hat.sender-group]]\nname = \"EVERYONE\"\nmatch = [\"0.0.0.0/0\"]\npolicy = \"R\"\n\
         [listener.hat.policy.R]\naction = \"relay\"\n",
    );
    // The group's header line: that is where the sender group is written.
    has(
        &p,
        "c.toml:6:1: listener[0].hat.sender-group[0]:",
        "open relay",
    );
    assert_eq!(p.len(), 1, "{p:#?}");
}

#[test]
fn contradictory_destinations_and_lists() {
    let p = problems(&format!(
        "{LISTENER}[[outbound.destination]]\ndomain = \"bank.example\"\ntls = \"required-verify\"\n\
         [[outbound.destination]]\ndomain = \"BANK.example.\"\n\
         [outbound.starttls]\nexclude = [\"bank.example\"]\nrequire = [\"bank.example\"]\n"
    ));
    has(
        &p,
        "c.toml:10:1: outbound.destination[1].domain:",
        "already configured by destination[0]",
    );
    has(
        &p,
        "c.toml:12:12: outbound.starttls.exclude[0]:",
        "contradicts starttls.require[0]",
    );
    let p = problems(&format!(
        "{LISTENER}[[outbound.destination]]\ndomain = \".bank.example\"\ntls = \"required-verify\"\n\
         [outbound.starttls]\nexclude = [\"legacy.example\", \"mx.bank.example\"]\n"
    ));
    has(
        &p,
        "c.toml:10:30: outbound.starttls.exclude[1]:",
        "contradicts destination[0] \".bank.example\" tls = \"required-verify\"",
    );
    assert_eq!(p.len(), 1, "{p:#?}");
}

#[test]
fn unknown_certificate_names() {
    let p = problems(&format!(
        "{LISTENER}certificate = \"mx1\"\n[tls.outbound]\nclient-certificate = \"client\"\n"
    ));
    has(
        &p,
        "c.toml:6:1: listener[0].certificate:",
        "no certificate named \"mx1\"",
    );
    has(
        &p,
        "c.toml:8:1: tls.outbound.client-certificate:",
        "no certificate named \"client\"",
    );
}

#[test]
fn certificate_must_exist_in_an_existing_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = portcullis_certstore::Store::open_or_create(dir.path().join("certs")).unwrap();
    let req = portcullis_certstore::SelfSignedRequest::new("mx1.example.com");
    store.create_self_signed("mx1", &req).unwrap();
    let text = format!(
        "data-dir = {:?}\n{LISTENER}certificate = \"mx1\"\n",
        dir.path().display().to_string()
    );
    LoadedConfig::parse("c.toml", &text)
        .unwrap()
        .validate()
        .unwrap();
    let text = text.replace("\"mx1\"", "\"mx2\"");
    let r = LoadedConfig::parse("c.toml", &text)
        .unwrap()
        .validate()
        .unwrap_err();
    assert!(r.to_string().contains("(certificates: mx1)"), "{r}");
}

#[test]
fn addresses_names_and_numbers() {
    let p = problems(
        "hostname = \"bad..host\"\n\
         [[listener]]\nname = \"a\"\naddress = \"localhost:25\"\n\
         [[listener]]\nname = \"a\"\naddress = \"127.0.0.1:26\"\nmax-concurrency = 0\n\
         [[route]]\ndomain = \"example.com\"\nhosts = [\"mx.example.com:0\"]\n\
         [dns]\nresolvers = [\"dns.example\"]\n\
         [queue]\nretry-first-seconds = 600\nretry-max-seconds = 60\n\
         [log]\nlevel = \"loud\"\n",
    );
    has(&p, "c.toml:2:1: hostname:", "bad..host");
    has(
        &p,
        "c.toml:5:1: listener[0].address:",
        "not an IP address and port",
    );
    has(
        &p,
        "c.toml:7:1: listener[1].name:",
        "already the name of listener[0]",
    );
    has(&p, "c.toml:9:1: listener[1].max-concurrency:", "at least 1");
    has(&p, "c.toml:12:10: route[0].hosts[0]:", "port");
    has(&p, "c.toml:14:14: dns.resolvers[0]:", "not an IP address");
    has(
        &p,
        "c.toml:17:1: queue.retry-max-seconds:",
        "shorter than retry-first-seconds",
    );
    has(&p, "c.toml:19:1: log.level:", "\"loud\"");
    assert_eq!(p.len(), 8, "{p:#?}");
}

#[test]
fn dns_priorities_modes_anchors_and_domains() {
    let dir = tempfile::tempdir().unwrap();
    let anchor = dir.path().join("anchor.key");
    std::fs::write(&anchor, "test. IN A 192.0.2.1\n").unwrap();
    let p = problems(&format!(
        "{LISTENER}[dns]\n\
         resolvers = [\"127.0.0.1\", {{ address = \"dns.example\", priority = 2 }}]\n\
         trust-anchor-file = {anchor:?}\n\
         probe-name = \"bad..name\"\n\
         [[dns.domain]]\nname = \"corp.example\"\nservers = []\n\
         [[dns.domain]]\nname = \"corp.example\"\nservers = [\"10.0.0.53\"]\n"
    ));
    has(
        &p,
        "c.toml:7:29: dns.resolvers[1].address:",
        "not an IP address",
    );
    has(
        &p,
        "c.toml:8:1: dns.trust-anchor-file:",
        "line 1: test. A is not a trust anchor",
    );
    has(&p, "c.toml:9:1: dns.probe-name:", "bad..name");
    has(
        &p,
        "c.toml:12:1: dns.domain[0].servers:",
        "at least one server",
    );
    has(&p, "c.toml:14:1: dns.domain[1].name:", "configured twice");
    assert_eq!(p.len(), 5, "{p:#?}");

    let p = problems(&format!(
        "{LISTENER}[dns]\ndnssec = \"trust-ad\"\ntrust-anchor-file = {anchor:?}\n"
    ));
    has(
        &p,
        "c.toml:8:1: dns.trust-anchor-file:",
        "not used with dnssec = \"trust-ad\"",
    );
    let p = problems(&format!("{LISTENER}[dns]\ndnssec = \"maybe\"\n"));
    has(&p, "c.toml:7:10: dns.dnssec:", "unknown variant `maybe`");
    let p = problems(&format!(
        "{LISTENER}[dns]\nresolvers = [{{ address = \"127.0.0.1\", weight = 2 }}]\n"
    ));
    has(&p, "c.toml:7:", "unknown field `weight`");
}

#[test]
fn no_listener_and_bad_cipher_suite() {
    let p = problems("[tls.inbound]\ncipher-suites = [\"RC4_MD5\"]\n");
    has(&p, "c.toml: listener:", "no listener is configured");
    has(
        &p,
        "c.toml:3:1: tls.inbound.cipher-suites:",
        "unknown cipher suite",
    );
}

#[test]
fn the_annotated_example_is_valid() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/portcullis.toml"
    );
    let loaded = LoadedConfig::load(std::path::Path::new(path)).unwrap();
    // Its data directory does not exist here: only the demo certificate may
    // be named, and the example names none.
    loaded.validate().unwrap();
    assert!(loaded.config.listener.len() >= 2);
}

#[test]
fn builtin_default_is_valid() {
    LoadedConfig::builtin().validate().unwrap();
}

mod mutated {
    //! The loader on damaged text: never panics, always terminates, and
    //! every reported position lies inside the text.

    use proptest::prelude::*;

    use super::super::LoadedConfig;
    use super::super::validate::check;

    const EXAMPLE: &str = include_str!("../../../../examples/portcullis.toml");

    fn check_text(text: &str) {
        match LoadedConfig::parse("m.toml", text) {
            Ok(loaded) => {
                if let Err(problems) = check(&loaded.config) {
                    let report = loaded.report(problems);
                    assert!(!report.issues.is_empty());
                    positions_inside(text, &report);
                }
            }
            Err(report) => {
                assert!(!report.issues.is_empty());
                positions_inside(text, &report);
            }
        }
    }

    fn positions_inside(text: &str, report: &super::super::ConfigReport) {
        let lines = text.split('\n').count();
        for i in &report.issues {
            if let Some((line, col)) = i.position {
                assert!(line >= 1 && line <= lines, "{i:?}");
                assert!(col >= 1, "{i:?}");
            }
        }
    }

    /// `default` cases unless `PROPTEST_CASES` asks for another number (a long
    /// run before a release).
    fn cases(default: u32) -> u32 {
        std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(default)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(cases(300)))]

        #[test]
        fn edits_of_the_example(
            edits in proptest::collection::vec(
                (any::<prop::sample::Index>(), 0usize..3, prop::sample::select(vec![
                    "", "\"", "[", "]", "=", "\n", "x", "0", "-1", "[[listener]]\n", "{", "}", ".", "é", "ALL", ",", "#",
                ])),
                1..6,
            )
        ) {
            let mut text: Vec<char> = EXAMPLE.chars().collect();
            for (at, delete, insert) in edits {
                if text.is_empty() {
                    break;
                }
                let at = at.index(text.len());
                let end = (at + delete).min(text.len());
                text.splice(at..end, insert.chars());
            }
            let text: String = text.into_iter().collect();
            check_text(&text);
        }

        #[test]
        fn arbitrary_text(text in "\\PC{0,300}") {
            check_text(&text);
        }
    }
}

#[test]
fn spool_numbers_out_of_range_are_named_where_they_are_written() {
    let p = problems(&format!(
        "{LISTENER}[spool]\nsegment-mib = 0\nmin-free-percent = 80\nkeep-damaged-files = 3\nflush = true\n"
    ));
    // Unknown keys are reported first (all-or-nothing load).
    has(&p, "c.toml:10:1: spool.flush:", "unknown field");
    let p = problems(&format!(
        "{LISTENER}[spool]\nsegment-mib = 0\nmin-free-percent = 80\nkeep-damaged-files = 3\n"
    ));
    has(
        &p,
        "c.toml:7:1: spool.segment-mib:",
        "0 is outside 1..=1024",
    );
    has(&p, "c.toml:8:1: spool.min-free-percent:", "at most 50");
    assert_eq!(p.len(), 2, "{p:#?}");
}

#[test]
fn never_downgrade_keys_are_checked() {
    let p = problems(&format!(
        "{LISTENER}[[outbound.destination]]\ndomain = \"partner.example\"\nnever-downgrade = true\nnever-downgrade-days = 0\n"
    ));
    assert!(
        p.iter()
            .any(|l| l.contains("never-downgrade-days") && l.contains("between 1 and 3650")),
        "{p:#?}"
    );
    assert_eq!(p.len(), 1, "{p:#?}");
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "data-dir = {:?}\n{LISTENER}[[outbound.destination]]\ndomain = \"default\"\nnever-downgrade = true\nnever-downgrade-days = 45\n",
        dir.path().display().to_string()
    );
    let loaded = LoadedConfig::parse("c.toml", &text).unwrap();
    assert!(loaded.validate().is_ok());
}
