//! `POST /publish`: any node appends events to their topics and delivers them.
//!
//! Body: one event `{"topic","data","event"?,"retry"?}` or a JSON array of them (a batch,
//! validated and authorized as a whole before anything is published); the format and its parser
//! are [`shared::publish`].
//!
//! With traces on, the append is a `publish` span whose context goes with every event, so that
//! each node's delivery joins the publisher's trace.

use axum::body::Bytes;
use axum::extract::Request;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};
use shared::publish::{self, Body, Publication};
use tracing::{Instrument, Span};

use super::request::{Query, authenticate};
use crate::auth::CookieToken;
use crate::body_limit::refuse_announced_oversize;
use crate::bus::NewEvent;
use crate::error::ApiError;
use crate::state::AppState;
use crate::telemetry::{self, TraceContext};

pub(super) fn router(max_body: usize) -> Router<AppState> {
    Router::new()
        .route("/publish", post(publish))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn(move |request: Request, next: Next| refuse_announced_oversize(max_body, request, next)))
}

async fn publish(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if state.shutdown.is_draining() {
        return Err(ApiError::ShuttingDown);
    }
    let query = Query::parse(raw.as_deref());
    let claims = authenticate(&state, &headers, query.access_token.as_deref(), CookieToken::Refused).await?;
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge { limit: state.config.max_body_bytes },
        _ => ApiError::bad_request("invalid_body", e.body_text()),
    })?;
    let Body { requests, single } = publish::parse_body(&body, state.config.max_batch)?;
    let mut events = Vec::with_capacity(requests.len());
    // Each event is validated, then authorized, before the next is looked at.
    for (i, r) in requests.into_iter().enumerate() {
        let Publication { topic, name, data, retry } = r.validate((!single).then_some(i))?;
        if !claims.may_publish(&topic) {
            return Err(ApiError::Forbidden { action: "publish", topic });
        }
        events.push(NewEvent { topic, name, data, retry, trace: None, alias: None });
    }
    let count = events.len() as u64;
    let span = publish_span(&events);
    let trace = TraceContext::of(&span);
    for e in &mut events {
        e.trace = trace.clone();
    }
    let ids = state.bus.publish(events).instrument(span.clone()).await?;
    if single {
        span.record("id", tracing::field::display(ids[0]));
    }
    state.counters.events_published.fetch_add(count, std::sync::atomic::Ordering::Relaxed);
    let body = if single { json!({ "id": ids[0] }) } else { json!({ "ids": ids }) };
    Ok((StatusCode::OK, Json(body)))
}

/// The span of a publish (traces on only): the topic when the request has one, the number of
/// events, and for a single event its id.
fn publish_span(events: &[NewEvent]) -> Span {
    if !telemetry::traces_on() {
        return Span::none();
    }
    let span = tracing::info_span!(
        "publish",
        otel.kind = "producer",
        topic = tracing::field::Empty,
        events = events.len() as i64,
        id = tracing::field::Empty,
    );
    if let Some(first) = events.first().filter(|first| events.iter().all(|e| e.topic == first.topic)) {
        span.record("topic", tracing::field::display(&first.topic));
    }
    span
}
