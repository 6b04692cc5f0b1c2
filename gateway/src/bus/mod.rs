//! The event bus seam: where events are stored (history, ids) and where live events come from.
//!
//! Data flow: a publisher hands [`NewEvent`]s to [`Bus::publish`]; the bus assigns each a
//! [`StreamId`], keeps it in the topic's history and hands it, encoded once, to this node's
//! [`fanout::Fanout`], which pushes it to every local connection following the topic. A
//! connection that resumes reads the history after its position with [`Bus::read`].
//!
//! With traces on, each event carries the [`TraceContext`] of the span that published it, so that
//! the node fan-outs that deliver it (one `deliver` span per event per node) join its trace.
//!
//! The embedded [`memory::MemoryBus`] is the single-node implementation; a Redis implementation
//! plugs in behind the same trait (the fanout tells it which topics this node follows).

pub mod fanout;
pub mod memory;
pub mod redis;
pub mod tickets;

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use shared::sse::EncodedEvent;
use shared::{Event, EventName, StreamId, Topic};

use crate::mercure;
use crate::telemetry::TraceContext;

/// What a publisher asks for; the bus assigns the id.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub topic: Topic,
    pub name: Option<EventName>,
    pub data: String,
    pub retry: Option<u64>,
    /// The publishing span's context (traces on), for the deliveries to join its trace.
    pub trace: Option<TraceContext>,
    /// A name the publisher gave the event (a Mercure update id): while the event is in history,
    /// [`Bus::find_alias`] turns it back into the event's id, so a client resuming from that
    /// name finds its place on any node.
    pub alias: Option<String>,
}

impl NewEvent {
    /// An event with data only, and no alias or trace.
    pub fn new(topic: Topic, data: String) -> Self {
        Self { topic, name: None, data, retry: None, trace: None, alias: None }
    }
}

/// An event inside a node: its topic and id for routing and cursors, and its frame, encoded once
/// and shared by every connection (and, for the embedded bus, every replay) that sends it.
#[derive(Debug)]
pub struct Delivery {
    pub topic: Topic,
    pub id: Option<StreamId>,
    pub frame: EncodedEvent,
    /// When this node received the event; the start of publish-to-deliver latency.
    pub received: Instant,
    /// The context of the span that published the event, if it came with one: the parent of
    /// this node's `deliver` span.
    pub trace: Option<TraceContext>,
    /// A Mercure update read from this event's data, decoded by the first stream that needs it
    /// and shared by the others (`None` inside: not a Mercure update).
    pub(crate) mercure: OnceLock<Option<Arc<mercure::Dispatch>>>,
    /// The event's data as stored, kept only for events of the internal Mercure topic (their
    /// native frame is never sent).
    pub(crate) raw: Option<Box<str>>,
    /// `frame` as an HTTP/1.1 chunk, made by the first lean stream that sends it (`held/`).
    chunked: OnceLock<Bytes>,
    /// The fan-out handed it out more than `fanout::LATE` after it was published: the node is
    /// behind.
    pub(crate) late: std::sync::atomic::AtomicBool,
}

impl Delivery {
    #[expect(
        clippy::disallowed_methods,
        reason = "publish-to-deliver latency and lateness are real elapsed time, as the histogram reports it"
    )]
    pub fn new(event: &Event, trace: Option<TraceContext>) -> Self {
        Self {
            topic: event.topic.clone(),
            id: event.id,
            frame: EncodedEvent::new(event),
            received: Instant::now(),
            trace,
            mercure: OnceLock::new(),
            raw: event.topic.is_internal().then(|| event.data.as_str().into()),
            chunked: OnceLock::new(),
            late: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The frame as an HTTP/1.1 chunk, made once per node and event.
    pub fn chunk(&self) -> &Bytes {
        self.chunked.get_or_init(|| crate::http_chunk::chunk(&[self.frame.frame()]))
    }

    /// The Mercure update this event carries, decoded once per node and event.
    pub(crate) fn mercure(&self) -> Option<&Arc<mercure::Dispatch>> {
        self.mercure.get_or_init(|| self.raw.as_deref().and_then(mercure::Dispatch::decode).map(Arc::new)).as_ref()
    }
}

/// The answer to [`Bus::read`].
#[derive(Debug, Default)]
pub struct Replay {
    /// Events after the asked position, oldest first, at most the asked limit.
    pub events: Vec<Arc<Delivery>>,
    /// Events after the asked position are no longer in history (trimmed, expired, or held by a
    /// process that has since restarted): the client must be told.
    pub lost: bool,
    /// A position such that every future event of the topic has a greater id. A connection with
    /// no cursor starts here, and a cursor beyond it (from another deployment, or a clock that
    /// went back) is pulled back to it so that no future event is skipped.
    pub tail: StreamId,
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The backing store cannot be reached; callers answer 503 and retry later.
    #[error("the event bus is unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Tickets (`tickets.rs`) are kept through the same seam, in a trait of their own.
#[async_trait]
pub trait Bus: tickets::TicketStore + Send + Sync + std::fmt::Debug + 'static {
    /// Appends events to their topics' histories and delivers them to subscribers, in order.
    /// Returns the assigned ids in input order. Each topic's part of a batch is appended as a
    /// whole or not at all (with Redis Cluster, different topics live on different shards).
    async fn publish(&self, events: Vec<NewEvent>) -> Result<Vec<StreamId>, BusError>;

    /// Reads up to `limit` events of `topic` after `after` (none when `after` is `None`; then only
    /// the tail is wanted).
    async fn read(&self, topic: &Topic, after: Option<StreamId>, limit: usize) -> Result<Replay, BusError>;

    /// Makes sure this node receives the live events of `topics` before it returns: a connection
    /// calls it after registering with the fan-out and before reading its starting positions, so
    /// that nothing published after those positions can be missed.
    async fn follow(&self, _topics: &[Topic]) -> Result<(), BusError> {
        Ok(())
    }

    /// Claims `name` for `ttl` across every node sharing the bus; true for exactly one caller.
    /// Lets one node of many do a periodic job (the clock tick).
    async fn claim(&self, _name: &str, _ttl: std::time::Duration) -> Result<bool, BusError> {
        Ok(true)
    }

    /// The id of the event of `topic` that was published with `alias`, while it is in history.
    async fn find_alias(&self, topic: &Topic, alias: &str) -> Result<Option<StreamId>, BusError>;

    /// Whether the bus can serve (its store reachable).
    fn is_ready(&self) -> bool;

    /// How many topics' histories this process holds (the embedded bus); `None` when history
    /// lives elsewhere. What tells that idle topics really leave memory.
    fn held_topics(&self) -> Option<usize> {
        None
    }
}

/// Gives a per-topic table's spare room back once it is under a quarter full: `remove` and
/// `retain` never shrink a `HashMap`, so a burst of short-lived topics (a million users passing
/// by) would keep the table at its peak size for ever. Shrinking to twice the length only when a
/// quarter full keeps the cost amortised: each shrink follows at least as many removals as it
/// moves entries.
pub(crate) fn shrink_idle<K: Eq + Hash, V>(map: &mut HashMap<K, V>) {
    if map.capacity() > 64 && map.len() < map.capacity() / 4 {
        map.shrink_to(map.len() * 2);
    }
}
