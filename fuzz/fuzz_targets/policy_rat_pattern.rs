//! Fuzzes the RAT recipient pattern parser (operator config text) and the
//! RCPT domain check (network input: the domain part of `RCPT TO`). The
//! input is also read as a RAT, one pattern per line, that decides fixed
//! domains; every verdict is checked against the patterns and the client's
//! HAT action.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use portcullis_policy::{ConnectionAction, DomainName, Rat, RcptVerdict, RecipientPattern};

const ACTIONS: [ConnectionAction; 4] = [
    ConnectionAction::Accept,
    ConnectionAction::Relay,
    ConnectionAction::Reject,
    ConnectionAction::TcpRefuse,
];

/// The table the input is checked against as a RCPT domain, built once.
static FIXED: LazyLock<Rat> = LazyLock::new(|| {
    Rat::new(
        ["example.com", ".example.org"]
            .iter()
            .filter_map(|s| RecipientPattern::parse(s).ok())
            .collect(),
    )
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(p) = RecipientPattern::parse(text) {
        let again = RecipientPattern::parse(&p.to_string());
        assert_eq!(again.as_ref(), Ok(&p), "display form must re-parse");
    }
    // The input as the domain of a RCPT TO.
    for action in ACTIONS {
        check(&FIXED, text, action);
    }
    // The input as a RAT.
    let patterns: Result<Vec<_>, _> = text.split('\n').map(RecipientPattern::parse).collect();
    if let Ok(patterns) = patterns {
        let rat = Rat::new(patterns);
        for domain in [
            "example.com",
            "mx.example.org",
            "bücher.example",
            "[192.0.2.1]",
        ] {
            for action in ACTIONS {
                check(&rat, domain, action);
            }
        }
    }
});

/// The verdict follows from the patterns and the action alone.
fn check(rat: &Rat, domain: &str, action: ConnectionAction) {
    let verdict = rat.check(domain, action);
    let ours =
        DomainName::parse(domain).is_ok_and(|d| rat.patterns().iter().any(|p| p.matches(&d)));
    if matches!(
        action,
        ConnectionAction::Reject | ConnectionAction::TcpRefuse
    ) {
        assert!(matches!(verdict, RcptVerdict::Refuse { .. }), "{verdict:?}");
    } else if action == ConnectionAction::Accept {
        assert_eq!(verdict == RcptVerdict::Accept, ours, "{verdict:?}");
        assert_ne!(verdict, RcptVerdict::Relay);
    } else if ours {
        assert_eq!(verdict, RcptVerdict::Accept);
    }
}
