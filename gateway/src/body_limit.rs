//! The request body bound of the publishing endpoints (`/publish`, `/tickets`, the Mercure hub).

use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;

use crate::error::ApiError;

/// A body whose `Content-Length` is over the limit is refused before a byte of it is read: the
/// limit on the body stream alone would wait, for as long as the client likes, for a body
/// announced at 10 GB and never sent.
pub(crate) async fn refuse_announced_oversize(max_body: usize, request: Request, next: Next) -> Result<Response, ApiError> {
    let announced = request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    match announced {
        Some(length) if length > max_body as u64 => Err(ApiError::PayloadTooLarge { limit: max_body }),
        _ => Ok(next.run(request).await),
    }
}
