//! The event bus seam: where events are stored (history, ids) and where live events come from.
//!
//! Data flow: a publisher hands [`NewEvent`]s to [`Bus::publish`]; the bus assigns each a
//! [`StreamId`](shared::StreamId), keeps it in the topic's history and hands it, encoded once, to this node's
//! [`fanout::Fanout`], which pushes it to every local stream following the topic. A
//! stream that resumes reads the history after its position with [`Bus::read`].
//!
//! With traces on, each event carries the [`TraceContext`](crate::telemetry::TraceContext) of the span that published it, so that
//! the node fan-outs that deliver it (one `deliver` span per event per node) join its trace.
//!
//! The embedded [`memory::MemoryBus`] is the single-node implementation; a Redis implementation
//! plugs in behind the same trait (the fanout tells it which topics this node follows).

mod error;
mod event;
pub(crate) mod fanout;
pub(crate) mod memory;
pub(crate) mod redis;
mod seam;
mod shrink;
pub(crate) mod tickets;

pub(crate) use error::BusError;
pub(crate) use event::{Delivery, NewEvent};
pub(crate) use seam::{Bus, Replay};
pub(crate) use shrink::shrink_idle;
