//! What crosses process boundaries in the SSE gateway: the event model, the `text/event-stream`
//! encoder and a spec-conforming parser, JWT claim types with topic-pattern matching, the
//! resumption cursor and the publish body; and how a tool picks loopback ports for the servers it starts. The gateway, the load tester and the tests all depend on this crate so that
//! they cannot disagree about the wire format.

// Every public item is documented: this is the one crate with a deliberate API, read by the
// gateway, the load tester, the tests and publishers' own tools.
#![warn(missing_docs)]

pub mod claims;
pub mod cursor;
pub mod event;
pub mod keys;
pub mod ports;
#[cfg(any(test, feature = "fuzzing"))]
pub mod properties;
pub mod publish;
pub mod sse;

pub use claims::{Claims, TopicPattern};
pub use cursor::{Cursor, CursorError};
pub use event::{Event, EventName, StreamId, Topic, ValidationError};
