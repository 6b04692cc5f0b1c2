//! The lean path for held streams: how a `GET /events` (or a Mercure subscription) over HTTP/1.x
//! is served without hyper's per-connection buffers, its own timers or its own queue.
//!
//! The flow, one file each:
//! 1. `accept.rs`: every socket starts here. It reads the first request head itself
//!    (`head.rs`); a stream request is routed through the same axum router as everything else
//!    (auth, limits, CORS, traces), and anything else is handed to hyper with the bytes read so far.
//! 2. The stream's `200` head is written, then the stream's first frames (its `retry:`, any
//!    replayed history) by the same task, through the ordinary `Connection`.
//! 3. Once caught up, the stream is taken apart into a `stream::Held`: the fan-out writes each
//!    event to its socket directly (`stream.rs`), or, when events come close together, leaves it
//!    for a node-wide flusher that writes them together (`flusher.rs`); a backlog exists only
//!    while the socket is full or a flush is due; heartbeats and token deadlines come from one
//!    node-wide `schedule.rs`; and one small task per stream (`writer.rs`) sleeps until the
//!    client leaves or a full socket needs its backlog written.
//!
//! A stream served by hyper (HTTP/2, or a keep-alive connection whose first request was not a
//! stream) keeps the `Connection` for its whole life; both give the same frames in the same order.

pub mod accept;
mod flusher;
pub mod head;
mod schedule;
mod stream;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bus::fanout::Fanout;
use crate::stats::Stats;
use flusher::Flushers;
pub use schedule::Schedule;

/// What every held stream of a node shares.
#[derive(Debug)]
pub struct Node {
    pub(crate) stats: Arc<Stats>,
    pub(crate) fanout: Arc<Fanout>,
    pub(crate) schedule: Arc<Schedule>,
    pub(crate) flushers: Arc<Flushers>,
    pub(crate) heartbeat: Duration,
    pub(crate) write_timeout: Duration,
    pub(crate) queue_limit: usize,
    pub(crate) shutdown: CancellationToken,
    /// Every socket's task and every held stream's task: shutdown waits for them.
    pub(crate) tasks: TaskTracker,
}

impl Node {
    pub fn new(stats: Arc<Stats>, fanout: Arc<Fanout>, heartbeat: Duration, write_timeout: Duration, shutdown: CancellationToken) -> Self {
        let queue_limit = fanout.queue_limit();
        let flushers = Arc::new(Flushers::new());
        Self {
            stats,
            fanout,
            schedule: Arc::default(),
            flushers,
            heartbeat,
            write_timeout,
            queue_limit,
            shutdown,
            tasks: TaskTracker::new(),
        }
    }

    /// The node-wide tasks of the lean path, to run until shutdown: the schedule (which then
    /// ends every held stream) and the flushers.
    pub fn background(&self) -> Vec<std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'static>>> {
        let mut tasks: Vec<std::pin::Pin<Box<dyn Future<Output = ()> + Send>>> =
            vec![Box::pin(Arc::clone(&self.schedule).run(self.shutdown.clone()))];
        tasks.extend(self.flushers.run(&self.shutdown).into_iter().map(|f| Box::pin(f) as _));
        tasks
    }

    /// Waits for every socket and stream task to finish (after shutdown began).
    pub async fn drained(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }
}
