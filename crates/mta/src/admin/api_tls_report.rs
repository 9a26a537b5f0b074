//! `POST /api/tls-report/send` (`portcullis ctl tls-report send --day
//! YYYY-MM-DD`): sends one UTC day's TLS reports now, to every report
//! address of every domain with counts, and answers what each address said.

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::api::{ApiError, ApiResult, Peer, St, caller, log_action, ok, required};
use super::tokens::Role;
use crate::tlsrpt::UtcDay;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SendBody {
    day: String,
}

pub(super) async fn send(
    axum::extract::State(s): St,
    peer: axum::Extension<Peer>,
    h: HeaderMap,
    b: Bytes,
) -> ApiResult {
    let who = caller(&s, peer.0.0, &h, Role::Admin, "sending TLS reports")?;
    let body: SendBody = required(&b)?;
    let day = UtcDay::parse(&body.day)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    log_action(&s, &who, &format!("send the TLS reports of {day}"));
    let results = s
        .control
        .engine()
        .send_tls_reports(day)
        .await
        .map_err(|e| ApiError::new(StatusCode::CONFLICT, e))?;
    ok(json!({
        "day": day.to_string(),
        "reports": results
            .iter()
            .map(|r| match &r.outcome {
                Ok(answer) => json!({"domain": r.domain, "rua": r.rua, "sent": true, "answer": answer.trim_end()}),
                Err(e) => json!({"domain": r.domain, "rua": r.rua, "sent": false, "error": e}),
            })
            .collect::<Vec<_>>(),
    }))
}
