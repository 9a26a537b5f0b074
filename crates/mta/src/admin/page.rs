//! The status page (`GET /`): one HTML page rendered by the gateway (no
//! JavaScript, nothing to build), refreshed every 15 seconds. It shows what
//! an operator acts on: listeners with their state and sessions, delivery
//! suspensions, the queue, the TLS outcomes of the last hour as a chart,
//! the certificates with the days they have left, and the recent alerts
//! (with `[alerts]`). Admin tokens get suspend and
//! resume buttons; read-only tokens see the same page without them.
//!
//! A browser authenticates once: `/?token=TOKEN` (or the login form) sets an
//! `HttpOnly`, `Secure`, `SameSite=Strict` cookie and redirects to `/`, so
//! the token leaves the address bar. The buttons post forms carrying a
//! token derived from the cookie (against cross-site requests).

use std::fmt::Write as _;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::api::{ApiError, ApiState, Peer, caller};
use super::auth::{COOKIE, token_of};
use super::tokens::Role;
use super::view::{StatusView, status};
use crate::control::{span, utc};

type St = State<std::sync::Arc<ApiState>>;

const STYLE: &str = include_str!("page.css");

/// HTML-escapes text.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn csrf(token: &str) -> String {
    Sha256::digest(format!("portcullis status page form:{}", token.trim()).as_bytes())
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct PageQuery {
    token: Option<String>,
}

fn cookie(token: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{COOKIE}={}; HttpOnly; Secure; SameSite=Strict; Path=/",
        token.trim()
    ))
    .ok()
}

fn login_page(message: &str) -> Response {
    let body = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Portcullis — sign in</title><style>{STYLE}</style></head>\
         <body><main class=\"login\"><h1>Portcullis</h1><p>{}</p>\
         <form method=\"post\" action=\"/ui/login\"><label>API token <input type=\"password\" name=\"token\" autocomplete=\"off\" required></label>\
         <button type=\"submit\">Sign in</button></form>\
         <p class=\"hint\">The gateway wrote a token to <code>&lt;data-dir&gt;/admin/ctl-token</code> at first start; \
         <code>portcullis ctl token create NAME --role read</code> makes more.</p></main></body></html>",
        esc(message)
    );
    (StatusCode::UNAUTHORIZED, Html(body)).into_response()
}

/// `GET /`.
pub(crate) async fn page(
    State(s): St,
    peer: axum::Extension<Peer>,
    h: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Response {
    if let Some(t) = q.token {
        // Sign in from the address bar, then drop the token from it.
        return match caller(&s, peer.0.0, &h_with(&t), Role::Read, "the status page") {
            Ok(_) => signed_in(&t),
            Err(e) => denied_page(e),
        };
    }
    let Some(token) = token_of(&h) else {
        return login_page("Sign in with an API token to see the gateway's status.");
    };
    let who = match caller(&s, peer.0.0, &h, Role::Read, "the status page") {
        Ok(c) => c,
        Err(e) => return denied_page(e),
    };
    let view = status(&s.control).await;
    let admin = who.role >= Role::Admin;
    let grace = s.control.grace().await;
    let html = render(&view, admin.then(|| csrf(&token)), &who.name, grace);
    // The TLS reports section goes last in <main>.
    let reports = super::tls_reports::summary_of(&s, Default::default()).await;
    let section = super::tls_reports::page_section(&reports, esc);
    Html(html.replacen("</main>", &format!("{section}</main>"), 1)).into_response()
}

fn h_with(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("Bearer {}", token.trim())) {
        h.insert(header::AUTHORIZATION, v);
    }
    h
}

fn signed_in(token: &str) -> Response {
    let mut r = Redirect::to("/").into_response();
    if let Some(c) = cookie(token) {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    r
}

fn denied_page(e: ApiError) -> Response {
    let r = e.into_response();
    if r.status() == StatusCode::TOO_MANY_REQUESTS {
        return r;
    }
    login_page("That token was not accepted. Sign in with a valid API token.")
}

fn form_field(body: &Bytes, name: &str) -> Option<String> {
    std::str::from_utf8(body)
        .ok()?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| decode(v))
}

/// `application/x-www-form-urlencoded` value decoding.
fn decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(x) => {
                        out.push(x);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `POST /ui/login` (the sign-in form).
pub(crate) async fn login(State(s): St, peer: axum::Extension<Peer>, body: Bytes) -> Response {
    let token = form_field(&body, "token").unwrap_or_default();
    match caller(&s, peer.0.0, &h_with(&token), Role::Read, "the status page") {
        Ok(_) => signed_in(&token),
        Err(e) => denied_page(e),
    }
}

/// `POST /ui/logout`.
pub(crate) async fn logout() -> Response {
    let mut r = Redirect::to("/").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "portcullis_token=; Max-Age=0; HttpOnly; Secure; SameSite=Strict; Path=/",
        ),
    );
    r
}

/// `POST /ui/action`: the page's suspend and resume buttons.
pub(crate) async fn action(
    State(s): St,
    peer: axum::Extension<Peer>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    let who = match caller(&s, peer.0.0, &h, Role::Admin, "a status page action") {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let token = token_of(&h).unwrap_or_default();
    if form_field(&body, "csrf").as_deref() != Some(csrf(&token).as_str()) {
        return ApiError::new(StatusCode::FORBIDDEN, "the form is stale; reload the page")
            .into_response();
    }
    let what = form_field(&body, "action").unwrap_or_default();
    let arg = form_field(&body, "name").unwrap_or_default();
    let engine = s.control.engine();
    engine.mail_log().line(format_args!(
        "admin: {what} {arg:?} from the status page by token {:?}",
        who.name
    ));
    let result = match what.as_str() {
        "suspend-listener" => {
            let delay = form_field(&body, "delay")
                .and_then(|d| d.trim().parse::<u64>().ok())
                .map_or(s.control.grace().await, Duration::from_secs);
            engine.suspend_listener(&arg, delay).await
        }
        "resume-listener" => engine.resume_listener(&arg).await,
        "suspend-delivery" => engine.suspend_delivery(&arg).await,
        "resume-delivery" => engine.resume_delivery(&arg).await,
        other => Err(format!("unknown action {other:?}")),
    };
    match result {
        Ok(_) => Redirect::to("/").into_response(),
        Err(e) => ApiError::new(StatusCode::CONFLICT, e).into_response(),
    }
}

fn button(csrf: &str, action: &str, name: &str, label: &str, extra: &str) -> String {
    format!(
        "<form method=\"post\" action=\"/ui/action\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <input type=\"hidden\" name=\"action\" value=\"{action}\"><input type=\"hidden\" name=\"name\" value=\"{}\">{extra}\
         <button type=\"submit\">{label}</button></form>",
        esc(name)
    )
}

fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / f64::from(1u32 << 30)),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / f64::from(1u32 << 20)),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        "—".into()
    } else {
        format!("{:.0}%", part as f64 * 100.0 / whole as f64)
    }
}

/// The page.
pub(crate) fn render(v: &StatusView, csrf: Option<String>, who: &str, grace: Duration) -> String {
    let now = crate::outbound::unix_now();
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"15\">\
         <title>Portcullis — {host}</title><style>{STYLE}</style></head><body>\
         <header><h1>Portcullis <span class=\"host\">{host}</span></h1>\
         <p>version {ver} · pid {pid} · up {up} · signed in as <b>{who}</b>{ro} \
         <form method=\"post\" action=\"/ui/logout\" class=\"inline\"><button type=\"submit\">Sign out</button></form></p></header><main>",
        host = esc(&v.engine.hostname),
        ver = esc(&v.version),
        pid = v.pid,
        up = span(now.saturating_sub(v.engine.started_at)),
        who = esc(who),
        ro = if csrf.is_some() {
            ""
        } else {
            " (read-only: actions hidden)"
        },
    );
    // The few numbers first.
    let q = &v.engine.queue;
    let t = &v.tls_last_hour;
    let inbound = t.inbound_tls + t.inbound_plain + t.inbound_failed;
    let outbound = t.outbound_tls + t.outbound_plain + t.outbound_failed;
    let suspended_listeners = v
        .engine
        .listeners
        .iter()
        .filter(|l| l.state == "suspended")
        .count();
    let _ = write!(
        out,
        "<section class=\"cards\">\
         <div class=\"card\"><h2>Queue</h2><p class=\"big\" id=\"queue-messages\">{}</p><p>message(s), {} recipient(s), {}<br>oldest {}, {} held</p></div>\
         <div class=\"card {lcls}\"><h2>Listeners</h2><p class=\"big\" id=\"listeners-accepting\">{}/{}</p><p>accepting</p></div>\
         <div class=\"card {dcls}\"><h2>Delivery</h2><p class=\"big\" id=\"delivery-state\">{}</p><p>{}</p></div>\
         <div class=\"card\"><h2>TLS, last hour</h2><p class=\"big\">{} / {}</p><p>inbound / outbound sessions with TLS</p></div>\
         </section>",
        q.messages,
        q.recipients,
        bytes(q.bytes),
        if q.messages == 0 {
            "—".to_owned()
        } else {
            span(q.oldest_age_seconds)
        },
        q.held,
        v.engine.listeners.len() - suspended_listeners,
        v.engine.listeners.len(),
        if v.engine.delivery_suspended.is_empty() {
            "running"
        } else {
            "partly suspended"
        },
        if v.engine.delivery_suspended.is_empty() {
            "to every destination".to_owned()
        } else {
            format!("{} suspension(s)", v.engine.delivery_suspended.len())
        },
        percent(t.inbound_tls, inbound),
        percent(t.outbound_tls, outbound),
        lcls = if suspended_listeners > 0 { "warn" } else { "" },
        dcls = if v.engine.delivery_suspended.is_empty() {
            ""
        } else {
            "warn"
        },
    );
    // Listeners.
    out.push_str("<section><h2>Listeners</h2><table><thead><tr><th>Name</th><th>Address</th><th>State</th><th>Sessions</th>");
    if csrf.is_some() {
        out.push_str("<th>Action</th>");
    }
    out.push_str("</tr></thead><tbody>");
    for l in &v.engine.listeners {
        let state = if l.state == "suspended" {
            format!(
                "<span class=\"badge warn\">suspended</span> since {}",
                utc(l.suspended_since)
            )
        } else {
            "<span class=\"badge ok\">accepting</span>".to_owned()
        };
        let _ = write!(
            out,
            "<tr class=\"listener\" data-name=\"{n}\" data-state=\"{st}\"><td>{n}</td><td>{a}</td><td class=\"state\">{state}</td><td><span class=\"sessions\">{o}</span> / {m}</td>",
            n = esc(&l.name),
            st = esc(&l.state),
            a = esc(&l.address),
            o = l.open_sessions,
            m = l.max_sessions,
        );
        if let Some(c) = &csrf {
            let b = if l.state == "suspended" {
                button(c, "resume-listener", &l.name, "Resume", "")
            } else {
                button(
                    c,
                    "suspend-listener",
                    &l.name,
                    "Suspend",
                    &format!(
                        "<label>delay <input type=\"number\" name=\"delay\" min=\"0\" value=\"{}\" class=\"delay\"> s</label> ",
                        grace.as_secs()
                    ),
                )
            };
            let _ = write!(out, "<td>{b}</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></section>");
    // Delivery.
    out.push_str("<section><h2>Delivery</h2>");
    if v.engine.delivery_suspended.is_empty() {
        out.push_str("<p>Delivery runs to every destination.</p>");
    } else {
        out.push_str("<table><thead><tr><th>Suspended for</th><th>Since</th>");
        if csrf.is_some() {
            out.push_str("<th>Action</th>");
        }
        out.push_str("</tr></thead><tbody>");
        for (target, since) in &v.engine.delivery_suspended {
            let _ = write!(
                out,
                "<tr class=\"suspension\" data-target=\"{t}\"><td>{t}</td><td>{}</td>",
                utc(*since),
                t = esc(target)
            );
            if let Some(c) = &csrf {
                let _ = write!(
                    out,
                    "<td>{}</td>",
                    button(c, "resume-delivery", target, "Resume", "")
                );
            }
            out.push_str("</tr>");
        }
        out.push_str("</tbody></table>");
    }
    if let Some(c) = &csrf {
        let _ = write!(
            out,
            "<form method=\"post\" action=\"/ui/action\" class=\"suspend-delivery\"><input type=\"hidden\" name=\"csrf\" value=\"{c}\">\
             <input type=\"hidden\" name=\"action\" value=\"suspend-delivery\"><label>Suspend delivery to \
             <input type=\"text\" name=\"name\" placeholder=\"example.com, .example.com or ALL\" required></label> \
             <button type=\"submit\">Suspend</button></form>"
        );
    }
    out.push_str("</section>");
    // TLS chart.
    out.push_str("<section><h2>TLS outcomes, last hour</h2>");
    out.push_str(&chart(&t.per_5_minutes));
    let _ = write!(
        out,
        "<table class=\"narrow\"><thead><tr><th></th><th>TLS</th><th>cleartext</th><th>TLS failed</th></tr></thead><tbody>\
         <tr><td>Inbound sessions</td><td>{} ({})</td><td>{}</td><td>{}</td></tr>\
         <tr><td>Outbound deliveries</td><td>{} ({})</td><td>{}</td><td>{}</td></tr></tbody></table></section>",
        t.inbound_tls,
        percent(t.inbound_tls, inbound),
        t.inbound_plain,
        t.inbound_failed,
        t.outbound_tls,
        percent(t.outbound_tls, outbound),
        t.outbound_plain,
        t.outbound_failed,
    );
    // Certificates.
    out.push_str("<section><h2>Certificates</h2><table><thead><tr><th>Name</th><th>Subject</th><th>Expires</th><th>Days left</th></tr></thead><tbody>");
    for c in &v.certificates {
        let cls = match c.days_left {
            d if d < 5 => "bad",
            d if d < 30 => "warn",
            _ => "ok",
        };
        let _ = write!(
            out,
            "<tr class=\"certificate\"><td>{}{}</td><td>{}</td><td>{}</td><td><span class=\"badge {cls}\">{}</span></td></tr>",
            esc(&c.name),
            if c.demo {
                " <small>(demonstration)</small>"
            } else {
                ""
            },
            esc(&c.subject),
            utc(c.not_after),
            c.days_left
        );
    }
    out.push_str("</tbody></table></section>");
    out.push_str(&super::page_health::render(&v.health, esc));
    if let Some(nodes) = &v.cluster {
        out.push_str("<section id=\"cluster\"><h2>Cluster</h2><table><thead><tr><th>Node</th><th>State</th><th>Queued</th><th>Configuration</th><th>Last heartbeat</th></tr></thead><tbody>");
        for n in nodes {
            let _ = write!(
                out,
                "<tr><td>{}</td><td><span class=\"badge {}\">{}</span></td><td>{} ({})</td><td>{}</td><td>{} ({} s ago)</td></tr>",
                esc(&n.name),
                if n.state == "running" { "ok" } else { "warn" },
                esc(&n.state),
                n.queue_messages,
                bytes(n.queue_bytes),
                n.config_version
                    .map_or("-".into(), |v| format!("version {v}")),
                esc(&n.last_heartbeat),
                n.seconds_since_heartbeat
            );
        }
        out.push_str("</tbody></table></section>");
    }
    // Recent alerts, newest first (`[alerts]`; the list is kept on disk).
    if !v.recent_alerts.is_empty() {
        out.push_str("<section id=\"recent-alerts\"><h2>Recent alerts</h2><ul>");
        for a in &v.recent_alerts {
            let field = |k: &str| a[k].as_str().unwrap_or_default().to_owned();
            let at = a["at"].as_u64().map(utc).unwrap_or_default();
            let repeats = match a["repeats"].as_u64() {
                Some(n) if n > 0 => format!(" (held back {n} repeat(s) before)"),
                _ => String::new(),
            };
            let _ = write!(
                out,
                "<li><span class=\"badge {badge}\">{sev}</span> {class} <small>{at}</small><br>{text}{repeats}</li>",
                badge = match field("severity").as_str() {
                    "critical" => "bad",
                    "warning" => "warn",
                    _ => "ok",
                },
                sev = esc(&field("severity")),
                class = esc(&field("class")),
                at = esc(&at),
                text = esc(&field("text")),
                repeats = esc(&repeats),
            );
        }
        out.push_str("</ul></section>");
    }
    out.push_str("</main><footer>Refreshes every 15 s · <a href=\"/metrics\">metrics</a> · API: <code>/api/status</code></footer></body></html>");
    out
}

/// Stacked bars per 5 minutes: inbound above the axis, outbound below;
/// green TLS, grey cleartext, red failed.
fn chart(buckets: &[[u64; 6]]) -> String {
    let max_in = buckets
        .iter()
        .map(|b| b[0] + b[1] + b[2])
        .max()
        .unwrap_or(0)
        .max(1);
    let max_out = buckets
        .iter()
        .map(|b| b[3] + b[4] + b[5])
        .max()
        .unwrap_or(0)
        .max(1);
    let (w, h, bar) = (600.0, 80.0, 40.0);
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {w} {}\" role=\"img\" aria-label=\"TLS outcomes per 5 minutes\">",
        h * 2.0 + 20.0
    );
    for (i, b) in buckets.iter().enumerate() {
        let x = 10.0 + i as f64 * 48.0;
        let mut y = h;
        for (v, cls) in [(b[0], "tls"), (b[1], "plain"), (b[2], "failed")] {
            let hh = v as f64 / max_in as f64 * (h - 5.0);
            y -= hh;
            let _ = write!(
                svg,
                "<rect class=\"{cls}\" x=\"{x}\" y=\"{y:.1}\" width=\"{bar}\" height=\"{hh:.1}\"><title>{v}</title></rect>"
            );
        }
        let mut y = h + 20.0;
        for (v, cls) in [(b[3], "tls"), (b[4], "plain"), (b[5], "failed")] {
            let hh = v as f64 / max_out as f64 * (h - 5.0);
            let _ = write!(
                svg,
                "<rect class=\"{cls}\" x=\"{x}\" y=\"{y:.1}\" width=\"{bar}\" height=\"{hh:.1}\"><title>{v}</title></rect>"
            );
            y += hh;
        }
    }
    let _ = write!(
        svg,
        "<line x1=\"0\" y1=\"{y}\" x2=\"{w}\" y2=\"{y}\" class=\"axis\"/><text x=\"4\" y=\"12\">inbound</text><text x=\"4\" y=\"{b}\">outbound</text></svg>\
         <p class=\"legend\"><span class=\"tls\">■</span> TLS <span class=\"plain\">■</span> cleartext <span class=\"failed\">■</span> TLS failed · 5-minute bars, newest on the right</p>",
        y = h + 10.0,
        b = h * 2.0 + 16.0
    );
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_values_decode_and_html_escapes() {
        assert_eq!(decode("a+b%2Ec%zz"), "a b.c%zz");
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        let body = Bytes::from_static(b"csrf=ab&action=suspend-listener&name=in%20bound");
        assert_eq!(form_field(&body, "name").as_deref(), Some("in bound"));
    }
}
