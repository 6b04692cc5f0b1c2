//! Handing a caught-up stream over to the lean path (`held/`), and the count of open
//! streams, which goes with the stream whichever path holds it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::time::Instant;

use super::positions::Positions;
use super::settings::RefreshOffer;
use crate::bus::fanout::Inbox;
use crate::control::Registration;
use crate::counters::Counters;

/// Counts the stream in `streams_open` while it lives, whichever path holds it.
#[derive(Debug)]
pub(crate) struct OpenStream(Arc<Counters>);

impl OpenStream {
    pub(super) fn new(counters: &Arc<Counters>) -> Self {
        counters.streams_open.fetch_add(1, Ordering::Relaxed);
        counters.streams_total.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(counters))
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.streams_open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A live, caught-up stream taken apart for the lean path (`held/`), which holds the same
/// stream without a task pulling frames: see [`EventStream::into_parts`].
#[derive(Debug)]
pub(crate) struct Parts {
    pub positions: Positions,
    pub sub: Inbox,
    pub control: Option<Registration>,
    pub refresh: Option<RefreshOffer>,
    /// The refresh offer was sent for the current token.
    pub offered: bool,
    pub expires_at: Instant,
    pub last_write: Instant,
    pub shutdown_retry_ms: u64,
    pub open: OpenStream,
}
