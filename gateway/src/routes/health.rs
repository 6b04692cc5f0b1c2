//! `GET /healthz` (the process is alive) and `GET /readyz` (it should receive traffic: not
//! draining, the bus reachable, and every JWKS fetched once). A load balancer takes a node out on
//! 503 from `/readyz`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::state::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(|| async { Json(json!({ "status": "ok" })) })).route("/readyz", get(readyz))
}

async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    if state.shutdown.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "draining" })))
    } else if !state.bus.is_ready() {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "bus_unavailable" })))
    } else if !state.auth.keys_ready() {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "keys_unavailable" })))
    } else {
        (StatusCode::OK, Json(json!({ "status": "ready" })))
    }
}
