//! The status page's health section: resource conservation's state and
//! each gauge against its marks, one row each, the rows an operator acts
//! on marked.

use std::fmt::Write as _;

use crate::health::HealthReport;

fn cell(v: Option<u64>) -> String {
    v.map_or_else(|| "—".to_owned(), |n| n.to_string())
}

/// The `<section id="health">` of the status page.
pub(super) fn render(h: &HealthReport, esc: impl Fn(&str) -> String) -> String {
    let mut out = String::from("<section id=\"health\"><h2>Health</h2>");
    if h.state == "conservation" {
        let _ = write!(
            out,
            "<p><span class=\"badge bad\" id=\"health-state\">resource conservation</span> {}: public listeners refuse new mail (421/452), private listeners accept up to {} sessions each</p>",
            esc(&h.reason),
            h.private_session_limit
        );
    } else {
        out.push_str(
            "<p><span class=\"badge ok\" id=\"health-state\">normal</span> public listeners accept mail</p>",
        );
    }
    out.push_str(
        "<table><thead><tr><th>Gauge</th><th>Value</th><th>High</th><th>Low</th><th>State</th></tr></thead><tbody>",
    );
    for g in &h.gauges {
        let cls = match g.state.as_str() {
            "pressed" => "bad",
            "unreadable" => "warn",
            "ok" => "ok",
            _ => "",
        };
        let _ = write!(
            out,
            "<tr class=\"gauge\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><span class=\"badge {cls}\">{}</span></td></tr>",
            esc(&g.gauge),
            cell(g.value),
            cell(g.high),
            cell(g.low),
            esc(&g.state)
        );
    }
    out.push_str("</tbody></table></section>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pressed_gauge_and_conservation_stand_out() {
        let mut h = HealthReport {
            state: "conservation".into(),
            reason: "queue-messages 4 above its high mark 3".into(),
            ..HealthReport::default()
        };
        let q = h
            .gauges
            .iter_mut()
            .find(|g| g.gauge == "queue-messages")
            .unwrap();
        q.value = Some(4);
        q.high = Some(3);
        q.low = Some(1);
        q.state = "pressed".into();
        let html = render(&h, |s| s.replace('<', "&lt;"));
        assert!(
            html.contains("badge bad\" id=\"health-state\">resource conservation"),
            "{html}"
        );
        assert!(
            html.contains("<td>queue-messages</td><td>4</td><td>3</td><td>1</td><td><span class=\"badge bad\">pressed"),
            "{html}"
        );
        assert!(html.contains(
            "<td>open-sessions</td><td>—</td><td>—</td><td>—</td><td><span class=\"badge \">off"
        ));
    }
}
