//! TLS reports on the admin listener: `POST /tlsrpt`, where other
//! organisations post their RFC 8460 reports about our domains (§5.4: no
//! token, `application/tlsrpt+gzip` or `application/tlsrpt+json`), and
//! what operators read — `GET /api/tls-reports` (the summary; `day`,
//! `domain`, `organization` narrow it), `GET /api/tls-reports/{id}` (one
//! report as sent), and the status page's section.
//!
//! A posted body is read up to the inbox's cap and no further; a refused
//! report gets a 4xx whose error says why, and is kept aside with the
//! reason like a refused report mail.

use std::fmt::Write as _;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::json;

use super::api::{ApiError, ApiResult, Peer, St, caller, ok};
use super::tokens::Role;
use crate::tlsrpt_inbox::{Intake, ReportInbox, ReportSource, Summary, SummaryFilter, summarize};

/// `POST /tlsrpt`.
pub(super) async fn post_report(
    State(s): St,
    peer: axum::Extension<Peer>,
    h: HeaderMap,
    body: Body,
) -> ApiResult {
    let engine = s.control.engine();
    let inbox = engine
        .report_inbox()
        .filter(|i| i.settings().https)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "this gateway takes no TLS reports over HTTPS ([tls-report-inbox] https)",
            )
        })?;
    let log = engine.mail_log().clone();
    let content_type = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let peer_ip = peer.0.0.ip();
    if media != "application/tlsrpt+gzip" && media != "application/tlsrpt+json" {
        log.line(format_args!(
            "TLS report POST from {peer_ip} refused: content type {content_type:?} (answered 415)"
        ));
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "a TLS report is posted as application/tlsrpt+gzip or application/tlsrpt+json (RFC 8460 section 5.4), not {content_type:?}"
            ),
        ));
    }
    let source = ReportSource {
        via: "https".to_owned(),
        peer: peer_ip.to_string(),
        detail: media.clone(),
    };
    let cap = inbox.settings().limits.max_received_bytes;
    let limited = http_body_util::Limited::new(body, usize::try_from(cap).unwrap_or(usize::MAX));
    let bytes = match limited.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            let too_large = e.is::<http_body_util::LengthLimitError>();
            let reason = if too_large {
                format!("report too large: more than {cap} bytes posted, the limit is {cap}")
            } else {
                format!("the request body could not be read: {e}")
            };
            if too_large {
                // Nothing is kept past the cap; the reason is.
                keep_refusal(&inbox, "too-large", &reason, &source).await;
            }
            log.warn(format_args!(
                "TLS report POST from {peer_ip} refused: {reason}"
            ));
            let status = if too_large {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::BAD_REQUEST
            };
            return Err(ApiError::new(
                status,
                format!("TLS report refused: {reason}"),
            ));
        }
    };
    let store = inbox.clone();
    let intake = tokio::task::spawn_blocking(move || store.take(&bytes, &source)).await;
    match intake {
        Ok(Ok(Intake::Stored {
            id,
            report,
            replaced,
        })) => {
            log.line(format_args!(
                "TLS report POST from {peer_ip} stored as {}",
                crate::tlsrpt_inbox::stored_summary(&id, &report, replaced)
            ));
            ok(json!({ "result": "stored", "id": id }))
        }
        Ok(Ok(Intake::Refused { id, reason })) => {
            log.warn(format_args!(
                "TLS report POST from {peer_ip} refused: {reason}; kept aside as {id}"
            ));
            let status = if reason.starts_with("report too large") {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::BAD_REQUEST
            };
            Err(ApiError::new(
                status,
                format!("TLS report refused: {reason}"),
            ))
        }
        Ok(Err(e)) => Err(not_stored(&log, peer_ip, &e.to_string())),
        Err(e) => Err(not_stored(&log, peer_ip, &e.to_string())),
    }
}

async fn keep_refusal(
    inbox: &std::sync::Arc<ReportInbox>,
    kind: &'static str,
    reason: &str,
    source: &ReportSource,
) {
    let (inbox, reason, source) = (inbox.clone(), reason.to_owned(), source.clone());
    let _ = tokio::task::spawn_blocking(move || inbox.refuse_because(None, kind, &reason, &source))
        .await;
}

fn not_stored(log: &crate::maillog::MailLog, peer: std::net::IpAddr, e: &str) -> ApiError {
    log.warn(format_args!(
        "TLS report POST from {peer} NOT stored: {e} (answered 503; the sender may retry)"
    ));
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "the report could not be stored; try again later",
    )
}

/// Query of `GET /api/tls-reports`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReportQuery {
    day: Option<String>,
    domain: Option<String>,
    organization: Option<String>,
}

/// The summary of the data directory's store (whether or not the inbox
/// is configured now: reports received earlier stay readable); on a
/// cluster node, with the reports every other node received (this node's
/// own when the database is away, with a note saying so).
pub(super) async fn summary_of(s: &super::api::ApiState, filter: SummaryFilter) -> Summary {
    let data_dir = s.control.running().await.config.data_dir.clone();
    let shared = match s.control.engine().cluster() {
        Some(cluster) => Some(crate::cluster::tlsrpt::received::reports(cluster).await),
        None => None,
    };
    tokio::task::spawn_blocking(move || {
        let store = crate::tlsrpt_inbox::ReportStore::at(&data_dir);
        let (mut reports, mut damaged) = store.reports();
        match shared {
            Some(Ok((theirs, bad))) => {
                let mine: std::collections::HashSet<String> =
                    reports.iter().map(|(r, _)| r.id.clone()).collect();
                reports.extend(theirs.into_iter().filter(|(r, _)| !mine.contains(&r.id)));
                reports.sort_by(|a, b| (a.0.received_at, &a.0.id).cmp(&(b.0.received_at, &b.0.id)));
                damaged.extend(bad);
            }
            Some(Err(e)) => damaged.push(format!("only this node's reports are shown: {e}")),
            None => {}
        }
        summarize(&reports, store.refused(), damaged, &filter)
    })
    .await
    .unwrap_or_default()
}

/// `GET /api/tls-reports`.
pub(super) async fn list(
    State(s): St,
    peer: axum::Extension<Peer>,
    h: HeaderMap,
    Query(q): Query<ReportQuery>,
) -> ApiResult {
    caller(&s, peer.0.0, &h, Role::Read, "GET /api/tls-reports")?;
    let filter = SummaryFilter {
        day: q.day,
        domain: q.domain,
        organization: q.organization,
    };
    ok(summary_of(&s, filter).await)
}

/// `GET /api/tls-reports/{id}`.
pub(super) async fn show(
    State(s): St,
    peer: axum::Extension<Peer>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    caller(&s, peer.0.0, &h, Role::Read, "GET /api/tls-reports/ID")?;
    let data_dir = s.control.running().await.config.data_dir.clone();
    let id_again = id.clone();
    let found = tokio::task::spawn_blocking(move || {
        crate::tlsrpt_inbox::ReportStore::at(&data_dir).report(&id)
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    match found {
        Ok((stored, _)) => Ok(axum::Json(stored).into_response()),
        Err(e) => {
            // Another node's report, when this node is in a cluster.
            if let Some(cluster) = s.control.engine().cluster()
                && let Ok(Some(stored)) =
                    crate::cluster::tlsrpt::received::report(cluster, &id_again).await
            {
                return Ok(axum::Json(stored).into_response());
            }
            Err(ApiError::new(StatusCode::NOT_FOUND, e))
        }
    }
}

/// The status page's section: failures per day, sending organisation,
/// our MX and result type; empty when no report was ever received.
pub(super) fn page_section(summary: &Summary, esc: impl Fn(&str) -> String) -> String {
    if summary.reports.is_empty() && summary.refused.is_empty() {
        return String::new();
    }
    let mut out =
        String::from("<section id=\"tls-reports\"><h2>TLS reports received (RFC 8460)</h2>");
    let failed: u64 = summary.reports.iter().map(|r| r.failed).sum();
    let successful: u64 = summary.reports.iter().map(|r| r.successful).sum();
    let _ = write!(
        out,
        "<p>{} report(s) from {} organisation(s): {successful} successful and {failed} failed session(s) reported; {} refused. \
         <code>portcullis tls-report list</code> has them all.</p>",
        summary.reports.len(),
        summary
            .reports
            .iter()
            .map(|r| r.organization.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        summary.refused.len()
    );
    if summary.failures.is_empty() {
        out.push_str("<p>No sender reported a failure.</p>");
    } else {
        out.push_str("<table><thead><tr><th>Day</th><th>Sending organisation</th><th>Policy domain</th><th>Our MX</th><th>Receiving IP</th><th>Result type</th><th>Failed sessions</th></tr></thead><tbody>");
        for f in summary.failures.iter().take(50) {
            let _ = write!(
                out,
                "<tr class=\"tls-report-failure\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><span class=\"badge bad\">{}</span></td><td>{}</td></tr>",
                esc(&f.day),
                esc(&f.organization),
                esc(&f.policy_domain),
                esc(&f.our_mx),
                esc(&f.receiving_ips.join(", ")),
                esc(&f.result_type),
                f.sessions
            );
        }
        out.push_str("</tbody></table>");
    }
    if let Some(r) = summary.refused.first() {
        let _ = write!(
            out,
            "<p>Last refused report: {} via {} from {}: {}</p>",
            crate::control::utc(r.received_at),
            esc(&r.source.via),
            esc(&r.source.peer),
            esc(&r.reason)
        );
    }
    out.push_str("</section>");
    out
}
