//! How `portcullis queue ...` prints: a table for `list`, a record for
//! `show`, one line for what a change did, the damage report of `check` and
//! `salvage`. `--json` prints the same data as the control socket sends it.

use std::path::Path;

use portcullis_mta::control::{MessageDetail, QueueReply, QueueRow};
use portcullis_mta::spool::{Check, Damage, DamageKind, SalvageReport, mib};

use crate::output::{CmdResult, emit};

/// Prints a queue reply; `online` says whether the running gateway answered.
pub fn reply(json: bool, reply: &QueueReply, online: bool) -> CmdResult {
    match reply {
        QueueReply::List(rows) => emit(json, rows, || list(rows, online)),
        QueueReply::Show(detail) => emit(json, detail, || show(detail)),
        QueueReply::Done(line) => emit(json, &serde_json::json!({ "done": line }), || line.clone()),
    }
}

fn list(rows: &[QueueRow], online: bool) -> String {
    let source = if online {
        "from the running gateway"
    } else {
        "from the spool files; the gateway is not running"
    };
    if rows.is_empty() {
        return format!("The queue is empty ({source}).");
    }
    let mut out = format!(
        "{:<16} {:>8} {:>9} {:>4}  {:<15} {}\n",
        "ID", "AGE", "BYTES", "TRY", "NEXT", "FROM -> TO"
    );
    for r in rows {
        let from = if r.sender.is_empty() { "" } else { &r.sender };
        out.push_str(&format!(
            "{:<16} {:>8} {:>9} {:>4}  {:<15} <{from}> -> {}{}\n",
            r.id,
            portcullis_mta::control::span(r.age_seconds),
            r.size,
            r.attempts,
            r.next,
            r.recipients
                .iter()
                .map(|t| format!("<{t}>"))
                .collect::<Vec<_>>()
                .join(", "),
            if r.requiretls { "  [REQUIRETLS]" } else { "" }
        ));
        if !r.last_error.is_empty() {
            out.push_str(&format!("{:<16} last error: {}\n", "", r.last_error));
        }
    }
    out.push_str(&format!("{} message(s) queued ({source}).", rows.len()));
    out
}

fn show(d: &MessageDetail) -> String {
    let r = &d.row;
    let mut out = format!(
        "MID {}\nreceived:     {} UTC ({} ago)\nsize:         {} bytes\nfrom:         <{}>\n",
        r.id,
        r.received,
        portcullis_mta::control::span(r.age_seconds),
        r.size,
        r.sender
    );
    out.push_str("recipients:\n");
    for s in &d.recipient_status {
        out.push_str(&format!("  <{}> {}\n", s.address, s.status));
    }
    out.push_str(&format!(
        "attempts:     {}\nnext attempt: {}\n",
        r.attempts, r.next
    ));
    if !r.last_error.is_empty() {
        out.push_str(&format!("last error:   {}\n", r.last_error));
    }
    let flags: Vec<&str> = [
        (r.requiretls, "REQUIRETLS"),
        (r.smtputf8, "SMTPUTF8"),
        (d.eight_bit, "8BITMIME"),
        (r.held, "HELD"),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, name)| *name)
    .collect();
    if !flags.is_empty() {
        out.push_str(&format!("flags:        {}\n", flags.join(" ")));
    }
    out.push_str("headers:\n");
    for line in d.headers.lines() {
        out.push_str(&format!("  {line}\n"));
    }
    out
}

fn kind(d: &Damage, in_use: bool) -> &'static str {
    match d.kind {
        DamageKind::TornTail if in_use => {
            "end of the newest segment: a write in progress (the gateway is running)"
        }
        DamageKind::TornTail => {
            "end of the newest segment: a write that never completed, never acknowledged; cut when the gateway starts"
        }
        DamageKind::Header => "header damaged: no message lost",
        DamageKind::Records => "records damaged: messages or outcomes may be lost",
    }
}

/// The one-line error for damage that stops the gateway, if any.
pub fn damage_warning(damage: &[Damage], spool: &Path) -> Option<String> {
    let fatal: Vec<&Damage> = damage.iter().filter(|d| d.is_fatal()).collect();
    let first = fatal.first()?;
    Some(format!(
        "the spool {} is damaged ({} range(s), the first in {} at byte {}); the list above has \
         every message that still reads. The gateway will not start until `portcullis queue \
         salvage` has run; `portcullis queue check` shows every damaged range",
        spool.display(),
        fatal.len(),
        first.file.display(),
        first.start
    ))
}

pub fn check(json: bool, report: &Check, spool: &Path) -> CmdResult {
    let fatal = report.fatal().count();
    let value = serde_json::json!({
        "spool": spool,
        "gateway_running": report.in_use,
        "segments": report.usage.segments,
        "disk_bytes": report.usage.disk_bytes,
        "live_bytes": report.usage.live_bytes,
        "messages": report.messages.len(),
        "damage": report.damage,
        "starts": fatal == 0,
    });
    emit(json, &value, || {
        let mut out = format!(
            "spool {}: {} segment file(s), {} on disk for {} of live messages, {} message(s) readable{}\n",
            spool.display(),
            report.usage.segments,
            mib(report.usage.disk_bytes),
            mib(report.usage.live_bytes),
            report.messages.len(),
            if report.in_use {
                " (the gateway is running)"
            } else {
                ""
            }
        );
        for d in &report.damage {
            out.push_str(&format!(
                "{} bytes {}..{}: {} ({})\n",
                d.file.display(),
                d.start,
                d.end,
                kind(d, report.in_use),
                d.reason
            ));
        }
        if fatal > 0 {
            out.push_str(&format!(
                "{fatal} damaged range(s) stop the gateway from starting: run `portcullis queue salvage` (with the gateway stopped) to keep every readable message and move the damaged files aside."
            ));
        } else {
            out.push_str("No damage that stops the gateway.");
        }
        out
    })
}

pub fn salvage(r: &SalvageReport) -> String {
    if r.damage.is_empty() {
        return "The spool has no damage; nothing was changed.".into();
    }
    let mut out = String::new();
    for d in &r.damage {
        out.push_str(&format!(
            "{} bytes {}..{}: {} ({})\n",
            d.file.display(),
            d.start,
            d.end,
            kind(d, false),
            d.reason
        ));
    }
    if let Some(seg) = &r.new_segment {
        out.push_str(&format!(
            "kept {} message(s) in {}\n",
            r.messages,
            seg.display()
        ));
    }
    for p in &r.moved_aside {
        out.push_str(&format!("moved aside: {}\n", p.display()));
    }
    out.push_str(&format!(
        "removed {} undamaged segment(s) (their messages are in the new one). The gateway can start.",
        r.removed.len()
    ));
    out
}
