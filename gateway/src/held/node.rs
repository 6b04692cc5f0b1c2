//! The node of held streams: the counters, the fan-out, the schedule and the flushers that every
//! held stream of the node shares, and the tasks that run them.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::flusher::{Flush, Flushers};
use super::schedule::{Schedule, Timed};
use crate::bus::fanout::Fanout;
use crate::counters::Counters;

/// What every held stream of a node shares. Generic over the stream type (`stream::Held`, see
/// `Node` in `mod.rs`) because the streams hold their node: the schedule and the flushers keep
/// streams without naming their type.
#[derive(Debug)]
pub(crate) struct Node<T> {
    pub(crate) counters: Arc<Counters>,
    pub(crate) fanout: Arc<Fanout>,
    pub(crate) schedule: Arc<Schedule<T>>,
    pub(crate) flushers: Arc<Flushers<T>>,
    pub(crate) heartbeat: Duration,
    pub(crate) write_timeout: Duration,
    pub(crate) queue_limit: usize,
    pub(crate) shutdown: CancellationToken,
    /// Every socket's task and every held stream's task: shutdown waits for them.
    pub(crate) tasks: TaskTracker,
}

impl<T: Timed + Flush> Node<T> {
    pub(crate) fn new(
        counters: Arc<Counters>,
        fanout: Arc<Fanout>,
        heartbeat: Duration,
        write_timeout: Duration,
        shutdown: CancellationToken,
    ) -> Self {
        let queue_limit = fanout.queue_limit();
        let flushers = Arc::new(Flushers::new());
        Self {
            counters,
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
    pub(crate) fn background(&self) -> Vec<std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'static>>> {
        let mut tasks: Vec<std::pin::Pin<Box<dyn Future<Output = ()> + Send>>> =
            vec![Box::pin(Arc::clone(&self.schedule).run(self.shutdown.clone()))];
        tasks.extend(self.flushers.run(&self.shutdown).into_iter().map(|f| Box::pin(f) as _));
        tasks
    }

    /// Waits for every socket and stream task to finish (after shutdown began).
    pub(crate) async fn drained(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }
}
