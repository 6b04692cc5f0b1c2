//! The node's flushers: one task per worker thread that writes what dirty streams gathered.
//!
//! A stream whose events come close together (see `stream.rs`, `COALESCE`) does not write each
//! one: it keeps them and puts itself, once, on its shard's list. Every [`FLUSH_TICK`] while the
//! list is not empty, the flusher takes the whole list and writes each stream's frames in one
//! call. So a busy stream's frames wait at most a tick, and the busier the node, the more frames
//! each write carries: the kernel's cost per write, which is most of a node's CPU, is paid once
//! per tick rather than once per event (at 1,000 events/s, a fifth as often). A stream whose
//! last write is older than `COALESCE` is written at once and never waits. Streams are spread
//! over the shards when they start, so that on a node with several cores every core flushes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// A stream a flusher writes: what it gathered while dirty.
pub(crate) trait Flush: Send + Sync + 'static {
    /// Writes what the stream gathered (see `stream.rs`).
    fn flush_dirty(&self);
}

/// How long a dirty stream's frames may wait to be written together.
pub(super) const FLUSH_TICK: Duration = Duration::from_millis(4);

#[derive(Debug)]
struct Shard<T> {
    dirty: Mutex<Vec<Arc<T>>>,
    wake: Notify,
}

impl<T> Default for Shard<T> {
    fn default() -> Self {
        Self { dirty: Mutex::default(), wake: Notify::default() }
    }
}

#[derive(Debug)]
pub(crate) struct Flushers<T> {
    shards: Box<[Shard<T>]>,
    next: AtomicUsize,
}

impl<T: Flush> Flushers<T> {
    /// One shard per worker thread the runtime can run at once.
    pub(crate) fn new() -> Self {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 64);
        Self { shards: (0..n).map(|_| Shard::default()).collect(), next: AtomicUsize::new(0) }
    }

    /// The shard of a new stream (round robin).
    pub(crate) fn pick(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed) % self.shards.len()
    }

    /// Puts `held` on its shard's list (it just became dirty, so it is not on it yet).
    pub(crate) fn mark(&self, shard: usize, held: Arc<T>) {
        let shard = &self.shards[shard];
        let first = {
            let mut dirty = shard.dirty.lock().unwrap_or_else(|e| e.into_inner());
            dirty.push(held);
            dirty.len() == 1
        };
        if first {
            shard.wake.notify_one();
        }
    }

    /// The flusher tasks, one per shard, until `stop` fires (streams that end then are flushed by
    /// their own tasks).
    pub(crate) fn run(self: &Arc<Self>, stop: &CancellationToken) -> Vec<impl Future<Output = ()> + Send + 'static> {
        (0..self.shards.len()).map(|i| Arc::clone(self).run_shard(i, stop.clone())).collect()
    }

    async fn run_shard(self: Arc<Self>, i: usize, stop: CancellationToken) {
        let shard = &self.shards[i];
        let mut batch = Vec::new();
        loop {
            tokio::select! {
                () = shard.wake.notified() => {}
                () = stop.cancelled() => return,
            }
            loop {
                // What the streams gather meanwhile goes out together.
                tokio::select! {
                    () = tokio::time::sleep(FLUSH_TICK) => {}
                    () = stop.cancelled() => return,
                }
                std::mem::swap(&mut batch, &mut *shard.dirty.lock().unwrap_or_else(|e| e.into_inner()));
                if batch.is_empty() {
                    break;
                }
                for held in batch.drain(..) {
                    held.flush_dirty();
                }
            }
        }
    }
}
