//! `GET /events?topic=…`: the SSE endpoint.

use std::sync::Arc;

use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use shared::Cursor;

use super::request::{Query, parse_topics};
use crate::auth;
use crate::control::Target;
use crate::error::ApiError;
use crate::event_stream;
use crate::listener::ClientInfo;
use crate::state::AppState;
use crate::stream::{EventStream, RefreshOffer, StreamSettings};

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/events", get(events))
}

async fn events(
    State(state): State<AppState>,
    client: Option<Extension<ConnectInfo<ClientInfo>>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    if state.shutdown.is_draining() {
        return Err(ApiError::ShuttingDown);
    }
    let query = Query::parse(raw.as_deref());
    let claims = super::tickets::stream_claims(&state, &headers, &query).await?;
    let topics = parse_topics(&query.topics, state.config.max_topics)?;
    if let Some(topic) = topics.iter().find(|t| !claims.may_subscribe(t)) {
        return Err(ApiError::Forbidden { action: "subscribe", topic: topic.clone() });
    }
    let cursor = last_event_id(&headers, query.last_event_id.as_deref())?;
    let permit = state.stream_permit(claims.sub.as_deref())?;
    // Registered before the stream starts, under the lock revocations take: see `control/`.
    let registration = state.control.register(&claims, &topics).map_err(|refused| match refused.target {
        Target::Topic(topic) => ApiError::TopicRevoked(topic),
        _ => ApiError::from(auth::AuthError::Revoked),
    })?;
    let refresh = (!state.config.refresh_window.is_zero())
        .then(|| RefreshOffer { window: state.config.refresh_window, public_url: Arc::clone(&state.public_url) });
    let lean = client.as_ref().is_some_and(|Extension(ConnectInfo(c))| c.lean);
    let settings = StreamSettings {
        heartbeat: state.config.heartbeat,
        retry_ms: state.jittered_retry_ms(),
        shutdown_retry_ms: state.jittered_retry_ms(),
        expires_in: auth::time_left(&claims, state.leeway()),
        shutdown: state.shutdown.token(),
        // A client found too slow is cut at the socket (see listener.rs); without a socket
        // (router tests) the stream still ends itself.
        slow: client.map(|Extension(ConnectInfo(c))| c.kill).unwrap_or_default(),
        control: Some(registration),
        refresh,
        render: None,
    };
    let conn = EventStream::start(topics, cursor, &state.fanout, state.bus.clone(), settings, state.counters.clone())
        .await
        .map_err(ApiError::from)?;
    tracing::debug!(subject = claims.sub.as_deref().unwrap_or(""), "stream opened");
    // The permit goes with the stream: it is returned when the stream is dropped.
    Ok(event_stream::response(conn, permit, lean))
}

/// The resumption position: the `Last-Event-ID` header (what `EventSource` sends when it
/// reconnects) wins over the `lastEventId` query parameter (for a fresh page load). Unparseable
/// is an error, not a silent restart from now.
fn last_event_id(headers: &HeaderMap, query: Option<&str>) -> Result<Option<Cursor>, ApiError> {
    let raw = match headers.get("last-event-id") {
        Some(v) => Some(v.to_str().map_err(|_| ApiError::bad_request("invalid_last_event_id", "Last-Event-ID is not ASCII"))?),
        None => query,
    };
    match raw.map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) => Cursor::parse(s).map(Some).map_err(|e| ApiError::bad_request("invalid_last_event_id", format!("Last-Event-ID: {e}"))),
    }
}
