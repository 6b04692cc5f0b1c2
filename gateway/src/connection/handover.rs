//! Handing a caught-up connection over to the lean path (`held/`), and the count of open
//! streams, which goes with the stream whichever path holds it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::time::Instant;

use super::positions::Positions;
use super::settings::RefreshOffer;
use crate::bus::fanout::Subscription;
use crate::control::Registration;
use crate::stats::Stats;

/// Counts the stream in `connections_open` while it lives, whichever path holds it.
#[derive(Debug)]
pub struct OpenStream(Arc<Stats>);

impl OpenStream {
    pub(super) fn new(stats: &Arc<Stats>) -> Self {
        stats.connections_open.fetch_add(1, Ordering::Relaxed);
        stats.connections_total.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(stats))
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.connections_open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A live, caught-up connection taken apart for the lean path (`held/`), which holds the same
/// stream without a task pulling frames: see [`Connection::into_parts`].
#[derive(Debug)]
pub struct Parts {
    pub positions: Positions,
    pub sub: Subscription,
    pub control: Option<Registration>,
    pub refresh: Option<RefreshOffer>,
    /// The refresh offer was sent for the current token.
    pub offered: bool,
    pub expires_at: Instant,
    pub last_write: Instant,
    pub shutdown_retry_ms: u64,
    pub open: OpenStream,
}
