//! The Mercure hub at `/.well-known/mercure` (`GATEWAY_MERCURE`): Mercure's publish and
//! subscribe on the gateway's bus, so a Mercure deployment gets every node, Redis history and
//! resumption on any node.
//!
//! The protocol rules are pure and live in `crate::mercure`; this module is the HTTP side:
//! - `token.rs`: where a request's token is found (per version) and what it grants;
//! - `publish.rs`: `POST`, a form body → one update → one event of the internal `$mercure` topic,
//!   named by the update id (`NewEvent::alias`) so that resuming from it works on any node;
//! - `subscribe.rs`: `GET`, the selectors and the resume point → a stream that follows
//!   `$mercure` and sends the updates its selectors and grant allow (`render.rs`);
//! - `announce.rs`: 1.0 subscription events (`GATEWAY_MERCURE_SUBSCRIPTIONS`), a private update
//!   when a subscription starts and when it ends;
//! - `error.rs`: every refusal and its response, RFC 6750 challenges included.
//!
//! Cost per update: the publish is one bus event (one `XADD` and one `SET` of its alias on
//! Redis); each node decodes and encodes it once; each Mercure stream then matches the update's
//! topics against its own selectors (linear in the topic for every selector form). Streams whose
//! selectors do not match skip it without writing anything.

mod announce;
mod error;
mod publish;
mod render;
mod settings;
mod subscribe;
mod token;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;

pub(crate) use self::settings::Hub;
use crate::config::{HUB_PATH, MercureConfig};
use crate::mercure::update::{UpdateLimits, UpdateRules};
use crate::state::AppState;

/// The hub's routes, or none when `GATEWAY_MERCURE=off`.
pub(crate) fn router(config: Option<&MercureConfig>, max_body: usize) -> Router<AppState> {
    let Some(config) = config else { return Router::new() };
    let rules = UpdateRules { protocol: config.protocol, hub_url: config.hub_url.clone(), limits: UpdateLimits::default() };
    let hub = Arc::new(Hub { config: config.clone(), rules });
    Router::new()
        .route(HUB_PATH, get(subscribe::subscribe).post(publish::publish))
        .layer(axum::Extension(hub))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn(move |request, next| crate::body_limit::refuse_announced_oversize(max_body, request, next)))
}
