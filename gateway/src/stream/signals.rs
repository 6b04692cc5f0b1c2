//! What a stream says of its own accord, as named events without an id (so that the client's
//! `Last-Event-ID` does not move): events were lost before it could resume, an administrator
//! revoked it, its token is about to expire. Written by `shared::sse`, with the names of
//! `shared::event`. Both the stream here and the lean path (`held/`) send them.

use std::pin::Pin;

use bytes::Bytes;
use shared::event::{LOST_EVENT, REFRESH_EVENT, REVOKED_EVENT};
use shared::sse;
use shared::{StreamId, Topic};
use tokio::sync::futures::OwnedNotified;

use crate::control::StreamEntry;

/// The lost-events signal: a named event without an id (the client's position does not move
/// until it receives the retained events that follow).
pub(crate) fn lost_frame(topic: &Topic, after: StreamId, resumed_from: Option<StreamId>) -> Bytes {
    let data = serde_json::json!({ "topic": topic, "after": after, "resumed_from": resumed_from });
    sse::signal_frame(LOST_EVENT, &data.to_string())
}

/// The last frame of a revoked stream: why, and until when the revocation stands.
pub(crate) fn revoked_frame(entry: &StreamEntry) -> Option<Bytes> {
    let (target, until_ms) = entry.revoked_by()?;
    let until = (until_ms > crate::epoch::now_millis()).then_some(until_ms / 1000);
    let data = serde_json::json!({ "reason": target.kind(), "until": until });
    Some(sse::signal_frame(REVOKED_EVENT, &data.to_string()))
}

/// The refresh offer: where to post a fresh token, and how long the current one has left.
pub(crate) fn refresh_frame(url: &str, expires_in: u64) -> Bytes {
    let data = serde_json::json!({ "url": url, "expires_in": expires_in });
    sse::signal_frame(REFRESH_EVENT, &data.to_string())
}

/// Resolves when the control plane changed the stream; never without a registration.
pub(super) async fn changed(wake: &mut Option<Pin<Box<OwnedNotified>>>) {
    match wake {
        Some(w) => w.as_mut().await,
        None => std::future::pending().await,
    }
}
