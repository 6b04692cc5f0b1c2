//! The subscriber side of the Redis bus: the pub/sub links a node listens on, for each Redis shape.
//!
//! - Standalone and Sentinel: one subscriber link holds every followed topic's channels (see
//!   `channels.rs`).
//! - Cluster: keyspace notifications are local to the shard that holds the key, and sharded
//!   channels live on their shard, so the node keeps one subscriber link per master (`shards.rs`).
//!
//! What comes in on any of these links is forwarded, in order per link, as a [`Push`] to the one
//! channel the upstream reads (`pump.rs`).
//!
//! [`Push`]: super::push::Push

use std::sync::Arc;

use fred::clients::{Client, SubscriberClient};
use fred::interfaces::ClientLike;
use fred::types::config::Config as FredConfig;
use shared::Topic;
use shared::keys::KeyLayout;
use tokio::sync::mpsc;

use super::channels::{Channels, Grouping};
use super::link::{self, from_fred};
use super::pump::spawn_link_tasks;
use super::push::Push;
use super::shards::Shards;
use crate::bus::BusError;
use crate::shutdown::Shutdown;

/// The node's subscriber links.
#[derive(Debug)]
pub(super) struct SubscriberLinks {
    shape: Shape,
    channels: Channels,
}

#[derive(Debug)]
enum Shape {
    Single(SubscriberClient),
    Cluster(Arc<Shards>),
}

impl SubscriberLinks {
    /// Opens the subscriber link(s) for the shape of `config` and starts forwarding what they
    /// receive to `pushes`. With a cluster, `client` must already be connected (its slot map is
    /// read here).
    pub(super) async fn connect(
        config: &FredConfig,
        client: &Client,
        keys: KeyLayout,
        db: u8,
        pushes: mpsc::Sender<Push>,
        shutdown: &Shutdown,
    ) -> Result<Arc<Self>, BusError> {
        let channels = Channels { keys, db };
        let shape = if client.is_clustered() {
            let shards = Arc::new(Shards::connect(client, config, channels.clone(), pushes, shutdown).await?);
            shutdown.tracker().spawn(Arc::clone(&shards).watch_topology(shutdown.token()));
            Shape::Cluster(shards)
        } else {
            let subscriber = link::builder(config.clone()).build_subscriber_client().map_err(from_fred)?;
            subscriber.init().await.map_err(from_fred)?;
            link::enable_keyspace_notifications(&subscriber).await?;
            spawn_link_tasks(&subscriber, Grouping::Chunks, pushes, shutdown, shutdown.token());
            Shape::Single(subscriber)
        };
        Ok(Arc::new(Self { shape, channels }))
    }

    /// Subscribes `topics` (on their owners, with a cluster).
    pub(super) async fn subscribe(&self, topics: &[Topic]) -> Result<(), BusError> {
        match &self.shape {
            Shape::Single(s) => self.channels.subscribe(s, topics, Grouping::Chunks).await.map_err(from_fred),
            Shape::Cluster(shards) => shards.subscribe(topics).await,
        }
    }

    pub(super) async fn unsubscribe(&self, topics: &[Topic]) -> Result<(), BusError> {
        match &self.shape {
            Shape::Single(s) => self.channels.unsubscribe(s, topics, Grouping::Chunks).await.map_err(from_fred),
            Shape::Cluster(shards) => shards.unsubscribe(topics).await,
        }
    }

    /// Whether every subscriber link is up.
    pub(super) fn is_connected(&self) -> bool {
        self.links().iter().all(|s| s.is_connected())
    }

    /// Drops and reopens every subscriber link (a Sentinel announced a new master); each then
    /// re-arms and the upstream reads every followed stream.
    pub(super) async fn reconnect(&self) {
        for s in self.links() {
            if let Err(e) = s.force_reconnection().await {
                tracing::warn!(error = %e, "reconnecting a subscriber connection failed; it will retry");
            }
        }
    }

    pub(super) async fn quit(&self) {
        for s in self.links() {
            let _ = s.quit().await;
        }
    }

    fn links(&self) -> Vec<SubscriberClient> {
        match &self.shape {
            Shape::Single(s) => vec![s.clone()],
            Shape::Cluster(shards) => shards.links(),
        }
    }
}
