//! The lean path for held streams: how a `GET /events` (or a Mercure subscription) over HTTP/1.x
//! is served without hyper's per-connection buffers, its own timers or its own queue.
//!
//! The flow, one file each:
//! 1. `accept.rs`: every socket starts here. It reads the first request head itself
//!    (`head.rs`); a stream request is routed through the same axum router as everything else
//!    (auth, limits, CORS, traces), and anything else is handed to hyper with the bytes read so far.
//! 2. The stream's `200` head is written, then the stream's first frames (its `retry:`, any
//!    replayed history) by the same task, through the ordinary `EventStream`.
//! 3. Once caught up, the stream is taken apart into a `stream::Held`: the fan-out writes each
//!    event to its socket directly (`stream.rs`), or, when events come close together, leaves it
//!    for a node-wide flusher that writes them together (`flusher.rs`); a backlog exists only
//!    while the socket is full or a flush is due; heartbeats and token deadlines come from one
//!    node-wide `schedule.rs`; and one small task per stream (`writer.rs`) sleeps until the
//!    client leaves or a full socket needs its backlog written.
//!
//! A stream served by hyper (HTTP/2, or a keep-alive connection whose first request was not a
//! stream) keeps the `EventStream` for its whole life; both give the same frames in the same order.

pub(crate) mod accept;
mod due;
mod flusher;
pub(crate) mod head;
mod node;
mod schedule;
mod stream;
mod writer;

/// The node of this gateway's held streams (`node.rs`).
pub(crate) type Node = node::Node<stream::Held>;
