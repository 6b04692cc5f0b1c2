//! What a stream is started with: the settings the route gathers, how a stream of another
//! protocol renders its events, and the in-band refresh offer.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use crate::bus::Delivery;
use crate::control::Registration;

/// What a stream needs from the application, gathered by the route.
#[derive(Debug)]
pub(crate) struct StreamSettings {
    pub heartbeat: Duration,
    /// Reconnection delay (ms) for the opening `retry:` and for the last one at shutdown.
    pub retry_ms: u64,
    pub shutdown_retry_ms: u64,
    /// When the token expires.
    pub expires_in: Duration,
    /// Fires when the gateway shuts down.
    pub shutdown: CancellationToken,
    /// Fired by the fan-out if the client's queue overflows; linked to the socket's kill switch.
    pub slow: CancellationToken,
    /// The stream's place in the control plane (revocation, refresh); none in unit tests.
    pub control: Option<Registration>,
    /// When to ask for a fresh token and where it goes; none: the stream ends at expiry.
    pub refresh: Option<RefreshOffer>,
    /// For a stream of another protocol (Mercure): what it sends for each event; none: the
    /// native frames.
    pub render: Option<Box<dyn Render>>,
}

/// How a stream of another protocol turns events into frames. The stream keeps its positions
/// (ids, order, exactly-once, resumption) as a native one does; only what it writes differs.
pub(crate) trait Render: Send + Sync + std::fmt::Debug {
    /// The frame to send for `d`, or `None` to skip it (its position still moves past it).
    fn frame(&self, d: &Delivery) -> Option<Bytes>;
}

/// In-band token refresh: `window` before the token expires the stream sends
/// `gateway.refresh` with `url`, where the client posts a fresh token.
#[derive(Debug, Clone)]
pub(crate) struct RefreshOffer {
    pub window: Duration,
    /// `GATEWAY_PUBLIC_URL` without a trailing slash, or empty. The offer's URL is made from it
    /// and the stream's id when the offer is sent, rather than kept by every stream.
    pub public_url: Arc<str>,
}

impl RefreshOffer {
    /// Where the client of stream `id` posts its fresh token (`routes/refresh.rs`): absolute
    /// with `GATEWAY_PUBLIC_URL`, else relative to the gateway's root (resolved against the event
    /// stream's URL).
    pub(crate) fn url(&self, id: &str) -> String {
        format!("{}/streams/{id}/refresh", self.public_url)
    }
}
