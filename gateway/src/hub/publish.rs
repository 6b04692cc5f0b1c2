//! `POST /.well-known/mercure`: a publisher posts one update as a form; the hub answers `200`
//! with the update's id as `text/plain`.
//!
//! Checked in this order, each with the draft's status: the token (401, RFC 6750 challenge), the
//! body (400, or 413 past the bounds), the grant on every topic of the update (403). The update is
//! then one event of the internal `$mercure` topic; its id is the event's alias, so that a
//! subscriber resuming from it finds its place on any node.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use shared::Topic;
use tracing::Instrument;

use super::error::HubError;
use super::settings::Hub;
use super::token::{self, Purpose};
use crate::bus::NewEvent;
use crate::config::Protocol;
use crate::error::ApiError;
use crate::mercure::dispatch;
use crate::mercure::selector::TopicRef;
use crate::mercure::update::parse_update;
use crate::state::AppState;
use crate::telemetry::{self, TraceContext};

pub(super) async fn publish(
    State(state): State<AppState>,
    Extension(hub): Extension<Arc<Hub>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, HubError> {
    if state.shutdown.is_draining() {
        return Err(ApiError::ShuttingDown.into());
    }
    let query: Vec<(String, String)> = form_urlencoded::parse(raw.unwrap_or_default().as_bytes()).into_owned().collect();
    let token = token::find(hub.config.protocol, &headers, &query, Purpose::Publish)?.ok_or(HubError::MissingToken)?;
    let grant = token::grant(&state, &hub, token).await?;
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge { limit: state.config.max_body_bytes },
        _ => ApiError::bad_request("invalid_body", e.body_text()),
    })?;
    let update = parse_update(&body, &hub.rules)?;
    let hub_url = &hub.config.hub_url;
    let topics: Vec<TopicRef<'_>> = match hub.config.protocol {
        Protocol::V1 => update.topics.iter().map(|t| TopicRef::on_hub(t, hub_url)).collect(),
        Protocol::Legacy => update.topics.iter().map(|t| TopicRef::plain(t)).collect(),
    };
    grant.authorize_publish(&topics).map_err(|e| HubError::Bearer(e.bearer()))?;
    let span = if telemetry::traces_on() {
        tracing::info_span!("publish", otel.kind = "producer", topic = %update.canonical_topic(), events = 1_i64, id = %update.id)
    } else {
        tracing::Span::none()
    };
    let event = NewEvent {
        trace: TraceContext::of(&span),
        alias: Some(update.id.clone()),
        ..NewEvent::new(Topic::mercure(), dispatch::store(&update))
    };
    state.bus.publish(vec![event]).instrument(span).await.map_err(ApiError::from)?;
    state.counters.events_published.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tracing::debug!(topic = update.canonical_topic(), private = update.private, "Mercure update published");
    let mut response = update.id.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    Ok(response)
}
