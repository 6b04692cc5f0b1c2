//! The admin API: `POST /admin/disconnect` (revoke and kick, on every node) and
//! `GET /admin/streams` (count streams across nodes).
//!
//! Authorized by a token carrying `"admin": true`, verified like any other token (secret, public
//! key or JWKS) and sent as `Authorization: Bearer` only: never from a query string or the
//! browser's cookie, so a subscriber page cannot be made to call it. Subscriber and publisher
//! grants do not reach it, and an admin token grants no topic by itself.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use shared::Topic;

use super::request::authenticate;
use crate::auth::CookieToken;
use crate::config::MAX_REVOCATION;
use crate::control::{Tally, Target};
use crate::error::ApiError;
use crate::state::AppState;

/// An admin body is a handful of fields.
const MAX_BODY: usize = 4096;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/admin/disconnect", post(disconnect)).route("/admin/streams", get(streams)).layer(DefaultBodyLimit::max(MAX_BODY))
}

/// What to disconnect: exactly one of `subject`, `jti`, `topic`; `duration` (seconds) is how
/// long reconnects stay refused (default `GATEWAY_REVOCATION_TTL`; 0: disconnect only).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Selector {
    subject: Option<String>,
    jti: Option<String>,
    topic: Option<String>,
    duration: Option<u64>,
}

impl Selector {
    fn target(self) -> Result<Target, ApiError> {
        let named = [self.subject.is_some(), self.jti.is_some(), self.topic.is_some()].iter().filter(|n| **n).count();
        if named != 1 {
            return Err(ApiError::bad_request("invalid_selector", "give exactly one of subject, jti and topic"));
        }
        let nonempty = |field: &str, v: String| {
            if v.is_empty() || v.len() > 1024 {
                Err(ApiError::bad_request("invalid_selector", format!("{field} must be 1 to 1024 bytes")))
            } else {
                Ok(v)
            }
        };
        Ok(match (self.subject, self.jti, self.topic) {
            (Some(s), _, _) => Target::Subject(nonempty("subject", s)?),
            (_, Some(j), _) => Target::Jti(nonempty("jti", j)?),
            (_, _, Some(t)) => Target::Topic(Topic::parse(&t).map_err(|e| ApiError::bad_request("invalid_topic", format!("topic: {e}")))?),
            (None, None, None) => unreachable!("exactly one is set"),
        })
    }
}

async fn admin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let claims = authenticate(state, headers, None, CookieToken::Refused).await?;
    if !claims.admin {
        return Err(ApiError::NotAdmin);
    }
    Ok(())
}

async fn disconnect(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    admin(&state, &headers).await?;
    let body = body.map_err(|e| ApiError::bad_request("invalid_body", e.body_text()))?;
    let selector: Selector = serde_json::from_slice(&body).map_err(|e| ApiError::bad_request("invalid_body", format!("JSON body: {e}")))?;
    let duration = match selector.duration {
        None => state.config.revocation_ttl,
        Some(secs) if Duration::from_secs(secs) <= MAX_REVOCATION => Duration::from_secs(secs),
        Some(_) => return Err(ApiError::bad_request("invalid_duration", "duration is at most 30 days (2592000 seconds)")),
    };
    let target = selector.target()?;
    let kind = target.kind();
    let (tally, until_ms) = state.control.revoke(target, duration).await?;
    tracing::info!(kind, streams = tally.streams, nodes = tally.nodes, refused_for = ?duration, "revocation issued");
    let mut answer = tally_json(tally, "disconnected");
    answer["until"] = json!(until_ms.map(|ms| ms / 1000));
    Ok(Json(answer))
}

async fn streams(State(state): State<AppState>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Result<Json<Value>, ApiError> {
    admin(&state, &headers).await?;
    let mut selector = Selector::default();
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        let v = Some(v.into_owned());
        match &*k {
            "subject" => selector.subject = v,
            "jti" => selector.jti = v,
            "topic" => selector.topic = v,
            other => {
                return Err(ApiError::bad_request(
                    "invalid_selector",
                    format!("unknown parameter {:?}", other.chars().take(32).collect::<String>()),
                ));
            }
        }
    }
    let tally = state.control.count(selector.target()?).await?;
    Ok(Json(tally_json(tally, "streams")))
}

/// `{"<what>": n, "nodes": answered, "nodes_expected": alive}`: fewer answers than live nodes
/// means some node did not answer within the ask timeout (it applies a revocation when it reads
/// it, or when it reloads the stored ones).
fn tally_json(tally: Tally, what: &str) -> Value {
    json!({ what: tally.streams, "nodes": tally.nodes, "nodes_expected": tally.expected })
}
