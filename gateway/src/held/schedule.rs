//! Node-wide timing for held streams: one sorted schedule and one task, instead of timers per
//! stream.
//!
//! Each held stream has a heartbeat entry (always exactly one while it lives) and a deadline
//! entry (the refresh offer, then the token's end). When an entry comes due the task looks at the
//! stream: a heartbeat is written only if nothing was written for a whole interval, and the entry
//! goes back in for the next possible time; a deadline whose stream was extended meanwhile is
//! stale (its generation is old) and dropped. A stream that ended is skipped (entries hold weak
//! references, so the schedule never keeps a stream alive).
//!
//! At shutdown the task takes every stream's heartbeat entry and ends the stream with a last
//! jittered `retry:`; a stream that starts after that sees the shutdown itself (see
//! [`Schedule::add`]).
//!
//! What a stream does when an entry comes due is the stream's own business (`due.rs`, through
//! [`Timed`]): the schedule only keeps the times, so that it does not depend on the stream type
//! that depends on it.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A stream the schedule keeps times for.
pub(crate) trait Timed: Send + Sync + 'static {
    /// When its heartbeat entry and its deadline entry (with the deadline's generation) first
    /// come due.
    fn first_due(&self) -> (Instant, (Instant, u32));
    /// Its heartbeat entry came due at `now`: the time of the next one, or `None` once the stream
    /// is over.
    fn heartbeat_due(&self, now: Instant) -> Option<Instant>;
    /// Its deadline entry of `generation` came due at `now`: the time it is due again, or `None`
    /// once it is done with (the stream ended, or a newer deadline replaced it).
    fn deadline_due(&self, generation: u32, now: Instant) -> Option<Instant>;
    /// Ends the stream for shutdown.
    fn close_for_shutdown(&self);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Heartbeat,
    Deadline(u32),
}

#[derive(Debug)]
struct Entry<T> {
    at: Instant,
    kind: Kind,
    stream: Weak<T>,
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}
impl<T> Eq for Entry<T> {}
impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Entry<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.at.cmp(&other.at)
    }
}

/// Entries handled per pass: a node holding a million streams does not stall its other work.
const BATCH: usize = 4096;

#[derive(Debug)]
pub(crate) struct Schedule<T> {
    heap: Mutex<BinaryHeap<Reverse<Entry<T>>>>,
    /// Fires when an entry earlier than all others goes in.
    sooner: Notify,
}

impl<T> Default for Schedule<T> {
    fn default() -> Self {
        Self { heap: Mutex::default(), sooner: Notify::default() }
    }
}

impl<T: Timed> Schedule<T> {
    /// Puts a new held stream's entries in, then ends it at once if shutdown began (the shutdown
    /// pass may have run before its entries went in).
    pub(crate) fn add(&self, held: &Arc<T>, shutdown: &CancellationToken) {
        let (heartbeat_at, deadline) = held.first_due();
        let weak = Arc::downgrade(held);
        self.push([
            Entry { at: heartbeat_at, kind: Kind::Heartbeat, stream: weak.clone() },
            Entry { at: deadline.0, kind: Kind::Deadline(deadline.1), stream: weak },
        ]);
        if shutdown.is_cancelled() {
            held.close_for_shutdown();
        }
    }

    /// Schedules the stream's new deadline `(at, generation)` (a fresh token extended it).
    pub(crate) fn reschedule(&self, held: &Arc<T>, (at, generation): (Instant, u32)) {
        self.push([Entry { at, kind: Kind::Deadline(generation), stream: Arc::downgrade(held) }]);
    }

    fn push(&self, entries: impl IntoIterator<Item = Entry<T>>) {
        let mut heap = self.heap.lock().unwrap_or_else(|e| e.into_inner());
        let before = heap.peek().map(|Reverse(e)| e.at);
        heap.extend(entries.into_iter().map(Reverse));
        if heap.peek().map(|Reverse(e)| e.at) < before || before.is_none() {
            self.sooner.notify_one();
        }
    }

    /// Runs until `stop` fires, then ends every held stream for shutdown.
    pub(crate) async fn run(self: Arc<Self>, stop: CancellationToken) {
        let sleep = tokio::time::sleep(std::time::Duration::from_secs(3600));
        tokio::pin!(sleep);
        let mut due = Vec::new();
        loop {
            let next = self.heap.lock().unwrap_or_else(|e| e.into_inner()).peek().map(|Reverse(e)| e.at);
            sleep.as_mut().reset(next.unwrap_or_else(|| Instant::now() + std::time::Duration::from_secs(3600)));
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = self.sooner.notified() => continue,
                _ = &mut sleep => {}
            }
            let now = Instant::now();
            {
                let mut heap = self.heap.lock().unwrap_or_else(|e| e.into_inner());
                while due.len() < BATCH && heap.peek().is_some_and(|Reverse(e)| e.at <= now) {
                    due.extend(heap.pop().map(|Reverse(e)| e));
                }
            }
            let again: Vec<Entry<T>> = due.drain(..).filter_map(|e| on_due(e, now)).collect();
            self.push(again);
            // Let the node's other tasks run between batches.
            tokio::task::yield_now().await;
        }
        let entries = std::mem::take(&mut *self.heap.lock().unwrap_or_else(|e| e.into_inner()));
        for Reverse(e) in entries {
            if let (Kind::Heartbeat, Some(held)) = (e.kind, e.stream.upgrade()) {
                held.close_for_shutdown();
            }
        }
    }
}

/// Handles a due entry; gives it back with its next time, or `None` when it is done.
fn on_due<T: Timed>(e: Entry<T>, now: Instant) -> Option<Entry<T>> {
    let held = e.stream.upgrade()?;
    let at = match e.kind {
        Kind::Heartbeat => held.heartbeat_due(now)?,
        Kind::Deadline(generation) => held.deadline_due(generation, now)?,
    };
    Some(Entry { at, kind: e.kind, stream: e.stream })
}
