//! The HTTP surface: one file per resource, merged here with the cross-cutting layers.

mod admin;
mod demo;
mod events;
mod health;
mod metrics;
mod publish;
mod refresh;
mod request;
mod tickets;

use axum::Router;
use axum::extract::MatchedPath;
use axum::http::{HeaderName, HeaderValue, Method, Request, header};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::trace::TraceLayer;

use crate::error::ApiError;
use crate::state::AppState;

pub(crate) fn router(state: AppState) -> Router {
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
pub(crate) fn admin_router(state: AppState) -> Router {
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
