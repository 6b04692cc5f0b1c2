//! Node-local fan-out: one entry per followed topic, however many local streams follow it.
//!
//! A follower is one of two kinds:
//! - a **queue** (a stream served through hyper, or a lean one still replaying history):
//!   delivery is `try_send` into its bounded queue; a full queue means the client is not keeping
//!   up, so it is marked slow (its stream ends and it resumes from its `Last-Event-ID`) instead of
//!   slowing the publisher or other clients, and memory stays bounded by the queue;
//! - a **direct sink** (a caught-up stream on the lean path, `held/`): the delivery is written to
//!   the client's socket right here, by the task that delivers, with no queue and no wake-up of
//!   another task; the sink keeps a backlog only while its socket is full, under the same bound.
//!
//! With traces on, each delivery is one `deliver` span (per event and node, never per
//! stream), a child of the publish that caused it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use shared::{StreamId, Topic};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::Span;

use super::event::Delivery;
use super::shrink::shrink_idle;
use crate::counters::Counters;
use crate::telemetry;

/// What a stream's queue carries.
#[derive(Debug)]
pub enum Queued {
    Event(Arc<Delivery>),
    /// The topic's history after `to` is not what this node delivered (Redis failed over to a
    /// replica that had not received the newest entries): the stream's position moves back to
    /// `to`, so that it accepts the events the upstream sends next although their ids may be lower
    /// than ones it already sent.
    Rewind {
        topic: Topic,
        to: StreamId,
    },
}

/// An event handed out this long after it was published finds the node behind: direct sinks
/// then gather it with what follows rather than write it alone (see `held/stream.rs`).
pub(crate) const LATE: std::time::Duration = std::time::Duration::from_millis(5);

/// A follower the fan-out writes to itself, rather than through a queue.
pub trait DirectSink: Send + Sync + std::fmt::Debug {
    /// Sends `d` to the client, now or from its backlog; true if the stream took it.
    fn deliver(&self, d: &Arc<Delivery>) -> bool;
    /// See [`Queued::Rewind`].
    fn rewind(&self, topic: &Topic, to: StreamId);
}

#[derive(Debug)]
struct Follower {
    id: u64,
    sink: Sink,
}

#[derive(Debug)]
enum Sink {
    Queue {
        tx: mpsc::Sender<Queued>,
        /// Cancelled when the queue overflowed: the stream ends itself as too slow.
        slow: CancellationToken,
        /// Set with `slow`, and read per event instead of it: a token's state sits behind a lock.
        marked_slow: AtomicBool,
    },
    Direct(Arc<dyn DirectSink>),
}

/// The node's table of followed topics.
#[derive(Debug)]
pub struct Fanout {
    topics: RwLock<HashMap<Topic, Vec<Follower>>>,
    next_id: AtomicU64,
    queue: usize,
    /// Fires when the set of followed topics changes, so that an upstream (Redis) can re-arm with
    /// the new set. `notify_one` keeps the signal if the upstream is busy when it fires.
    pub topics_changed: Notify,
    counters: Arc<Counters>,
}

/// One stream's membership in the fan-out; leaving (drop) removes it from every topic, and a
/// topic whose last follower left is removed from the table.
#[derive(Debug)]
pub struct Membership {
    fanout: Arc<Fanout>,
    id: u64,
    topics: Vec<Topic>,
}

/// A queue follower: its membership and what it reads.
#[derive(Debug)]
pub struct Inbox {
    pub membership: Membership,
    pub rx: mpsc::Receiver<Queued>,
    pub slow: CancellationToken,
}

impl Fanout {
    pub fn new(queue: usize, counters: Arc<Counters>) -> Self {
        Self { topics: RwLock::new(HashMap::new()), next_id: AtomicU64::new(1), queue, topics_changed: Notify::new(), counters }
    }

    /// Registers a stream for `topics`. Registration comes before the stream reads
    /// history, so that nothing published in between is missed (the stream drops what it
    /// already replayed by id).
    /// `slow` is cancelled if the stream's queue overflows; the caller links it to whatever
    /// closes the client's socket.
    pub fn join(self: &Arc<Self>, topics: &[Topic], slow: CancellationToken) -> Inbox {
        let (tx, rx) = mpsc::channel(self.queue);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut added = false;
        {
            let mut table = self.topics.write().unwrap_or_else(|e| e.into_inner());
            for topic in topics {
                let followers = table.entry(topic.clone()).or_default();
                added |= followers.is_empty();
                let sink = Sink::Queue { tx: tx.clone(), slow: slow.clone(), marked_slow: AtomicBool::new(false) };
                followers.push(Follower { id, sink });
            }
        }
        if added {
            self.topics_changed.notify_one();
        }
        Inbox { membership: Membership { fanout: Arc::clone(self), id, topics: topics.to_vec() }, rx, slow }
    }

    /// Turns a queue follower into a direct one: under the table's lock (no delivery runs
    /// meanwhile), hands what is still queued to `drain`, in order, then points every entry of
    /// the follower at `sink`. Every later delivery goes to the sink, so nothing is lost or
    /// reordered between the two.
    pub fn go_direct(&self, sub: Inbox, sink: Arc<dyn DirectSink>, mut drain: impl FnMut(Queued)) -> Membership {
        let Inbox { membership, mut rx, slow: _ } = sub;
        let mut table = self.topics.write().unwrap_or_else(|e| e.into_inner());
        while let Ok(item) = rx.try_recv() {
            drain(item);
        }
        for topic in &membership.topics {
            if let Some(f) = table.get_mut(topic).and_then(|followers| followers.iter_mut().find(|f| f.id == membership.id)) {
                f.sink = Sink::Direct(Arc::clone(&sink));
            }
        }
        membership
    }

    /// Hands a delivery to every local follower of its topic. Never blocks.
    pub fn deliver(&self, delivery: Arc<Delivery>) {
        if let Some(id) = delivery.id {
            // Ids carry the time their publisher's clock (Redis, or this process) gave them.
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            let age = now.saturating_sub(std::time::Duration::from_millis(id.ms));
            self.counters.publish_to_deliver.observe(age.as_secs_f64());
            delivery.late.store(age > LATE, Ordering::Relaxed);
        }
        let span = deliver_span(&delivery);
        let _entered = span.enter();
        let topic = delivery.topic.clone();
        let handed = self.send(&topic, || Queued::Event(Arc::clone(&delivery)), |sink| sink.deliver(&delivery));
        // As i64: OpenTelemetry has no unsigned integers (a u64 would become a string).
        span.record("connections", handed as i64);
    }

    /// Tells every local follower of `topic` that its history after `to` was rewritten.
    pub fn rewind(&self, topic: &Topic, to: StreamId) {
        self.send(
            topic,
            || Queued::Rewind { topic: topic.clone(), to },
            |sink| {
                sink.rewind(topic, to);
                true
            },
        );
    }

    /// Queues `item` for every queue follower of `topic` and calls `direct` for every direct
    /// one; returns how many took it.
    fn send(&self, topic: &Topic, item: impl Fn() -> Queued, direct: impl Fn(&dyn DirectSink) -> bool) -> usize {
        let table = self.topics.read().unwrap_or_else(|e| e.into_inner());
        let Some(followers) = table.get(topic) else { return 0 };
        let mut handed = 0;
        for f in followers {
            let (tx, slow, marked_slow) = match &f.sink {
                Sink::Direct(sink) => {
                    handed += usize::from(direct(sink.as_ref()));
                    continue;
                }
                Sink::Queue { tx, slow, marked_slow } => (tx, slow, marked_slow),
            };
            if marked_slow.load(Ordering::Relaxed) {
                continue;
            }
            match tx.try_send(item()) {
                Ok(()) => handed += 1,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    marked_slow.store(true, Ordering::Relaxed);
                    self.counters.slow_disconnects.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(connection = f.id, topic = %topic, queue = self.queue, "client too slow, disconnecting");
                    slow.cancel();
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        handed
    }

    /// How many events a stream may have waiting (`GATEWAY_CLIENT_QUEUE`).
    pub fn queue_limit(&self) -> usize {
        self.queue
    }

    /// Whether at least one local stream follows `topic`.
    pub fn is_followed(&self, topic: &Topic) -> bool {
        self.topics.read().unwrap_or_else(|e| e.into_inner()).contains_key(topic)
    }

    /// How many topics at least one local stream follows.
    pub fn topic_count(&self) -> usize {
        self.topics.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// The topics at least one local stream follows.
    pub fn active_topics(&self) -> Vec<Topic> {
        self.topics.read().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect()
    }

    fn unsubscribe(&self, id: u64, topics: &[Topic]) {
        let mut removed = false;
        {
            let mut table = self.topics.write().unwrap_or_else(|e| e.into_inner());
            for topic in topics {
                if let Some(followers) = table.get_mut(topic) {
                    followers.retain(|f| f.id != id);
                    if followers.is_empty() {
                        table.remove(topic);
                        removed = true;
                    } else if followers.capacity() > 16 && followers.len() < followers.capacity() / 4 {
                        // A crowd that left a topic would otherwise keep its room.
                        followers.shrink_to(followers.len() * 2);
                    }
                }
            }
            if removed {
                shrink_idle(&mut table);
            }
        }
        if removed {
            self.topics_changed.notify_one();
        }
    }
}

/// This node's `deliver` span for one event: a child of the publish span the event came with,
/// else a root. Nothing at all when traces are off.
fn deliver_span(delivery: &Delivery) -> Span {
    if !telemetry::traces_on() {
        return Span::none();
    }
    let span = tracing::info_span!(
        parent: None,
        "deliver",
        otel.kind = "consumer",
        topic = %delivery.topic,
        id = tracing::field::Empty,
        connections = tracing::field::Empty,
    );
    if let Some(id) = delivery.id {
        span.record("id", tracing::field::display(id));
    }
    if let Some(trace) = &delivery.trace {
        trace.parent(&span);
    }
    span
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.fanout.unsubscribe(self.id, &self.topics);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::{Event, StreamId};

    fn delivery(topic: &Topic, seq: u64) -> Arc<Delivery> {
        Arc::new(Delivery::new(
            &Event { topic: topic.clone(), id: Some(StreamId::new(1, seq)), name: None, data: "x".into(), retry: None },
            None,
        ))
    }

    #[test]
    fn one_entry_per_topic_released_with_its_last_follower() {
        let fanout = Arc::new(Fanout::new(4, Arc::default()));
        let (a, b) = (Topic::parse("a").expect("topic"), Topic::parse("b").expect("topic"));
        let s1 = fanout.join(&[a.clone(), b.clone()], CancellationToken::new());
        let s2 = fanout.join(std::slice::from_ref(&a), CancellationToken::new());
        let mut topics = fanout.active_topics();
        topics.sort();
        assert_eq!(topics, vec![a.clone(), b]);
        drop(s1);
        assert_eq!(fanout.active_topics(), vec![a]);
        drop(s2);
        assert!(fanout.active_topics().is_empty());
    }

    #[test]
    fn the_table_gives_its_room_back_when_short_lived_topics_leave() {
        let fanout = Arc::new(Fanout::new(1, Arc::default()));
        let subs: Vec<Inbox> =
            (0..2_000).map(|i| fanout.join(&[Topic::parse(&format!("user.{i}")).expect("topic")], CancellationToken::new())).collect();
        let peak = fanout.topics.read().expect("lock").capacity();
        drop(subs);
        assert_eq!(fanout.topic_count(), 0);
        assert!(fanout.topics.read().expect("lock").capacity() < peak / 10, "room given back");
    }

    #[test]
    fn a_full_queue_marks_only_that_follower_slow() {
        let counters = Arc::new(Counters::default());
        let fanout = Arc::new(Fanout::new(2, Arc::clone(&counters)));
        let t = Topic::parse("t").expect("topic");
        let mut fast = fanout.join(std::slice::from_ref(&t), CancellationToken::new());
        let stalled = fanout.join(std::slice::from_ref(&t), CancellationToken::new());
        for seq in 0..3 {
            fanout.deliver(delivery(&t, seq));
            assert!(fast.rx.try_recv().is_ok(), "the fast follower keeps receiving");
        }
        assert!(stalled.slow.is_cancelled());
        assert!(!fast.slow.is_cancelled());
        assert_eq!(counters.slow_disconnects.load(Ordering::Relaxed), 1);
    }
}
