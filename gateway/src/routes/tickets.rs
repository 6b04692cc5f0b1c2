//! `POST /tickets`: a token (header or cookie) traded for a one-time stream ticket, and the
//! ticket side of `GET /events` (see `crate::tickets` for what a ticket is and why).
//!
//! Body (optional): `{"topics":["a","b"]}` narrows the ticket to those topics, each of which
//! the token must grant. Answer: `200 {"ticket":"…","expires_in":30}` with `Cache-Control:
//! no-store`, as for any credential.
//!
//! A token in the query string is not looked at here: the endpoint exists so that tokens stay out
//! of URLs. A cookie is: a cross-site page can make the browser send it, but cannot read the
//! answer (CORS), so it never learns the ticket.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use shared::{Claims, Topic};

use super::request::{Query, authenticate, parse_topics};
use crate::auth::CookieToken;
use crate::error::ApiError;
use crate::state::AppState;

/// The largest body: room for `max_topics` topics of the longest name, quoted and escaped, and
/// some spaces. One announced larger is 413 before a byte of it is read (as for publishing).
fn max_body(max_topics: usize) -> usize {
    1024 + max_topics * (shared::event::MAX_TOPIC_LEN + 4)
}

pub(super) fn router(max_topics: usize) -> Router<AppState> {
    let limit = max_body(max_topics);
    Router::new()
        .route("/tickets", post(issue))
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn(move |request: Request, next: Next| crate::body_limit::refuse_announced_oversize(limit, request, next)))
}

/// What a client may ask of its ticket.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TicketRequest {
    topics: Option<Vec<String>>,
}

async fn issue(State(state): State<AppState>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<Response, ApiError> {
    let claims = authenticate(&state, &headers, None, CookieToken::Accepted).await?;
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge { limit: max_body(state.config.max_topics) },
        _ => ApiError::bad_request("invalid_body", e.body_text()),
    })?;
    let topics = narrowing(&state, &claims, &body)?;
    let issued = state.tickets.issue(&claims, topics.as_deref()).await?;
    let mut response = Json(json!({ "ticket": issued.ticket, "expires_in": issued.expires_in })).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// The topics the body narrows the ticket to (`None`: an empty body or no `topics`, so the
/// token's grants), each valid and granted by the token.
fn narrowing(state: &AppState, claims: &Claims, body: &[u8]) -> Result<Option<Vec<Topic>>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let request: TicketRequest = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("the body is not a ticket request: {e}")))?;
    let Some(names) = request.topics else { return Ok(None) };
    if names.is_empty() {
        return Err(ApiError::bad_request("invalid_topic", "topics is empty: leave it out for every topic the token grants"));
    }
    let topics = parse_topics(&names, state.config.max_topics)?;
    if let Some(topic) = topics.iter().find(|t| !claims.may_subscribe(t)) {
        return Err(ApiError::Forbidden { action: "subscribe", topic: topic.clone() });
    }
    Ok(Some(topics))
}

/// Who opens a stream: the claims of its ticket (spent here) or of its token. A request with
/// both is refused rather than guessed at; a cookie does not count, since a browser sends it
/// along whether the page meant it to or not.
pub(super) async fn stream_claims(state: &AppState, headers: &HeaderMap, query: &Query) -> Result<Claims, ApiError> {
    let Some(ticket) = query.ticket.as_deref() else {
        return authenticate(state, headers, query.access_token.as_deref(), CookieToken::Accepted).await;
    };
    if headers.contains_key(header::AUTHORIZATION) || query.access_token.is_some() {
        return Err(ApiError::bad_request("ticket_and_token", "give a ticket or a token, not both"));
    }
    Ok(state.tickets.redeem(ticket).await?)
}
