//! What the subscriber links tell the upstream: one channel, in order per link.

use fred::types::{KeyspaceEvent, Message};
use shared::Topic;

/// What the subscriber links report to the upstream.
#[derive(Debug)]
pub(super) enum Push {
    Keyspace(KeyspaceEvent),
    Live(Message),
    /// Keyspace notifications were dropped on the way: every followed stream must be read.
    Missed,
    /// A subscriber link came back and is re-armed: every followed stream must be read.
    Reconnected,
    /// These topics are now subscribed on another shard: read them from their last ids.
    Moved(Vec<Topic>),
}
