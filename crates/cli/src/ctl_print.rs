//! How `portcullis ctl` prints the admin API's answers for a person: the
//! status in a few aligned lines, reload summaries, exemptions, the
//! MTA-STS cache and tokens as tables.

use std::fmt::Write as _;

use portcullis_mta::control::{span, utc};
use serde_json::Value;

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn pct(part: u64, whole: u64) -> String {
    if whole == 0 {
        "no traffic".into()
    } else {
        format!("{:.0}% of {whole}", part as f64 * 100.0 / whole as f64)
    }
}

/// `ctl status`.
pub fn status(v: &Value) -> String {
    let mut out = String::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let _ = writeln!(
        out,
        "gateway {} (portcullis {}, pid {}), up {}",
        s(&v["hostname"]),
        s(&v["version"]),
        n(&v["pid"]),
        span(now.saturating_sub(n(&v["started_at"])))
    );
    out.push_str("listeners:\n");
    for l in v["listeners"].as_array().into_iter().flatten() {
        let state = if s(&l["state"]) == "suspended" {
            format!("SUSPENDED since {}", utc(n(&l["suspended_since"])))
        } else {
            "accepting".to_owned()
        };
        let _ = writeln!(
            out,
            "  {:<16} {:<22} {:<32} {}/{} sessions",
            s(&l["name"]),
            s(&l["address"]),
            state,
            n(&l["open_sessions"]),
            n(&l["max_sessions"])
        );
    }
    let suspended: Vec<String> = v["delivery_suspended"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| format!("{} (since {})", s(&p[0]), utc(n(&p[1]))))
        .collect();
    let _ = writeln!(
        out,
        "delivery: {}",
        if suspended.is_empty() {
            "running to every destination".to_owned()
        } else {
            format!("SUSPENDED for {}", suspended.join(", "))
        }
    );
    let q = &v["queue"];
    let _ = writeln!(
        out,
        "queue: {} message(s), {} recipient(s), {} bytes, oldest {}, {} held",
        n(&q["messages"]),
        n(&q["recipients"]),
        n(&q["bytes"]),
        if n(&q["messages"]) == 0 {
            "-".to_owned()
        } else {
            span(n(&q["oldest_age_seconds"]))
        },
        n(&q["held"])
    );
    let t = &v["tls_last_hour"];
    let inbound = n(&t["inbound_tls"]) + n(&t["inbound_plain"]) + n(&t["inbound_failed"]);
    let outbound = n(&t["outbound_tls"]) + n(&t["outbound_plain"]) + n(&t["outbound_failed"]);
    let _ = writeln!(
        out,
        "TLS, last hour: inbound sessions {} with TLS ({} failed), outbound {} with TLS ({} failed)",
        pct(n(&t["inbound_tls"]), inbound),
        n(&t["inbound_failed"]),
        pct(n(&t["outbound_tls"]), outbound),
        n(&t["outbound_failed"])
    );
    if v["health"].is_object() {
        let _ = writeln!(
            out,
            "health: {}",
            crate::ctl_health::state_line(&v["health"])
        );
    }
    out.push_str("certificates:\n");
    for c in v["certificates"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  {:<16} {:<30} expires {} ({} days left){}",
            s(&c["name"]),
            s(&c["subject"]),
            utc(n(&c["not_after"])),
            c["days_left"].as_i64().unwrap_or(0),
            if c["demo"].as_bool() == Some(true) {
                " demonstration"
            } else {
                ""
            }
        );
    }
    out
}

/// A reload or import summary.
pub fn reload(v: &Value) -> String {
    let list = |k: &str| -> String {
        let items: Vec<&str> = v[k].as_array().into_iter().flatten().map(s).collect();
        if items.is_empty() {
            "none".into()
        } else {
            items.join(", ")
        }
    };
    let mut out = format!(
        "configuration applied: listeners added: {}; removed: {}; kept: {}",
        list("listeners_added"),
        list("listeners_removed"),
        list("listeners_kept")
    );
    if v["restart_needed"]
        .as_array()
        .is_some_and(|a| !a.is_empty())
    {
        let _ = write!(
            out,
            "\nchanged but only in effect after a restart: {}",
            list("restart_needed")
        );
    }
    out
}

/// `ctl tls exemptions list`.
pub fn exemptions(v: &Value) -> String {
    let rows = v.as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        return "no host is exempt from STARTTLS".into();
    }
    let mut out = format!("{:<40} {:<20} {}\n", "HOST", "UNTIL (UTC)", "LEFT");
    for r in rows {
        let _ = writeln!(
            out,
            "{:<40} {:<20} {}",
            s(&r["host"]),
            utc(n(&r["until"])),
            span(n(&r["seconds_left"]))
        );
    }
    out
}

/// `ctl mta-sts cache list`.
pub fn sts_cache(v: &Value) -> String {
    let rows = v.as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        return "no MTA-STS policy is cached".into();
    }
    let mut out = format!(
        "{:<30} {:<8} {:<20} {:<20} {}\n",
        "DOMAIN", "MODE", "EXPIRES (UTC)", "ID", "MX"
    );
    for r in rows {
        let mx: Vec<&str> = r["mx"].as_array().into_iter().flatten().map(s).collect();
        let _ = writeln!(
            out,
            "{:<30} {:<8} {:<20} {:<20} {}",
            s(&r["domain"]),
            s(&r["mode"]),
            utc(n(&r["expires_at"])),
            s(&r["id"]),
            mx.join(", ")
        );
    }
    out
}

/// `ctl token list`.
pub fn tokens(v: &Value) -> String {
    let mut out = format!(
        "{:<24} {:<6} {:<9} {}\n",
        "NAME", "ROLE", "SOURCE", "CREATED (UTC)"
    );
    for t in v.as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "{:<24} {:<6} {:<9} {}",
            s(&t["name"]),
            s(&t["role"]),
            s(&t["source"]),
            if n(&t["created"]) == 0 {
                "-".into()
            } else {
                utc(n(&t["created"]))
            }
        );
    }
    out
}

/// What `ctl tls-report send` did, one line per report address.
pub fn tls_reports_sent(v: &Value) -> String {
    let reports: Vec<&Value> = v["reports"].as_array().into_iter().flatten().collect();
    if reports.is_empty() {
        return format!(
            "no TLS sessions were counted on {}: no report to send",
            s(&v["day"])
        );
    }
    let mut out = String::new();
    for r in reports {
        let _ = if r["sent"] == true {
            writeln!(
                out,
                "{} {}: sent ({})",
                s(&r["domain"]),
                s(&r["rua"]),
                s(&r["answer"])
            )
        } else {
            writeln!(
                out,
                "{} {}: NOT sent: {}",
                s(&r["domain"]),
                s(&r["rua"]),
                s(&r["error"])
            )
        };
    }
    out
}
