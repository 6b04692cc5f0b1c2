//! What travels through the bus: a publisher's [`NewEvent`] and, once the bus gave it an id, the
//! [`Delivery`] every local stream that follows its topic shares.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

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
    /// [`Bus::find_alias`](super::Bus::find_alias) turns it back into the event's id, so a client resuming from that
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
/// and shared by every stream (and, for the embedded bus, every replay) that sends it.
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
