//! The admin API's configuration and token routes: export (secrets
//! masked, or in clear for admin tokens), import and reset (applied like a
//! reload, then written to the file), and the API tokens.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::api::{ApiError, ApiResult, Peer, St, caller, done, log_action, ok, required};
use super::tokens::Role;
use crate::config::secrets::SecretHandling;

#[derive(Debug, Default, Deserialize)]
pub(super) struct ExportQuery {
    /// `mask` (default) or `plain` (admin tokens only).
    secrets: Option<String>,
}

pub(super) async fn config_export(
    State(s): St,
    peer: axum::Extension<Peer>,
    h: HeaderMap,
    Query(q): Query<ExportQuery>,
) -> ApiResult {
    let handling = match q.secrets.as_deref() {
        None | Some("mask") => SecretHandling::Mask,
        Some("plain") => SecretHandling::Plain,
        Some(other) => {
            caller(&s, peer.0.0, &h, Role::Read, "GET /api/config")?;
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("secrets={other:?}: write secrets=mask or secrets=plain"),
            ));
        }
    };
    let role = match handling {
        SecretHandling::Plain => Role::Admin,
        SecretHandling::Mask => Role::Read,
    };
    caller(
        &s,
        peer.0.0,
        &h,
        role,
        "exporting the configuration with its secrets",
    )?;
    let text = s
        .control
        .export(handling)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    ok(json!({ "text": text }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ImportBody {
    /// The TOML text.
    text: String,
    /// A name for error reports (the operator's file name).
    name: Option<String>,
    /// Load only this section.
    section: Option<String>,
}

pub(super) async fn config_import(
    State(s): St,
    peer: axum::Extension<Peer>,
    h: HeaderMap,
    b: Bytes,
) -> ApiResult {
    let who = caller(&s, peer.0.0, &h, Role::Admin, "importing a configuration")?;
    let body: ImportBody = required(&b)?;
    let name = body.name.unwrap_or_else(|| "imported.toml".into());
    log_action(&s, &who, &format!("config import {name}"));
    ok(s.control
        .import(&name, &body.text, body.section.as_deref())
        .await?)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SectionBody {
    section: String,
}

pub(super) async fn config_reset(
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
        "resetting a configuration section",
    )?;
    let body: SectionBody = required(&b)?;
    log_action(&s, &who, &format!("config reset {}", body.section));
    ok(s.control.reset(&body.section).await?)
}

pub(super) async fn tokens_list(
    State(s): St,
    peer: axum::Extension<Peer>,
    h: HeaderMap,
) -> ApiResult {
    caller(&s, peer.0.0, &h, Role::Admin, "listing tokens")?;
    ok(s.control.tokens().list())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TokenBody {
    name: String,
    role: Role,
}

pub(super) async fn token_create(
    State(s): St,
    peer: axum::Extension<Peer>,
    h: HeaderMap,
    b: Bytes,
) -> ApiResult {
    let who = caller(&s, peer.0.0, &h, Role::Admin, "creating a token")?;
    let body: TokenBody = required(&b)?;
    let token = s
        .control
        .tokens()
        .create(&body.name, body.role)
        .map_err(|e| ApiError::new(StatusCode::CONFLICT, e))?;
    log_action(
        &s,
        &who,
        &format!("token {:?} ({}) created", body.name, body.role.as_str()),
    );
    ok(json!({ "name": body.name, "role": body.role, "token": token }))
}

pub(super) async fn token_revoke(
    State(s): St,
    peer: axum::Extension<Peer>,
    h: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult {
    let who = caller(&s, peer.0.0, &h, Role::Admin, "revoking a token")?;
    let r = s.control.tokens().revoke(&name);
    if r.is_ok() {
        log_action(&s, &who, &format!("token {name:?} revoked"));
    }
    match r {
        Err(e) if e.starts_with("there is no token") => {
            Err(ApiError::new(StatusCode::NOT_FOUND, e))
        }
        other => done(other),
    }
}
