//! Property tests of every parser of untrusted text: none panics on any
//! input, and every value that has a serialised form parses back to itself.

use portcullis_policy::mta_sts::{MxPattern, StsMode, StsPolicy, StsTxtRecord};
use portcullis_policy::*;
use proptest::prelude::*;

fn label() -> impl Strategy<Value = String> {
    // No "??--" labels: "xn--" starts an A-label that must be valid
    // punycode (IDNA refuses "xn---xj" rightly), and IDNA reserves the rest.
    "[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?".prop_filter("reserved ??-- label", |l: &String| {
        l.get(2..4) != Some("--")
    })
}

fn domain() -> impl Strategy<Value = String> {
    // The top label starts with a letter: all-numeric ones are addresses.
    (prop::collection::vec(label(), 1..4), "[a-z][a-z0-9]{0,5}")
        .prop_map(|(v, tld)| format!("{}.{tld}", v.join(".")))
}

fn mx_pattern() -> impl Strategy<Value = String> {
    (any::<bool>(), domain()).prop_map(|(w, d)| if w { format!("*.{d}") } else { d })
}

/// 2048 cases unless `PROPTEST_CASES` asks for another number (a long run
/// before a release).
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2048)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn txt_parser_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = StsTxtRecord::parse(&bytes);
        let _ = StsTxtRecord::select([bytes.as_slice(), b"v=STSv1; id=x"]);
    }

    #[test]
    fn txt_parser_never_panics_on_near_valid(s in "v=STSv1[; \t]{0,3}(id=[A-Za-z0-9]{0,40})?([; \t]{0,3}[a-z_.=-]{0,8}=?[!-~]{0,8}){0,3}[; \t]{0,2}") {
        if let Ok(r) = StsTxtRecord::parse(s.as_bytes()) {
            prop_assert_eq!(StsTxtRecord::parse(r.to_string().as_bytes()).unwrap(), r);
        }
    }

    #[test]
    fn txt_round_trip(id in "[A-Za-z0-9]{1,32}", ext in prop::collection::vec(("[a-z0-9][a-z0-9_.-]{0,10}", "[!-:<>-~]{1,10}"), 0..3)) {
        let mut s = format!("v=STSv1; id={id}");
        for (k, v) in &ext {
            if k == "id" { continue; }
            s.push_str(&format!("; {k}={v}"));
        }
        let r = StsTxtRecord::parse(s.as_bytes()).unwrap();
        prop_assert_eq!(r.id(), id.as_str());
        prop_assert_eq!(StsTxtRecord::parse(r.to_string().as_bytes()).unwrap(), r);
    }

    #[test]
    fn policy_parser_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = StsPolicy::parse(&bytes);
    }

    #[test]
    fn policy_parser_never_panics_on_near_valid(lines in prop::collection::vec(
        "(version|mode|max_age|mx|x-ext)[:]?[ \t]{0,2}(STSv1|enforce|testing|none|[0-9]{1,12}|\\*?\\.?[a-zé.-]{0,20}|\\S{0,5})[ \t\r]{0,2}", 0..8),
        crlf in any::<bool>()) {
        let body = lines.join(if crlf { "\r\n" } else { "\n" });
        if let Ok(p) = StsPolicy::parse(body.as_bytes()) {
            prop_assert_eq!(StsPolicy::parse(p.to_string().as_bytes()).unwrap(), p);
        }
    }

    #[test]
    fn policy_round_trip(mode in prop::sample::select(vec![StsMode::None, StsMode::Testing, StsMode::Enforce]),
                         max_age in 0u32..=31_557_600,
                         mx in prop::collection::vec(mx_pattern(), 1..5),
                         extra in prop::collection::vec(("[a-z][a-z0-9_]{0,8}", "[!-~]{1,12}"), 0..3)) {
        let mut body = format!("version: STSv1\nmode: {}\n", mode.as_str());
        for m in &mx { body.push_str(&format!("mx: {m}\n")); }
        for (k, v) in &extra {
            if ["version", "mode", "max_age", "mx"].contains(&k.as_str()) { continue; }
            body.push_str(&format!("{k}: {v}\n"));
        }
        body.push_str(&format!("max_age: {max_age}\n"));
        let lf = StsPolicy::parse(body.as_bytes()).unwrap();
        let crlf = StsPolicy::parse(body.replace('\n', "\r\n").as_bytes()).unwrap();
        prop_assert_eq!(&lf, &crlf);
        prop_assert_eq!(lf.max_age(), max_age);
        prop_assert_eq!(lf.mx().len(), mx.len());
        prop_assert_eq!(StsPolicy::parse(lf.to_string().as_bytes()).unwrap(), lf);
    }

    #[test]
    fn wildcard_covers_exactly_one_label(base in domain(), l1 in label(), l2 in label()) {
        let p = MxPattern::parse(&format!("*.{base}")).unwrap();
        let one = DomainName::parse(&format!("{l1}.{base}")).unwrap();
        let two = DomainName::parse(&format!("{l2}.{l1}.{base}")).unwrap();
        let zero = DomainName::parse(&base).unwrap();
        prop_assert!(p.matches(&one));
        prop_assert!(!p.matches(&two));
        prop_assert!(!p.matches(&zero));
    }

    #[test]
    fn config_pattern_parsers_never_panic(s in "\\PC{0,60}") {
        let _ = DomainName::parse(&s);
        let _ = DomainPattern::parse(&s);
        let _ = MxPattern::parse(&s);
        if let Ok(p) = SenderPattern::parse(&s) {
            prop_assert_eq!(SenderPattern::parse(&p.to_string()).unwrap(), p);
        }
        if let Ok(p) = RecipientPattern::parse(&s) {
            prop_assert_eq!(RecipientPattern::parse(&p.to_string()).unwrap(), p);
        }
        if let Ok(p) = HostPattern::parse(&s) {
            prop_assert_eq!(HostPattern::parse(&p.to_string()).unwrap(), p);
        }
    }

    #[test]
    fn address_like_patterns_round_trip(a in any::<[u8; 4]>(), len in 0u8..=40, v6 in any::<[u16; 8]>(), len6 in 0u8..=140) {
        let v4 = std::net::Ipv4Addr::from(a);
        for s in [v4.to_string(), format!("{v4}/{len}")] {
            if let Ok(p) = SenderPattern::parse(&s) {
                prop_assert_eq!(SenderPattern::parse(&p.to_string()).unwrap(), p);
            } else {
                prop_assert!(len > 32 || s.contains('/'), "{}", s);
            }
        }
        let v6 = std::net::Ipv6Addr::from(v6);
        for s in [v6.to_string(), format!("{v6}/{len6}"), format!("[{v6}]")] {
            if let Ok(p) = HostPattern::parse(&s) {
                prop_assert_eq!(HostPattern::parse(&p.to_string()).unwrap(), p);
            }
        }
    }

    #[test]
    fn domain_names_are_canonical(d in domain(), upper in any::<bool>(), dot in any::<bool>()) {
        let mut s = if upper { d.to_uppercase() } else { d.clone() };
        if dot { s.push('.'); }
        let n = DomainName::parse(&s).unwrap();
        prop_assert_eq!(n.as_str(), d.as_str());
        prop_assert_eq!(DomainName::parse(n.as_str()).unwrap(), n);
    }
}
