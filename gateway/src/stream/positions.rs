//! Where a stream stands in each of its topics, and what it sends for an event: the rule both
//! ways of holding a stream share (hyper's body in `stream.rs`, the lean path in `held/`).
//!
//! An event is sent once: a stream keeps the id of the last event it sent per topic and skips
//! anything at or before it (an event replayed from history and then seen live, or sent again
//! by the upstream after a reconnection). A stream of one topic sends the event's own frame, the
//! same bytes for every stream; a stream of several topics sends the event's fields with its
//! multi-topic cursor as the id.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use shared::{StreamId, Topic};
use shared::{cursor, sse};

use super::settings::Render;
use crate::bus::Delivery;
use crate::counters::Counters;

#[derive(Debug)]
struct TopicState {
    topic: Topic,
    key: u64,
    /// The id of the last event sent for this topic, or where the stream started.
    position: StreamId,
}

/// What a stream sends for one event.
#[derive(Debug)]
pub(crate) enum Frame {
    /// The event's own frame (`Delivery::frame`), shared by every stream of one topic.
    Shared,
    /// A frame of this stream's own (another protocol's rendering).
    Own(Bytes),
    /// The event's fields, then this stream's multi-topic cursor as its `id:` line.
    WithCursor { fields: Bytes, id: Bytes },
}

/// A stream's topics, its position in each, and how it renders events.
#[derive(Debug)]
pub(crate) struct Positions {
    topics: Vec<TopicState>,
    render: Option<Box<dyn Render>>,
}

impl Positions {
    /// `starts` pairs each topic with where the stream starts in it.
    pub(crate) fn new(starts: impl IntoIterator<Item = (Topic, StreamId)>, render: Option<Box<dyn Render>>) -> Self {
        let topics = starts.into_iter().map(|(topic, position)| TopicState { key: cursor::topic_key(&topic), topic, position }).collect();
        Self { topics, render }
    }

    /// What to send for `d`, moving the stream's position past it; `None` if the stream sent it
    /// already, does not follow its topic, or its rendering skips it.
    pub(crate) fn accept(&mut self, d: &Delivery, counters: &Counters) -> Option<Frame> {
        let i = self.topics.iter().position(|t| t.topic == d.topic)?;
        let Some(id) = d.id else {
            // Live-only: no id line, the client's Last-Event-ID stays where it was.
            counters.events_delivered.fetch_add(1, Ordering::Relaxed);
            return Some(Frame::Shared);
        };
        if id <= self.topics[i].position {
            return None;
        }
        self.topics[i].position = id;
        if let Some(render) = &self.render {
            let frame = render.frame(d)?;
            counters.events_delivered.fetch_add(1, Ordering::Relaxed);
            return Some(Frame::Own(frame));
        }
        counters.events_delivered.fetch_add(1, Ordering::Relaxed);
        if self.topics.len() == 1 {
            Some(Frame::Shared)
        } else {
            Some(Frame::WithCursor { fields: d.frame.fields_without_id(), id: sse::id_and_end(&self.cursor()) })
        }
    }

    /// Whether the stream has its own way of telling a client that events were lost (Mercure
    /// answers in a response header instead of `gateway.lost`).
    pub(crate) fn renders(&self) -> bool {
        self.render.is_some()
    }

    /// Moves the topic's position back to `to` (see `Queued::Rewind`).
    pub(crate) fn rewind(&mut self, topic: &Topic, to: StreamId) {
        if let Some(t) = self.topics.iter_mut().find(|t| t.topic == *topic) {
            t.position = t.position.min(to);
        }
    }

    /// Pulls the position of the `i`-th topic back to `tail` if it is beyond it.
    pub(crate) fn clamp(&mut self, i: usize, tail: StreamId) {
        let state = &mut self.topics[i];
        state.position = state.position.min(tail);
    }

    pub(crate) fn topic(&self, i: usize) -> &Topic {
        &self.topics[i].topic
    }

    pub(crate) fn position(&self, i: usize) -> StreamId {
        self.topics[i].position
    }

    /// The `Last-Event-ID` the client holds now.
    pub(crate) fn cursor(&self) -> String {
        match self.topics.as_slice() {
            [one] => cursor::encode_single(one.position),
            many => cursor::encode(many.iter().map(|t| (t.key, t.position))),
        }
    }
}
