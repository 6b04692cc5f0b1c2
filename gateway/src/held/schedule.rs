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

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex, Weak};

use shared::sse;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::stream::{End, Held, State};
use crate::connection::refresh_frame;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Heartbeat,
    Deadline(u32),
}

#[derive(Debug)]
struct Entry {
    at: Instant,
    kind: Kind,
    stream: Weak<Held>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.at.cmp(&other.at)
    }
}

/// Entries handled per pass: a node holding a million streams does not stall its other work.
const BATCH: usize = 4096;

#[derive(Debug, Default)]
pub struct Schedule {
    heap: Mutex<BinaryHeap<Reverse<Entry>>>,
    /// Fires when an entry earlier than all others goes in.
    sooner: Notify,
}

impl Schedule {
    /// Puts a new held stream's entries in, then ends it at once if shutdown began (the shutdown
    /// pass may have run before its entries went in).
    pub fn add(&self, held: &Arc<Held>, shutdown: &CancellationToken) {
        let (heartbeat_at, deadline) = {
            let st = held.state();
            (st.last_write + held.node.heartbeat, deadline(&st))
        };
        let weak = Arc::downgrade(held);
        self.push([
            Entry { at: heartbeat_at, kind: Kind::Heartbeat, stream: weak.clone() },
            Entry { at: deadline.0, kind: Kind::Deadline(deadline.1), stream: weak },
        ]);
        if shutdown.is_cancelled() {
            close_for_shutdown(held);
        }
    }

    /// Schedules the stream's deadline again (a fresh token extended it).
    pub fn reschedule(&self, held: &Arc<Held>, st: &mut State) {
        st.deadline_gen = st.deadline_gen.wrapping_add(1);
        let (at, generation) = deadline(st);
        self.push([Entry { at, kind: Kind::Deadline(generation), stream: Arc::downgrade(held) }]);
    }

    fn push(&self, entries: impl IntoIterator<Item = Entry>) {
        let mut heap = self.heap.lock().unwrap_or_else(|e| e.into_inner());
        let before = heap.peek().map(|Reverse(e)| e.at);
        heap.extend(entries.into_iter().map(Reverse));
        if heap.peek().map(|Reverse(e)| e.at) < before || before.is_none() {
            self.sooner.notify_one();
        }
    }

    /// Runs until `stop` fires, then ends every held stream for shutdown.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
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
            let again: Vec<Entry> = due.drain(..).filter_map(|e| on_due(e, now)).collect();
            self.push(again);
            // Let the node's other tasks run between batches.
            tokio::task::yield_now().await;
        }
        let entries = std::mem::take(&mut *self.heap.lock().unwrap_or_else(|e| e.into_inner()));
        for Reverse(e) in entries {
            if let (Kind::Heartbeat, Some(held)) = (e.kind, e.stream.upgrade()) {
                close_for_shutdown(&held);
            }
        }
    }
}

/// The stream's next deadline: the refresh offer while one is due, else the token's end.
fn deadline(st: &State) -> (Instant, u32) {
    let at = match &st.refresh {
        Some(offer) if !st.offered => st.expires_at.checked_sub(offer.window).unwrap_or(st.expires_at),
        _ => st.expires_at,
    };
    (at, st.deadline_gen)
}

/// Handles a due entry; gives it back with its next time, or `None` when it is done.
fn on_due(e: Entry, now: Instant) -> Option<Entry> {
    let held = e.stream.upgrade()?;
    let mut st = held.state();
    if st.end.is_some() {
        return None;
    }
    let at = match e.kind {
        Kind::Heartbeat => {
            let due = st.last_write + held.node.heartbeat;
            if now < due {
                due
            } else {
                // A stream writing its backlog is not idle: its task is busy with the socket.
                if !Held::is_behind(&st) {
                    held.heartbeat(&mut st);
                }
                now + held.node.heartbeat
            }
        }
        Kind::Deadline(generation) if generation != st.deadline_gen => return None,
        Kind::Deadline(_) => {
            if now >= st.expires_at {
                tracing::debug!("token expired, closing stream");
                held.end(&mut st, End::Expired, None);
                return None;
            }
            let (at, _) = deadline(&st);
            if now < at {
                at
            } else {
                st.offered = true;
                let left = st.expires_at.saturating_duration_since(now).as_secs();
                let id = st.keep.as_ref().and_then(|k| k.control.as_ref()).map_or("", |c| c.entry().id());
                let frame = refresh_frame(&st.refresh.as_ref().map_or(String::new(), |r| r.url(id)), left);
                held.send_own(&mut st, &frame);
                st.expires_at
            }
        }
    };
    drop(st);
    Some(Entry { at, kind: e.kind, stream: e.stream })
}

fn close_for_shutdown(held: &Arc<Held>) {
    let mut st = held.state();
    let retry = sse::retry_frame(st.shutdown_retry_ms);
    held.end(&mut st, End::Shutdown, Some(&retry));
}
