//! The [`Bus`] trait every backing store implements (the embedded bus, Redis), and its answer to a
//! read.

use std::sync::Arc;

use async_trait::async_trait;
use shared::{StreamId, Topic};

use super::error::BusError;
use super::event::{Delivery, NewEvent};
use super::tickets::TicketStore;

/// The answer to [`Bus::read`].
#[derive(Debug, Default)]
pub struct Replay {
    /// Events after the asked position, oldest first, at most the asked limit.
    pub events: Vec<Arc<Delivery>>,
    /// Events after the asked position are no longer in history (trimmed, expired, or held by a
    /// process that has since restarted): the client must be told.
    pub lost: bool,
    /// A position such that every future event of the topic has a greater id. A stream with
    /// no cursor starts here, and a cursor beyond it (from another deployment, or a clock that
    /// went back) is pulled back to it so that no future event is skipped.
    pub tail: StreamId,
}

/// Tickets (`tickets.rs`) are kept through the same seam, in a trait of their own.
#[async_trait]
pub trait Bus: TicketStore + Send + Sync + std::fmt::Debug + 'static {
    /// Appends events to their topics' histories and delivers them to their followers, in order.
    /// Returns the assigned ids in input order. Each topic's part of a batch is appended as a
    /// whole or not at all (with Redis Cluster, different topics live on different shards).
    async fn publish(&self, events: Vec<NewEvent>) -> Result<Vec<StreamId>, BusError>;

    /// Reads up to `limit` events of `topic` after `after` (none when `after` is `None`; then only
    /// the tail is wanted).
    async fn read(&self, topic: &Topic, after: Option<StreamId>, limit: usize) -> Result<Replay, BusError>;

    /// Makes sure this node receives the live events of `topics` before it returns: a stream
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
