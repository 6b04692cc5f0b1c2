//! The HTTP surface: one file per resource, merged here with the cross-cutting layers.

mod admin;
mod demo;
mod events;
mod health;
mod metrics;
mod publish;
mod refresh;
mod tickets;

use axum::Router;
use axum::extract::MatchedPath;
use axum::http::{HeaderName, HeaderValue, Method, Request, header};
use shared::Claims;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::trace::TraceLayer;

use crate::error::ApiError;
use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(events::router())
        .merge(publish::router(state.config.max_body_bytes))
        .merge(tickets::router(state.config.max_topics))
        .merge(health::router())
        .merge(if state.config.metrics_addr.is_none() { metrics::router() } else { Router::new() })
        .merge(admin::router())
        .merge(refresh::router())
        .merge(demo::router())
        .merge(crate::hub::router(state.config.mercure.as_ref(), state.config.max_body_bytes))
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(cors(&state.config.cors_origins))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
            // The route template only: the query string may hold a token.
            let route = req.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str());
            let span = tracing::info_span!("request", method = %req.method(), route);
            // With traces on, a caller's `traceparent` header continues its trace here.
            crate::telemetry::parent_from_headers(&span, req.headers());
            span
        }))
        .with_state(state)
}

/// The admin listener's routes (`GATEWAY_METRICS_ADDR`): metrics and health, nothing a client
/// uses.
pub fn admin_router(state: AppState) -> Router {
    Router::new()
        .merge(metrics::router())
        .merge(health::router())
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state)
}

/// CORS for browsers on other origins. No compression layer exists anywhere: it would buffer the
/// event stream.
fn cors(origins: &[String]) -> CorsLayer {
    let layer = CorsLayer::new().allow_methods([Method::GET, Method::POST]).allow_headers([
        header::AUTHORIZATION,
        header::CONTENT_TYPE,
        HeaderName::from_static("last-event-id"),
    ]);
    if origins.iter().any(|o| o == "*") {
        layer.allow_origin(AllowOrigin::any())
    } else {
        let list: Vec<HeaderValue> = origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
        // Credentials (the auth cookie) only for origins named one by one.
        layer.allow_origin(list).allow_credentials(true)
    }
}

/// Query parameters, decoded; `topic` may repeat.
#[derive(Debug, Default)]
struct Query {
    topics: Vec<String>,
    access_token: Option<String>,
    ticket: Option<String>,
    last_event_id: Option<String>,
}

impl Query {
    fn parse(raw: Option<&str>) -> Self {
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
async fn authenticate(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    query_token: Option<&str>,
    use_cookie: bool,
) -> Result<Claims, ApiError> {
    let refused = |e: crate::auth::AuthError| {
        tracing::debug!(reason = e.code(), "token refused");
        state.stats.auth_failures.get_or_create(&[("reason", e.code())]).inc();
        ApiError::from(e)
    };
    let token = state.auth.token(headers, query_token, use_cookie).map_err(refused)?;
    let claims = state.auth.verify(token).await.map_err(refused)?;
    if state.control.refusing(&claims).is_some() {
        return Err(refused(crate::auth::AuthError::Revoked));
    }
    Ok(claims)
}
