//! The `text/event-stream` response every stream endpoint answers with (native `/events` and the
//! Mercure hub): the connection's frames as the body, and the headers that keep every hop from
//! holding them back.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use futures::StreamExt;

use crate::connection::Connection;

/// The response streaming `conn`. `held` (a connection-limit permit, a subscription's
/// announcement) lives as long as the body: dropped when the stream ends or the client leaves.
pub fn response<H: Send + 'static>(conn: Connection, held: H) -> Response {
    let stream = conn.into_stream().map(move |frame| {
        let _held = &held;
        frame
    });
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = StatusCode::OK;
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // nginx (and proxies that follow it) must pass each frame on at once.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}
