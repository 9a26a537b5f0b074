//! How `portcullis ctl never-downgrade list` prints the never-downgrade
//! memory for a person: one row per remembered domain with how its last
//! authenticated delivery was authenticated, since and until when.

use std::fmt::Write as _;

use portcullis_mta::control::utc;
use serde_json::Value;

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// `ctl never-downgrade list`.
pub fn list(v: &Value) -> String {
    let rows = v.as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        return "no domain is remembered (never-downgrade is off, or nothing was delivered with authenticated TLS yet)".into();
    }
    let mut out = format!(
        "{:<40} {:<8} {:<20} {}\n",
        "DOMAIN", "METHOD", "SINCE (UTC)", "UNTIL (UTC)"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:<40} {:<8} {:<20} {}",
            s(&r["domain"]),
            s(&r["method"]),
            utc(n(&r["since"])),
            utc(n(&r["until"]))
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_rows_or_says_none() {
        assert!(list(&serde_json::json!([])).starts_with("no domain"));
        let t = list(&serde_json::json!([
            {"domain": "nd.test", "method": "dane", "since": 1_800_000_000u64,
             "last": 1_800_000_000u64, "until": 1_802_592_000u64}
        ]));
        assert!(t.contains("nd.test"), "{t}");
        assert!(t.contains("dane"), "{t}");
        assert!(t.contains("2027-01-15 08:00:00"), "{t}");
    }
}
