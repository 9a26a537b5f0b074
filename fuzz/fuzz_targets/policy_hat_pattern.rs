//! Fuzzes the HAT sender-group pattern parser (operator config text) and
//! matching: the input as one pattern, and its lines as the patterns of a
//! sender group in front of an `ALL` group, so the HAT's first-match rule
//! is checked against the patterns' own answers.
#![no_main]

use std::collections::BTreeMap;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use portcullis_policy::{
    ClientFacts, ConnectionAction, DomainName, Hat, HatConfig, InboundTls, MailFlowPolicyConfig,
    SenderGroupConfig, SenderPattern,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(p) = SenderPattern::parse(text) {
        let again = SenderPattern::parse(&p.to_string());
        assert_eq!(again.as_ref(), Ok(&p), "display form must re-parse");
        for client in CLIENTS.iter() {
            let _ = p.matches(client);
        }
    }
    let lines: Vec<&str> = text.split('\n').collect();
    let parsed: Vec<SenderPattern> = lines
        .iter()
        .filter_map(|l| SenderPattern::parse(l).ok())
        .collect();
    match Hat::from_config(&hat_config(&lines), "fuzz") {
        Ok(hat) => {
            assert_eq!(parsed.len(), lines.len(), "the HAT accepted every line");
            for client in CLIENTS.iter() {
                let listed = parsed.iter().any(|p| p.matches(client));
                let group = hat.evaluate(client).group;
                assert_eq!(group, Some(if listed { "LISTED" } else { "ALL" }));
            }
        }
        Err(errors) => {
            let refused = lines.len() - parsed.len();
            assert_eq!(errors.len(), refused, "one error per refused pattern");
            for e in errors {
                assert!(e.location.contains("match[") && !e.message.is_empty());
            }
        }
    }
});

/// The clients every pattern is tried on, built once.
static CLIENTS: LazyLock<Vec<ClientFacts>> = LazyLock::new(|| {
    let mut clients = Vec::new();
    for ip in ["192.0.2.1", "::ffff:192.0.2.1", "2001:db8::1", "10.1.2.3"] {
        for fcrdns in [DomainName::parse("mail.example.com").ok(), None] {
            if let Ok(ip) = ip.parse() {
                clients.push(ClientFacts { ip, fcrdns });
            }
        }
    }
    clients
});

/// Group `LISTED` (the patterns), then `ALL`; both accept.
fn hat_config(patterns: &[&str]) -> HatConfig {
    let policy = MailFlowPolicyConfig {
        action: ConnectionAction::Accept,
        tls: InboundTls::Off,
        max_message_size: None,
        max_recipients_per_message: None,
        max_connections_per_host: None,
    };
    let group = |name: &str, patterns: Vec<String>| SenderGroupConfig {
        name: name.to_owned(),
        patterns,
        policy: "ACCEPTED".to_owned(),
    };
    HatConfig {
        sender_group: vec![
            group("LISTED", patterns.iter().map(|p| p.to_string()).collect()),
            group("ALL", vec!["ALL".to_owned()]),
        ],
        policy: BTreeMap::from([("ACCEPTED".to_owned(), policy)]),
    }
}
