//! Handing a caught-up connection over to the lean path (`held/`), and the count of open
//! streams, which goes with the stream whichever path holds it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::time::Instant;

use super::{Connection, Positions, RefreshOffer};
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

impl Connection {
    /// Whether everything due is sent: the history replayed, no frame waiting, the stream not
    /// over. Live events may still wait in the fan-out queue; the lean path takes those over.
    pub fn is_caught_up(&self) -> bool {
        self.replay.is_none() && self.pending.is_empty() && !self.done
    }

    /// The stream's state, for the lean path to hold from here on. Call only when
    /// [`Self::is_caught_up`].
    pub fn into_parts(self) -> Parts {
        Parts {
            positions: self.positions,
            sub: self.sub,
            control: self.control,
            offered: self.refresh.as_ref().is_some_and(|r| r.offered),
            refresh: self.refresh.map(|r| r.offer),
            expires_at: self.expires_at,
            last_write: self.last_write,
            shutdown_retry_ms: self.shutdown_retry_ms,
            open: self.open,
        }
    }
}
