//! The one HTTP-facing error type and its mapping to responses: 4xx with a stable JSON body
//! `{"error":"snake_code","message":"…"}`; 5xx logged once with the cause chain, never echoed.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use shared::Topic;

use crate::auth::AuthError;
use crate::bus::BusError;
use crate::cause::cause_chain;
use crate::control::RefreshRefusal;
use crate::limits::LimitError;
use crate::stream::StartError;
use crate::tickets::TicketError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error(transparent)]
    Unauthorized(AuthError),
    /// A token needs a JWKS key and the identity provider has not answered yet.
    #[error("{}", AuthError::KeysUnavailable)]
    KeysUnavailable,
    #[error("the token does not grant {action} on topic \"{topic}\"")]
    Forbidden { action: &'static str, topic: Topic },
    #[error("topic \"{0}\" is closed by an administrator")]
    TopicRevoked(Topic),
    #[error("this endpoint needs a token with the admin claim")]
    NotAdmin,
    #[error("no open stream has that id on any node")]
    UnknownStream,
    #[error(transparent)]
    RefreshRefused(RefreshRefusal),
    #[error("no such endpoint")]
    NotFound,
    #[error("method not allowed on this endpoint")]
    MethodNotAllowed,
    #[error("the request body exceeds {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("the gateway is shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Limit(#[from] LimitError),
    #[error("this node holds its maximum of {0} unexpired tickets; retry (another node may take it)")]
    TicketsFull(usize),
    #[error("{}", bus_message(.0))]
    Bus(#[from] BusError),
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest { code, message: message.into() }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::KeysUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "keys_unavailable"),
            Self::Forbidden { .. } => (StatusCode::FORBIDDEN, "forbidden"),
            Self::TopicRevoked(_) => (StatusCode::FORBIDDEN, "topic_revoked"),
            Self::NotAdmin => (StatusCode::FORBIDDEN, "not_admin"),
            Self::UnknownStream => (StatusCode::NOT_FOUND, "unknown_stream"),
            Self::RefreshRefused(r) => (StatusCode::FORBIDDEN, r.code()),
            Self::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::PayloadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "shutting_down"),
            Self::Limit(LimitError::Node(_)) => (StatusCode::SERVICE_UNAVAILABLE, "at_capacity"),
            Self::Limit(LimitError::Subject(_)) => (StatusCode::TOO_MANY_REQUESTS, "too_many_connections"),
            Self::TicketsFull(_) => (StatusCode::SERVICE_UNAVAILABLE, "at_capacity"),
            Self::Bus(BusError::Malformed(_)) => (StatusCode::BAD_GATEWAY, "bad_store_reply"),
            Self::Bus(BusError::Unavailable(_)) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        }
    }
}

/// What a client is told of a bus failure: its kind, never its cause (logged instead).
fn bus_message(e: &BusError) -> &'static str {
    match e {
        BusError::Unavailable(_) => "the event bus is unavailable",
        // Asking again gets the same answer: no `Retry-After`.
        BusError::Malformed(_) => "the event store answered with what the gateway cannot read",
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::KeysUnavailable => Self::KeysUnavailable,
            e => Self::Unauthorized(e),
        }
    }
}

impl From<StartError> for ApiError {
    fn from(e: StartError) -> Self {
        match e {
            StartError::KeyCollision(..) => Self::bad_request("invalid_topic", e.to_string()),
            StartError::Bus(e) => Self::Bus(e),
        }
    }
}

impl From<TicketError> for ApiError {
    fn from(e: TicketError) -> Self {
        match e {
            TicketError::Refused(e) => e.into(),
            TicketError::Full(max) => Self::TicketsFull(max),
            TicketError::Bus(e) => Self::Bus(e),
        }
    }
}

impl From<shared::publish::PublishError> for ApiError {
    fn from(e: shared::publish::PublishError) -> Self {
        Self::bad_request(e.code(), e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let Self::Bus(e) = &self {
            tracing::error!(error = %cause_chain(e), "request failed on the bus");
        }
        let mut response = (status, Json(serde_json::json!({ "error": code, "message": self.to_string() }))).into_response();
        let headers = response.headers_mut();
        match &self {
            Self::Unauthorized(e) => {
                // RFC 6750: the scheme, and for a bad token an error code clients can act on.
                let value = match e {
                    AuthError::Missing => r#"Bearer realm="sse-gateway""#.to_owned(),
                    other => format!(r#"Bearer realm="sse-gateway", error="invalid_token", error_description="{}""#, other.code()),
                };
                if let Ok(v) = HeaderValue::from_str(&value) {
                    headers.insert(header::WWW_AUTHENTICATE, v);
                }
            }
            Self::ShuttingDown | Self::Bus(BusError::Unavailable(_)) | Self::Limit(_) | Self::KeysUnavailable | Self::TicketsFull(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use axum::body::to_bytes;

    use super::*;

    async fn answer(e: ApiError) -> (StatusCode, Option<HeaderValue>, serde_json::Value) {
        let response = e.into_response();
        let (status, retry) = (response.status(), response.headers().get(header::RETRY_AFTER).cloned());
        let body = to_bytes(response.into_body(), 4096).await.expect("body");
        (status, retry, serde_json::from_slice(&body).expect("json"))
    }

    #[tokio::test]
    async fn a_malformed_store_reply_is_502_bad_store_reply_and_its_cause_is_never_echoed() {
        let cause = "WRONGTYPE Operation against a key holding the wrong kind of value";
        let (status, retry, body) = answer(ApiError::Bus(BusError::Malformed(cause.into()))).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        assert_eq!(body["error"], "bad_store_reply");
        assert!(!body.to_string().contains("WRONGTYPE"), "the cause stays in the log: {body}");
        assert_eq!(retry, None, "asking again gets the same answer");
    }

    #[tokio::test]
    async fn an_unreachable_store_is_still_503_unavailable_with_retry_after() {
        let (status, retry, body) = answer(ApiError::Bus(BusError::Unavailable("connection refused".into()))).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["error"], "unavailable");
        assert_eq!(body["message"], "the event bus is unavailable");
        assert_eq!(retry, Some(HeaderValue::from_static("5")));
    }
}
