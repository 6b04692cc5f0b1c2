//! What every route reads from a request the same way: the query parameters, the caller's token
//! (verified, and checked against the revocations), and the topics a stream asks for.

use shared::{Claims, Topic};

use crate::auth::CookieToken;
use crate::error::ApiError;
use crate::state::AppState;

/// Query parameters, decoded; `topic` may repeat.
#[derive(Debug, Default)]
pub(super) struct Query {
    pub(super) topics: Vec<String>,
    pub(super) access_token: Option<String>,
    pub(super) ticket: Option<String>,
    pub(super) last_event_id: Option<String>,
}

impl Query {
    pub(super) fn parse(raw: Option<&str>) -> Self {
        let mut q = Self::default();
        for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            match &*k {
                "topic" => q.topics.push(v.into_owned()),
                "access_token" => q.access_token = Some(v.into_owned()),
                "ticket" => q.ticket = Some(v.into_owned()),
                "lastEventId" => q.last_event_id = Some(v.into_owned()),
                _ => {}
            }
        }
        q
    }
}

/// Authenticates a request: finds the token and verifies it (which may wait for a JWKS refresh).
pub(super) async fn authenticate(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    query_token: Option<&str>,
    cookie_token: CookieToken,
) -> Result<Claims, ApiError> {
    let refused = |e: crate::auth::AuthError| {
        tracing::debug!(reason = e.code(), "token refused");
        state.counters.auth_failures.get_or_create(&[("reason", e.code())]).inc();
        ApiError::from(e)
    };
    let token = state.auth.token(headers, query_token, cookie_token).map_err(refused)?;
    let claims = state.auth.verify(token).await.map_err(refused)?;
    if state.control.refusing(&claims).is_some() {
        return Err(refused(crate::auth::AuthError::Revoked));
    }
    Ok(claims)
}

/// Validates the `topic` parameters: at least one, at most `max`, each a valid name; duplicates
/// are folded.
pub(super) fn parse_topics(raw: &[String], max: usize) -> Result<Vec<Topic>, ApiError> {
    if raw.is_empty() {
        return Err(ApiError::bad_request("invalid_topic", "give at least one topic: /events?topic=NAME"));
    }
    let mut topics: Vec<Topic> = Vec::with_capacity(raw.len());
    for name in raw {
        let topic = Topic::parse(name).map_err(|e| ApiError::bad_request("invalid_topic", format!("topic {:?}: {e}", truncate(name))))?;
        if !topics.contains(&topic) {
            topics.push(topic);
        }
    }
    if topics.len() > max {
        return Err(ApiError::bad_request("too_many_topics", format!("{} topics given, at most {max} per connection", topics.len())));
    }
    Ok(topics)
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}
