//! `portcullis ctl alerts`: the recent alerts (newest first) and the alert
//! deliveries still pending. Asks the running gateway's admin API; when it
//! cannot be reached (stopped, or no `[admin]`), reads the same list from
//! the data directory, where the alert service keeps it, and says so.

use portcullis_mta::alerts::{AlertListing, alerts_dir, listing};

use crate::Global;
use crate::ctl_client;
use crate::ctl_cmd::{CtlAt, check, data_dir, target};

/// Runs `ctl alerts`.
pub fn run(global: &Global, at: &CtlAt) -> Result<(), String> {
    let online = target(at)
        .and_then(|t| ctl_client::request(&t, "GET", "/api/alerts", None))
        .and_then(check);
    let list: AlertListing = match online {
        Ok(v) => serde_json::from_value(v)
            .map_err(|e| format!("the gateway answered /api/alerts unexpectedly: {e}"))?,
        Err(e) if at.remote() => return Err(e),
        Err(e) => {
            let dir = alerts_dir(&data_dir(at)?);
            eprintln!(
                "(the gateway did not answer: {e}; showing {} instead)",
                dir.display()
            );
            listing(&dir)
        }
    };
    if global.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&list).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    print!("{}", text(&list));
    Ok(())
}

/// The listing for a person.
pub fn text(list: &AlertListing) -> String {
    let mut out = String::new();
    if let Some(p) = &list.problem {
        out.push_str(&format!("warning: {p}\n"));
    }
    if list.alerts.is_empty() {
        out.push_str("no alerts\n");
    }
    for n in &list.alerts {
        let repeats = match n.repeats {
            0 => String::new(),
            r => format!(" (+{r} held back)"),
        };
        out.push_str(&format!(
            "{}  {:<8} {:<11} {}{repeats}\n    {}\n",
            portcullis_mta::control::utc(n.at),
            n.alert.severity,
            n.alert.class,
            n.alert.key,
            n.alert.text
        ));
    }
    if !list.pending.is_empty() {
        out.push_str(&format!(
            "{} alert delivery(ies) pending:\n",
            list.pending.len()
        ));
        for p in &list.pending {
            out.push_str(&format!(
                "  {} to {}: {} attempt(s){}\n",
                p.id,
                p.to,
                p.attempts,
                p.last_error
                    .as_ref()
                    .map(|e| format!(", last: {e}"))
                    .unwrap_or_default()
            ));
        }
    }
    out
}
