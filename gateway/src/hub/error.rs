//! Every way a hub request is refused, and its response: the protocol's status, an RFC 6750
//! `WWW-Authenticate: Bearer` challenge for token failures (1.0 requires it; 0.x clients read
//! only the status), and the gateway's short JSON body.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::mercure::claims::BearerError;
use crate::mercure::selector::SelectorError;
use crate::mercure::update::UpdateError;

#[derive(Debug, thiserror::Error)]
pub(super) enum HubError {
    /// No token where one is needed: 401 with a bare challenge (no error code).
    #[error("a token is required: send Authorization: Bearer (or the hub's cookie)")]
    MissingToken,
    /// A token problem, with the RFC 6750 code; the reason is logged, not disclosed.
    #[error("{}", .0.code())]
    Bearer(BearerError),
    #[error(transparent)]
    Selector(#[from] SelectorError),
    #[error(transparent)]
    Update(#[from] UpdateError),
    #[error("{0}")]
    LastEventId(&'static str),
    /// What the native endpoints refuse alike (shutdown, limits, the bus, the body size).
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl IntoResponse for HubError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            HubError::MissingToken => (StatusCode::UNAUTHORIZED, "unauthorized"),
            HubError::Bearer(e) => (e.status(), e.code()),
            HubError::Selector(_) => (StatusCode::BAD_REQUEST, "invalid_selector"),
            HubError::Update(e) => {
                (e.status(), if e.status() == StatusCode::PAYLOAD_TOO_LARGE { "update_too_large" } else { "invalid_update" })
            }
            HubError::LastEventId(_) => (StatusCode::BAD_REQUEST, "invalid_last_event_id"),
            // Answered below as the native endpoints answer it.
            HubError::Api(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        let this = match self {
            HubError::Api(e) => return e.into_response(),
            other => other,
        };
        let mut response = (status, Json(serde_json::json!({ "error": code, "message": this.to_string() }))).into_response();
        let challenge = match &this {
            HubError::MissingToken => Some(r#"Bearer realm="mercure""#.to_owned()),
            HubError::Bearer(e) => Some(format!(r#"Bearer realm="mercure", error="{}""#, e.code())),
            _ => None,
        };
        if let Some(v) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        response
    }
}
