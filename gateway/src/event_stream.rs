//! The `text/event-stream` response every stream endpoint answers with (native `/events` and the
//! Mercure hub): the stream's frames as the body, and the headers that keep every hop from
//! holding them back.
//!
//! On the lean path (`held/`) the body stays empty and the stream travels in the response's
//! extensions instead ([`LeanStream`]): the lean path writes the head itself and then the frames
//! straight to the socket.

use std::any::Any;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use futures::StreamExt;

use crate::stream::EventStream;

type Held = Box<dyn Any + Send>;

/// A stream for the lean path to take out of the response (extensions must be `Clone`, hence the
/// shared slot; exactly one party takes it).
#[derive(Debug, Clone)]
pub(crate) struct LeanStream(Arc<Mutex<Option<(EventStream, Held)>>>);

impl LeanStream {
    pub(crate) fn take(&self) -> Option<(EventStream, Held)> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// The response streaming `conn`. `held` (a stream-limit permit, a subscription's
/// announcement) lives as long as the stream: dropped when it ends or the client leaves.
/// `lean`: the request came on the lean path, which takes the stream out of the response.
pub(crate) fn response<H: Send + 'static>(conn: EventStream, held: H, lean: bool) -> Response {
    let mut response = if lean {
        let mut response = Response::new(Body::empty());
        let held: Held = Box::new(held);
        response.extensions_mut().insert(LeanStream(Arc::new(Mutex::new(Some((conn, held))))));
        response
    } else {
        let stream = conn.into_stream().map(move |frame| {
            let _held = &held;
            frame
        });
        Response::new(Body::from_stream(stream))
    };
    *response.status_mut() = StatusCode::OK;
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // nginx (and proxies that follow it) must pass each frame on at once.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}
