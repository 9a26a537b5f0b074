//! How `portcullis ctl health` prints the gateway's health for a person:
//! the state (normal, or resource conservation and why), then one row per
//! gauge with its value against its marks; and the one line `ctl status`
//! adds.

use std::fmt::Write as _;

use portcullis_mta::control::span;
use serde_json::Value;

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

fn num(v: &Value) -> String {
    v.as_u64().map_or_else(|| "-".to_owned(), |n| n.to_string())
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The state in one line.
pub fn state_line(v: &Value) -> String {
    let since = v["since"].as_u64().unwrap_or(0);
    let for_how_long = if since == 0 {
        String::new()
    } else {
        format!(" (for {})", span(now().saturating_sub(since)))
    };
    if s(&v["state"]) == "conservation" {
        format!("RESOURCE CONSERVATION{for_how_long}: {}", s(&v["reason"]))
    } else {
        format!("normal{for_how_long}")
    }
}

/// `ctl health`.
pub fn health(v: &Value) -> String {
    let mut out = format!("health: {}\n", state_line(v));
    let sampled = v["sampled_at"].as_u64().unwrap_or(0);
    let _ = writeln!(
        out,
        "sampled every {}s{}; in conservation each private listener takes up to {} sessions",
        num(&v["sample_period_seconds"]),
        if sampled == 0 {
            ", no sample yet".to_owned()
        } else {
            format!(", last {} ago", span(now().saturating_sub(sampled)))
        },
        num(&v["private_session_limit"])
    );
    let _ = writeln!(
        out,
        "{:<26} {:>12} {:>12} {:>12}  {:<7} STATE",
        "GAUGE", "VALUE", "HIGH", "LOW", "WORSE"
    );
    for g in v["gauges"].as_array().into_iter().flatten() {
        let state = match s(&g["state"]) {
            "pressed" => "PRESSED",
            other => other,
        };
        let _ = writeln!(
            out,
            "{:<26} {:>12} {:>12} {:>12}  {:<7} {}",
            s(&g["gauge"]),
            num(&g["value"]),
            num(&g["high"]),
            num(&g["low"]),
            s(&g["worse_when"]),
            state
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_with_the_state_first() {
        let v = serde_json::json!({
            "state": "conservation", "since": 0, "sampled_at": 0,
            "sample_period_seconds": 5, "private_session_limit": 100,
            "reason": "queue-messages 4 above its high mark 3",
            "gauges": [
                {"gauge": "queue-messages", "value": 4, "high": 3, "low": 1, "worse_when": "above", "state": "pressed"},
                {"gauge": "open-sessions", "value": 2, "high": null, "low": null, "worse_when": "above", "state": "off"}
            ]
        });
        let text = health(&v);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "health: RESOURCE CONSERVATION: queue-messages 4 above its high mark 3"
        );
        assert!(lines[1].contains("no sample yet"), "{text}");
        assert!(
            lines[3].starts_with("queue-messages") && lines[3].ends_with("above   PRESSED"),
            "{text}"
        );
        assert!(lines[4].contains("            -            -"), "{text}");
    }
}
