//! Name checks: store entry names (which become file names, so they must not
//! traverse paths) and the optional FQDN check of certificate names. Names are
//! checked in their ASCII (A-label, `xn--`) form, which is what a certificate
//! carries.

use crate::error::{Error, Result};

/// Longest entry name.
pub const MAX_ENTRY_NAME: usize = 64;

/// Check a store entry name: 1–64 of `[A-Za-z0-9._-]`, not starting with `.` or `-`.
pub fn check_entry_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > MAX_ENTRY_NAME {
        return bad("it is too long");
    }
    if name.starts_with('.') || name.starts_with('-') {
        return bad("it must not start with '.' or '-'");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return bad("it contains a character other than letters, digits, '.', '_' and '-'");
    }
    Ok(())
}

/// Check that `value` is a fully qualified domain name: at least two labels,
/// each 1–63 letters, digits or hyphens (not at either end), at most 253
/// characters, a top-level label that is not all digits. With
/// `allow_wildcard`, a left-most `*` label is accepted (`*.example.com`).
pub fn check_fqdn(field: &'static str, value: &str, allow_wildcard: bool) -> Result<()> {
    let bad = |reason: String| {
        Err(Error::NotFqdn {
            field,
            value: value.to_owned(),
            reason,
        })
    };
    if value.is_empty() {
        return bad("it is empty".into());
    }
    if value.len() > 253 {
        return bad(format!(
            "it is {} characters long, the limit is 253",
            value.len()
        ));
    }
    if !value.is_ascii() {
        return bad(
            "it contains non-ASCII characters; give the IDNA A-label form (xn--...)".into(),
        );
    }
    if value.ends_with('.') {
        return bad("it ends with a dot; certificates carry names without the root dot".into());
    }
    let labels: Vec<&str> = value.split('.').collect();
    if labels.len() < 2 {
        return bad("it has a single label; a mail server name looks like mx1.example.com".into());
    }
    for (i, label) in labels.iter().enumerate() {
        if i == 0 && allow_wildcard && *label == "*" {
            continue;
        }
        if label.is_empty() {
            return bad("it has an empty label (two dots in a row or a leading dot)".into());
        }
        if label.len() > 63 {
            return bad(format!("label {label:?} is longer than 63 characters"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad(format!("label {label:?} starts or ends with a hyphen"));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return bad(format!("label {label:?} contains {c:?}"));
        }
    }
    if labels
        .last()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return bad("the top-level label is numeric (is it an IP address?)".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn entry_names() {
        for ok in ["mx1", "mx1.example.com", "smtp_in-2026", "a"] {
            check_entry_name(ok).unwrap();
        }
        for bad in [
            "",
            "../etc",
            "a/b",
            ".hidden",
            "-x",
            "a b",
            "ä",
            &"x".repeat(65),
        ] {
            assert!(check_entry_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn fqdns() {
        for ok in [
            "mx1.example.com",
            "a.b",
            "xn--bcher-kva.example",
            "a-b.example.org",
        ] {
            check_fqdn("CN", ok, false).unwrap();
        }
        check_fqdn("SAN", "*.example.com", true).unwrap();
        for bad in [
            "localhost",
            "mx1",
            "",
            "mx1.example.com.",
            "-a.example",
            "a..b",
            "a_b.example",
            "10.0.0.1",
            "*.example.com",
            "mx1.bücher.de",
            "a.*.example",
        ] {
            assert!(check_fqdn("CN", bad, false).is_err(), "{bad:?}");
        }
        assert!(check_fqdn("SAN", "a.*.example", true).is_err());
        assert!(check_fqdn("SAN", "*", true).is_err());
    }

    proptest! {
        #[test]
        fn entry_name_check_never_panics_and_accepted_names_are_safe(name in "\\PC{0,80}") {
            if check_entry_name(&name).is_ok() {
                prop_assert!(!name.contains('/') && name != "." && name != "..");
            }
        }

        #[test]
        fn fqdn_check_never_panics(name in "\\PC{0,300}") {
            let _ = check_fqdn("CN", &name, true);
        }

        #[test]
        fn generated_fqdns_pass(labels in proptest::collection::vec("[a-z][a-z0-9]{0,10}", 2..5)) {
            let name = labels.join(".");
            prop_assert!(check_fqdn("CN", &name, false).is_ok());
        }
    }
}
