//! `POST /streams/{id}/refresh`: in-band token refresh. A stream announces this URL in its
//! `gateway.refresh` event before its token expires; the client posts a fresh token here
//! (`Authorization: Bearer`, or the auth cookie) to any node, and the node holding the stream
//! extends it if the token has the stream's subject and grants every one of its topics.
//!
//! The id names the holding node and holds 128 random bits known only to the stream's client,
//! and a fresh token for the same subject is needed anyway: guessing ids gains nothing.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::request::authenticate;
use crate::auth::CookieToken;
use crate::control::RefreshOutcome;
use crate::error::ApiError;
use crate::state::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/streams/{id}/refresh", post(refresh))
}

async fn refresh(State(state): State<AppState>, Path(id): Path<String>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    if !crate::control::is_stream_id(&id) {
        return Err(ApiError::UnknownStream);
    }
    let claims = authenticate(&state, &headers, None, CookieToken::Accepted).await?;
    match state.control.refresh(&id, claims).await? {
        RefreshOutcome::Refreshed { exp } => {
            let expires_in = crate::auth::time_left_until(exp, std::time::Duration::ZERO).as_secs();
            Ok(Json(json!({ "expires_in": expires_in })))
        }
        RefreshOutcome::Refused(reason) => Err(ApiError::RefreshRefused(reason)),
        RefreshOutcome::Unknown => Err(ApiError::UnknownStream),
    }
}
