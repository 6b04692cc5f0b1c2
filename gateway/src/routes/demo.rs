//! `GET /`: the demo page. It reads its tokens and topics from its own URL and follows them with
//! the browser's `EventSource`, so it shows exactly what any browser client would get.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::state::AppState;

const PAGE: &str = include_str!("../../static/index.html");

pub(super) fn router() -> Router<AppState> {
    Router::new().route(
        "/",
        get(|| async { ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], PAGE).into_response() }),
    )
}
