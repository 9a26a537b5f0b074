//! The routes of the admin listener (`docs/admin-api.md` has a curl
//! example for each). Every answer is JSON (the status page and `/metrics`
//! aside); every error is `{"error": "...", "problems": [...]}` with its
//! status: 400 malformed request, 401 no or unknown token, 403 read-only
//! token on an admin action, 404 unknown route or name, 405 wrong method,
//! 409 refused by the gateway's state, 422 a configuration with problems,
//! 429 too many failed authentications.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::auth::{Denied, FailureLimit, authorize, token_of};
use super::control::{Control, ReloadFailure};
use super::tokens::{Caller, Role};
use crate::control::QueueRequest;

/// The client's address, attached to each request by the server.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub SocketAddr);

/// What every handler shares.
#[derive(Debug)]
pub(crate) struct ApiState {
    pub control: Arc<Control>,
    pub limit: FailureLimit,
}

pub(super) type St = State<Arc<ApiState>>;

/// An error answer.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    error: String,
    problems: Vec<String>,
    retry_after: Option<u64>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, error: impl Into<String>) -> Self {
        ApiError {
            status,
            error: error.into(),
            problems: Vec::new(),
            retry_after: None,
        }
    }
}

impl From<Denied> for ApiError {
    fn from(d: Denied) -> Self {
        match d {
            Denied::Unauthenticated(m) => ApiError::new(StatusCode::UNAUTHORIZED, m),
            Denied::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, m),
            Denied::Limited { retry_after } => ApiError {
                retry_after: Some(retry_after),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!(
                        "too many failed authentications from your address; try again in {retry_after}s"
                    ),
                )
            },
        }
    }
}

impl From<ReloadFailure> for ApiError {
    fn from(f: ReloadFailure) -> Self {
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            error: f.error,
            problems: f.problems,
            retry_after: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            axum::Json(json!({"error": self.error, "problems": self.problems})),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"portcullis\""),
            );
        }
        if let Some(s) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        r
    }
}

pub(super) type ApiResult = Result<Response, ApiError>;

pub(super) fn ok<T: Serialize>(value: T) -> ApiResult {
    Ok(axum::Json(value).into_response())
}

pub(super) fn done(line: Result<String, String>) -> ApiResult {
    match line {
        Ok(l) => ok(json!({ "result": l })),
        Err(e) => Err(ApiError::new(StatusCode::CONFLICT, e)),
    }
}

/// Authorizes the request for `role`.
pub(crate) fn caller(
    s: &ApiState,
    peer: SocketAddr,
    headers: &HeaderMap,
    role: Role,
    what: &str,
) -> Result<Caller, ApiError> {
    let token = token_of(headers);
    Ok(authorize(
        s.control.tokens(),
        &s.limit,
        s.control.engine().mail_log(),
        peer.ip(),
        token.as_deref(),
        role,
        what,
    )?)
}

/// The JSON body, or the defaults when there is none.
fn body<T: DeserializeOwned + Default>(bytes: &Bytes) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("malformed JSON body: {e}")))
}

/// The JSON body, which must be there.
pub(super) fn required<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("malformed JSON body: {e}")))
}

pub(super) fn log_action(s: &ApiState, who: &Caller, what: &str) {
    s.control
        .engine()
        .mail_log()
        .line(format_args!("admin: {what} by token {:?}", who.name));
}

pub(crate) fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/", get(super::page::page))
        .route("/ui/login", post(super::page::login))
        .route("/ui/logout", post(super::page::logout))
        .route("/ui/action", post(super::page::action))
        .route("/metrics", get(metrics))
        .route("/api/status", get(status))
        .route("/api/health", get(health))
        .route("/api/alerts", get(alerts))
        .route("/api/queue", get(queue_list).post(queue))
        .route("/api/queue/{id}", get(queue_show))
        .route("/api/listeners/{name}/suspend", post(suspend_listener))
        .route("/api/listeners/{name}/resume", post(resume_listener))
        .route("/api/delivery/suspend", post(suspend_delivery))
        .route("/api/delivery/resume", post(resume_delivery))
        .route("/api/reload", post(reload))
        .route("/api/tls/exemptions", get(exemptions))
        .route("/api/tls/exemptions/clear", post(clear_exemptions))
        .route("/api/mta-sts/cache", get(sts_cache))
        .route("/api/mta-sts/cache/flush", post(flush_sts))
        .route("/api/never-downgrade", get(never_downgrade))
        .route("/api/never-downgrade/forget", post(forget_never_downgrade))
        .route("/api/dns/flush", post(flush_dns))
        .route("/tlsrpt", post(super::tls_reports::post_report))
        .route("/api/tls-reports", get(super::tls_reports::list))
        .route("/api/tls-reports/{id}", get(super::tls_reports::show))
        .route("/api/tls-report/send", post(super::api_tls_report::send))
        .route("/api/cluster", get(super::api_cluster::status))
        .route("/api/config", get(super::api_config::config_export))
        .route("/api/config/import", post(super::api_config::config_import))
        .route("/api/config/reset", post(super::api_config::config_reset))
        .route(
            "/api/tokens",
            get(super::api_config::tokens_list).post(super::api_config::token_create),
        )
        .route(
            "/api/tokens/{name}/revoke",
            post(super::api_config::token_revoke),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no such route; see docs/admin-api.md for the API",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "this route does not take that method; see docs/admin-api.md",
    )
}

async fn metrics(State(s): St, peer: axum::Extension<Peer>, h: HeaderMap) -> ApiResult {
    caller(&s, peer.0.0, &h, Role::Read, "GET /metrics")?;
    let text = super::exposition::render(&s.control)
        .await
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics"))?;
    Ok((
        [(header::CONTENT_TYPE, super::exposition::CONTENT_TYPE)],
        text,
    )
        .into_response())
}

async fn status(State(s): St, peer: axum::Extension<Peer>, h: HeaderMap) -> ApiResult {
    caller(&s, peer.0.0, &h, Role::Read, "GET /api/status")?;
    ok(super::view::status(&s.control).await)
}

async fn health(State(s): St, peer: axum::Extension<Peer>, h: HeaderMap) -> ApiResult {
    caller(&s, peer.0.0, &h, Role::Read, "GET /api/health")?;
    ok(s.control.engine().health().report())
}

/// The recent alerts (newest first) and the deliveries still pending in
/// the alert outbox.
async fn alerts(State(s): St, peer: axum::Extension<Peer>, h: HeaderMap) -> ApiResult {
    caller(&s, peer.0.0, &h, Role::Read, "GET /api/alerts")?;
    let dir = crate::alerts::alerts_dir(&s.control.engine().inner.data_dir);
    ok(crate::alerts::listing(&dir))
}

async fn run_queue(s: &ApiState, request: QueueRequest) -> ApiResult {
    let service = s.control.engine().queue_service();
    match service.handle(request).await {
        Ok(reply) => ok(reply),
        Err(e) if e.contains("not in the queue") || e.contains("not a message id") => {
            Err(ApiError::new(StatusCode::NOT_FOUND, e))
        }
        Err(e) => Err(ApiError::new(StatusCode::CONFLICT, e)),
    }
}

async fn queue_list(State(s): St, peer: axum::Extension<Peer>, h: HeaderMap) -> ApiResult {
    caller(&s, peer.0.0, &h, Role::Read, "GET /api/queue")?;
    run_queue(&s, QueueRequest::List).await
}

async fn queue_show(
    State(s): St,
    peer: axum::Extension<Peer>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    caller(&s, peer.0.0, &h, Role::Read, "GET /api/queue/ID")?;
    run_queue(&s, QueueRequest::Show { id }).await
}

async fn queue(State(s): St, peer: axum::Extension<Peer>, h: HeaderMap, b: Bytes) -> ApiResult {
    let who = caller(&s, peer.0.0, &h, Role::Read, "POST /api/queue")?;
    let request: QueueRequest = required(&b)?;
    let reads = matches!(request, QueueRequest::List | QueueRequest::Show { .. });
    if !reads {
        caller(&s, peer.0.0, &h, Role::Admin, "changing the queue")?;
        log_action(&s, &who, &format!("queue {request:?}"));
    }
    run_queue(&s, request).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SuspendBody {
    /// Seconds open sessions have to finish; default the shutdown grace.
    delay_seconds: Option<u64>,
}

async fn suspend_listener(
    State(s): St,
    peer: axum::Extension<Peer>,
    h: HeaderMap,
    Path(name): Path<String>,
    b: Bytes,
) -> ApiResult {
    let who = caller(&s, peer.0.0, &h, Role::Admin, "suspending a listener")?;
    let body: SuspendBody = body(&b)?;
    let delay = match body.delay_seconds {
        Some(d) => Duration::from_secs(d.min(24 * 3600)),
        None => s.control.grace().await,
    };
    log_action(&s, &who, &format!("suspend listener {name:?}"));
    listener_answer(s.control.engine().suspend_listener(&name, delay).await)
}

async fn resume_listener(
    State(s): St,
    peer: axum::Extension<Peer>,
    h: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult {
    let who = caller(&s, peer.0.0, &h, Role::Admin, "resuming a listener")?;
    log_action(&s, &who, &format!("resume listener {name:?}"));
    listener_answer(s.control.engine().resume_listener(&name).await)
}

fn listener_answer(r: Result<String, String>) -> ApiResult {
    match r {
        Err(e) if e.starts_with("there is no listener") => {
            Err(ApiError::new(StatusCode::NOT_FOUND, e))
        }
        other => done(other),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetBody {
    /// `ALL`, `example.com` or `.example.com`.
    target: String,
    /// On every node of the cluster (stored in the cluster database).
    #[serde(default)]
    cluster: bool,
}

async fn suspend_delivery(
    State(s): St,
    peer: axum::Extension<Peer>,
    h: HeaderMap,
    b: Bytes,
) -> ApiResult {
    let who = caller(&s, peer.0.0, &h, Role::Admin, "suspending delivery")?;
    let body: TargetBody = required(&b)?;
    log_action(&s, &who, &format!("suspend delivery {:?}", body.target));
    let engine = s.control.engine();
    bad_target(if body.cluster {
        engine.suspend_delivery_in_cluster(&body.target).await
    } else {
        engine.suspend_delivery(&body.target).await
    })
}

async fn resume_delivery(
    State(s): St,
    peer: axum::Extension<Peer>,
    h: HeaderMap,
    b: Bytes,
) -> ApiResult {
    let who = caller(&s, peer.0.0, &h, Role::Admin, "resuming delivery")?;
    let body: TargetBody = required(&b)?;
    log_action(&s, &who, &format!("resume delivery {:?}", body.target));
    let engine = s.control.engine();
    bad_target(if body.cluster {
        engine.resume_delivery_in_cluster(&body.target).await
    } else {
        engine.resume_delivery(&body.target).await
    })
}

fn bad_target(r: Result<String, String>) -> ApiResult {
    match r {
        Err(e) if e.contains("is not ALL, a domain") => {
            Err(ApiError::new(StatusCode::BAD_REQUEST, e))
        }
        other => done(other),
    }
}

async fn reload(State(s): St, peer: axum::Extension<Peer>, h: HeaderMap) -> ApiResult {
    let who = caller(&s, peer.0.0, &h, Role::Admin, "reloading")?;
    log_action(&s, &who, "reload");
    ok(s.control.reload().await?)
}

async fn exemptions(State(s): St, peer: axum::Extension<Peer>, h: HeaderMap) -> ApiResult {
    caller(&s, peer.0.0, &h, Role::Read, "GET /api/tls/exemptions")?;
    ok(s.control.engine().tls_exemptions())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostBody {
    host: Option<String>,
}

async fn clear_exemptions(
    State(s): St,
    peer: axum::Extension<Peer>,
    h: HeaderMap,
    b: Bytes,
) -> ApiResult {
    let who = caller(
        &s,
        peer.0.0,
        &h,
        Role::Admin,
        "clearing STARTTLS exemptions",
    )?;
    let body: HostBody = body(&b)?;
    log_action(&s, &who, "clear STARTTLS exemptions");
    match s
        .control
        .engine()
        .clear_tls_exemptions(body.host.as_deref())
    {
        Err(e) if e.contains("has no STARTTLS exemption") => {
            Err(ApiError::new(StatusCode::NOT_FOUND, e))
        }
        Err(e) => Err(ApiError::new(StatusCode::BAD_REQUEST, e)),
        Ok(l) => ok(json!({ "result": l })),
    }
}

async fn sts_cache(State(s): St, peer: axum::Extension<Peer>, h: HeaderMap) -> ApiResult {
    caller(&s, peer.0.0, &h, Role::Read, "GET /api/mta-sts/cache")?;
    ok(s.control.engine().mta_sts_cache())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DomainBody {
    domain: Option<String>,
}

async fn flush_sts(State(s): St, peer: axum::Extension<Peer>, h: HeaderMap, b: Bytes) -> ApiResult {
    let who = caller(&s, peer.0.0, &h, Role::Admin, "flushing the MTA-STS cache")?;
    let body: DomainBody = body(&b)?;
    log_action(&s, &who, "flush the MTA-STS cache");
    match s
        .control
        .engine()
        .flush_mta_sts_cache(body.domain.as_deref())
    {
        Err(e) if e.starts_with("no MTA-STS policy") => {
            Err(ApiError::new(StatusCode::NOT_FOUND, e))
        }
        other => done(other),
    }
}

async fn never_downgrade(State(s): St, peer: axum::Extension<Peer>, h: HeaderMap) -> ApiResult {
    caller(&s, peer.0.0, &h, Role::Read, "GET /api/never-downgrade")?;
    ok(s.control.engine().never_downgrade())
}

async fn forget_never_downgrade(
    State(s): St,
    peer: axum::Extension<Peer>,
    h: HeaderMap,
    b: Bytes,
) -> ApiResult {
    let who = caller(
        &s,
        peer.0.0,
        &h,
        Role::Admin,
        "forgetting never-downgrade memory",
    )?;
    let body: DomainBody = body(&b)?;
    log_action(&s, &who, "forget never-downgrade memory");
    match s
        .control
        .engine()
        .forget_never_downgrade(body.domain.as_deref())
    {
        Err(e) if e.starts_with("no never-downgrade memory") => {
            Err(ApiError::new(StatusCode::NOT_FOUND, e))
        }
        other => done(other),
    }
}

async fn flush_dns(State(s): St, peer: axum::Extension<Peer>, h: HeaderMap) -> ApiResult {
    let who = caller(&s, peer.0.0, &h, Role::Admin, "flushing the DNS cache")?;
    log_action(&s, &who, "flush the DNS cache");
    done(
        s.control
            .engine()
            .flush_dns_cache()
            .map(|()| "DNS cache flushed".to_owned())
            .map_err(|e| format!("cannot flush the DNS cache: {e}")),
    )
}
