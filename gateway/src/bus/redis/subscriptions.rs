//! The subscriber side of the Redis bus: the pub/sub connections a node listens on, and on which
//! server each followed topic's channels are subscribed.
//!
//! Per followed topic a node subscribes to the keyspace channel of the topic's stream
//! (`__keyspace@{db}__:{prefix}:stream:{T}`: how raw `XADD`s are noticed) and to its live channel
//! `{prefix}:live:{T}`, both as a classic channel (`PUBLISH`) and as a sharded one (`SPUBLISH`), so
//! a publisher's code is the same whatever the Redis shape.
//!
//! - Standalone and Sentinel: one subscriber connection holds every subscription.
//! - Cluster: keyspace notifications are local to the shard that holds the key, and sharded
//!   channels live on their shard, so the node keeps one subscriber connection per master and
//!   subscribes each topic on the master that owns its hash slot. The topology is checked every
//!   few seconds and whenever the command connection sees it change; topics whose slot moved
//!   (resharding, a failover) are subscribed on their new owner and read from their last ids.
//!
//! Every subscriber connection turns keyspace notifications on, on its own server, before it
//! subscribes, and again after each reconnect: a server that restarted or was promoted has its
//! default configuration.
//!
//! What comes in on any of these connections is forwarded, in order per connection, as a [`Push`]
//! to the one channel `upstream.rs` reads.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fred::clients::{Client, SubscriberClient};
use fred::interfaces::{ClientLike, ClusterInterface, EventInterface, PubsubInterface};
use fred::types::config::{Config as FredConfig, Server, ServerConfig};
use fred::types::{KeyspaceEvent, Message};
use shared::Topic;
use shared::keys::KeyLayout;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::upstream::unavailable;
use crate::bus::BusError;
use crate::shutdown::Shutdown;

/// How often a cluster node re-reads the slot map (`CLUSTER SLOTS`) to notice moved slots that no
/// command of its own ran into.
const TOPOLOGY_CHECK: Duration = Duration::from_secs(2);
/// Channels per `SUBSCRIBE`.
const SUBSCRIBE_CHUNK: usize = 1024;

/// What the subscriber connections report to the upstream.
#[derive(Debug)]
pub enum Push {
    Keyspace(KeyspaceEvent),
    Live(Message),
    /// Keyspace notifications were dropped on the way: every followed stream must be read.
    Missed,
    /// A subscriber connection came back and is re-armed: every followed stream must be read.
    Reconnected,
    /// These topics are now subscribed on another shard: read them from their last ids.
    Moved(Vec<Topic>),
}

/// The channel names of topics.
#[derive(Debug, Clone)]
struct Channels {
    keys: KeyLayout,
    db: u8,
}

impl Channels {
    /// Classic channels: the stream's keyspace channel and the live channel.
    fn classic(&self, topics: &[Topic]) -> Vec<String> {
        topics.iter().flat_map(|t| [format!("__keyspace@{}__:{}", self.db, self.keys.stream(t)), self.keys.live(t)]).collect()
    }

    /// Sharded channels: the live channel.
    fn sharded(&self, topics: &[Topic]) -> Vec<String> {
        topics.iter().map(|t| self.keys.live(t)).collect()
    }
}

#[derive(Debug)]
pub struct Subscriptions {
    shape: Shape,
    channels: Channels,
}

#[derive(Debug)]
enum Shape {
    Single(SubscriberClient),
    Cluster(Box<Shards>),
}

/// One subscriber connection per cluster master, and which master each topic is subscribed on.
#[derive(Debug)]
struct Shards {
    /// The node's command connection: its slot map says who owns what.
    client: Client,
    /// The URL's configuration (credentials, timeouts), pointed at one master per connection.
    base: FredConfig,
    state: tokio::sync::Mutex<ShardState>,
    /// The subscriber connections, for readiness (read without waiting on `state`).
    live: Mutex<Vec<SubscriberClient>>,
    pushes: mpsc::Sender<Push>,
    shutdown: Shutdown,
}

#[derive(Debug, Default)]
struct ShardState {
    nodes: HashMap<Server, Node>,
    owners: HashMap<Topic, Server>,
}

#[derive(Debug)]
struct Node {
    subscriber: SubscriberClient,
    /// Stops this connection's pump and heartbeat when the master leaves the cluster.
    stop: CancellationToken,
}

impl Subscriptions {
    /// Opens the subscriber connection(s) for the shape of `config` and starts forwarding what
    /// they receive to `pushes`. With a cluster, `client` must already be connected (its slot
    /// map is read here).
    pub async fn connect(
        config: &FredConfig,
        client: &Client,
        keys: KeyLayout,
        db: u8,
        pushes: mpsc::Sender<Push>,
        shutdown: &Shutdown,
    ) -> Result<Arc<Self>, BusError> {
        let channels = Channels { keys, db };
        let shape = if client.is_clustered() {
            let shards = Shards {
                client: client.clone(),
                base: config.clone(),
                state: tokio::sync::Mutex::default(),
                live: Mutex::default(),
                pushes,
                shutdown: shutdown.clone(),
            };
            // Every master now, so that a refused CONFIG SET fails the start, not a later follow.
            let masters = client.cached_cluster_state().map(|r| r.unique_primary_nodes()).unwrap_or_default();
            {
                let mut state = shards.state.lock().await;
                for server in masters {
                    shards.node(&mut state, &server).await?;
                }
            }
            Shape::Cluster(Box::new(shards))
        } else {
            let subscriber = super::builder(config.clone()).build_subscriber_client().map_err(unavailable)?;
            subscriber.init().await.map_err(unavailable)?;
            super::enable_keyspace_notifications(&subscriber).await?;
            spawn_connection_tasks(&subscriber, false, pushes, shutdown, shutdown.token());
            Shape::Single(subscriber)
        };
        let this = Arc::new(Self { shape, channels });
        if let Shape::Cluster(_) = this.shape {
            shutdown.tracker().spawn(Arc::clone(&this).watch_topology(shutdown.token()));
        }
        Ok(this)
    }

    /// Subscribes `topics` (on their owners, with a cluster).
    pub async fn subscribe(&self, topics: &[Topic]) -> Result<(), BusError> {
        match &self.shape {
            Shape::Single(s) => subscribe_on(s, &self.channels, topics, false).await.map_err(unavailable),
            Shape::Cluster(shards) => shards.subscribe(&self.channels, topics).await,
        }
    }

    pub async fn unsubscribe(&self, topics: &[Topic]) -> Result<(), BusError> {
        match &self.shape {
            Shape::Single(s) => unsubscribe_on(s, &self.channels, topics, false).await.map_err(unavailable),
            Shape::Cluster(shards) => shards.unsubscribe(&self.channels, topics).await,
        }
    }

    /// Whether every subscriber connection is up.
    pub fn is_connected(&self) -> bool {
        match &self.shape {
            Shape::Single(s) => s.is_connected(),
            Shape::Cluster(shards) => shards.live.lock().unwrap_or_else(|e| e.into_inner()).iter().all(|s| s.is_connected()),
        }
    }

    /// Drops and reopens every subscriber connection (a Sentinel announced a new master); each
    /// then re-arms and the upstream reads every followed stream.
    pub async fn reconnect(&self) {
        for s in self.connections() {
            if let Err(e) = s.force_reconnection().await {
                tracing::warn!(error = %e, "reconnecting a subscriber connection failed; it will retry");
            }
        }
    }

    pub async fn quit(&self) {
        for s in self.connections() {
            let _ = s.quit().await;
        }
    }

    fn connections(&self) -> Vec<SubscriberClient> {
        match &self.shape {
            Shape::Single(s) => vec![s.clone()],
            Shape::Cluster(shards) => shards.live.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    }

    /// Cluster only: follows slot moves, on every change the command connection notices and on a
    /// timer for those it does not (a raw `XADD` to a moved slot never passes through this node).
    async fn watch_topology(self: Arc<Self>, stop: CancellationToken) {
        let Shape::Cluster(shards) = &self.shape else { return };
        let mut changes = shards.client.cluster_change_rx();
        let mut check = tokio::time::interval(TOPOLOGY_CHECK);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = changes.recv() => {}
                _ = check.tick() => {
                    if let Err(e) = shards.client.sync_cluster().await {
                        tracing::warn!(error = %e, "cannot read the cluster's slot map; retrying");
                        continue;
                    }
                }
            }
            shards.reroute(&self.channels).await;
        }
    }
}

impl Shards {
    /// The subscriber connection to `server`, opened (and armed) if there is none yet.
    async fn node(&self, state: &mut ShardState, server: &Server) -> Result<SubscriberClient, BusError> {
        if let Some(node) = state.nodes.get(server) {
            return Ok(node.subscriber.clone());
        }
        let mut config = self.base.clone();
        config.server = ServerConfig::Centralized { server: server.clone() };
        let subscriber = super::builder(config).build_subscriber_client().map_err(unavailable)?;
        subscriber.init().await.map_err(unavailable)?;
        if let Err(e) = super::enable_keyspace_notifications(&subscriber).await {
            let _ = subscriber.quit().await;
            return Err(e);
        }
        let stop = self.shutdown.token().child_token();
        spawn_connection_tasks(&subscriber, true, self.pushes.clone(), &self.shutdown, stop.clone());
        tracing::info!(server = %server, "subscribed to a cluster master");
        state.nodes.insert(server.clone(), Node { subscriber: subscriber.clone(), stop });
        self.refresh_live(state);
        Ok(subscriber)
    }

    fn refresh_live(&self, state: &ShardState) {
        *self.live.lock().unwrap_or_else(|e| e.into_inner()) = state.nodes.values().map(|n| n.subscriber.clone()).collect();
    }

    /// Groups topics by the master that owns their slot now.
    fn by_owner(&self, topics: &[Topic], channels: &Channels) -> Result<HashMap<Server, Vec<Topic>>, BusError> {
        let routing =
            self.client.cached_cluster_state().ok_or_else(|| BusError::Unavailable("the cluster's slot map is unknown".into()))?;
        let mut groups: HashMap<Server, Vec<Topic>> = HashMap::new();
        for t in topics {
            let slot = fred::util::redis_keyslot(channels.keys.stream(t).as_bytes());
            let owner = routing.get_server(slot).ok_or_else(|| BusError::Unavailable(format!("no master serves slot {slot}").into()))?;
            groups.entry(owner.clone()).or_default().push(t.clone());
        }
        Ok(groups)
    }

    async fn subscribe(&self, channels: &Channels, topics: &[Topic]) -> Result<(), BusError> {
        let groups = self.by_owner(topics, channels)?;
        let mut state = self.state.lock().await;
        for (server, group) in groups {
            let subscriber = self.node(&mut state, &server).await?;
            subscribe_on(&subscriber, channels, &group, true).await.map_err(unavailable)?;
            state.owners.extend(group.into_iter().map(|t| (t, server.clone())));
        }
        Ok(())
    }

    async fn unsubscribe(&self, channels: &Channels, topics: &[Topic]) -> Result<(), BusError> {
        let mut state = self.state.lock().await;
        let mut groups: HashMap<Server, Vec<Topic>> = HashMap::new();
        for t in topics {
            if let Some(server) = state.owners.remove(t) {
                groups.entry(server).or_default().push(t.clone());
            }
        }
        for (server, group) in groups {
            if let Some(node) = state.nodes.get(&server) {
                unsubscribe_on(&node.subscriber, channels, &group, true).await.map_err(unavailable)?;
            }
        }
        Ok(())
    }

    /// Moves every topic whose slot changed owner to its new owner, closes the connections to
    /// servers that are no longer masters, and tells the upstream to read the moved topics.
    async fn reroute(&self, channels: &Channels) {
        let Some(routing) = self.client.cached_cluster_state() else { return };
        let masters = routing.unique_primary_nodes();
        let mut state = self.state.lock().await;
        let topics: Vec<Topic> = state.owners.keys().cloned().collect();
        let Ok(now) = self.by_owner(&topics, channels) else { return };
        let mut moved = Vec::new();
        for (server, group) in now {
            let group: Vec<Topic> = group.into_iter().filter(|t| state.owners.get(t) != Some(&server)).collect();
            if group.is_empty() {
                continue;
            }
            // Off the old owners first, best effort: they may be gone, or be replicas now.
            let mut by_old: HashMap<&Server, Vec<Topic>> = HashMap::new();
            for t in &group {
                if let Some(old) = state.owners.get(t) {
                    by_old.entry(old).or_default().push(t.clone());
                }
            }
            for (old, topics) in by_old {
                if let Some(node) = state.nodes.get(old) {
                    let _ = unsubscribe_on(&node.subscriber, channels, &topics, true).await;
                }
            }
            let subscribed = match self.node(&mut state, &server).await {
                Ok(subscriber) => subscribe_on(&subscriber, channels, &group, true).await.map_err(unavailable),
                Err(e) => Err(e),
            };
            match subscribed {
                Ok(()) => {
                    tracing::info!(server = %server, topics = group.len(), "topics moved to another cluster master");
                    state.owners.extend(group.iter().map(|t| (t.clone(), server.clone())));
                    moved.extend(group);
                }
                // The owners map still names the old server, so the next check tries again.
                Err(e) => tracing::warn!(server = %server, error = %e, "cannot subscribe on a cluster master; retrying"),
            }
        }
        let gone: Vec<Server> = state.nodes.keys().filter(|s| !masters.contains(s)).cloned().collect();
        for server in gone {
            if state.owners.values().any(|s| *s == server) {
                continue;
            }
            if let Some(node) = state.nodes.remove(&server) {
                tracing::info!(server = %server, "closing the subscriber connection to a server that is no longer a master");
                node.stop.cancel();
                self.shutdown.tracker().spawn(async move {
                    let _ = node.subscriber.quit().await;
                });
            }
        }
        self.refresh_live(&state);
        drop(state);
        if !moved.is_empty() {
            let _ = self.pushes.send(Push::Moved(moved)).await;
        }
    }
}

/// Sharded channels must share a slot per command in a cluster; elsewhere they go in chunks.
fn sharded_groups(channels: Vec<String>, by_slot: bool) -> Vec<Vec<String>> {
    if by_slot {
        let mut groups: HashMap<u16, Vec<String>> = HashMap::new();
        for c in channels {
            groups.entry(fred::util::redis_keyslot(c.as_bytes())).or_default().push(c);
        }
        groups.into_values().collect()
    } else {
        channels.chunks(SUBSCRIBE_CHUNK).map(<[String]>::to_vec).collect()
    }
}

/// Concurrent commands share the connection, so these go out pipelined.
async fn subscribe_on(s: &SubscriberClient, channels: &Channels, topics: &[Topic], by_slot: bool) -> Result<(), fred::error::Error> {
    subscribe_channels(s, channels.classic(topics), channels.sharded(topics), by_slot).await
}

async fn subscribe_channels(
    s: &SubscriberClient,
    classic: Vec<String>,
    sharded: Vec<String>,
    by_slot: bool,
) -> Result<(), fred::error::Error> {
    let classic = futures::future::try_join_all(classic.chunks(SUBSCRIBE_CHUNK).map(|c| s.subscribe(c.to_vec())));
    let sharded = futures::future::try_join_all(sharded_groups(sharded, by_slot).into_iter().map(|g| s.ssubscribe(g)));
    futures::try_join!(classic, sharded).map(|_| ())
}

async fn unsubscribe_on(s: &SubscriberClient, channels: &Channels, topics: &[Topic], by_slot: bool) -> Result<(), fred::error::Error> {
    let classic = channels.classic(topics);
    let classic = futures::future::try_join_all(classic.chunks(SUBSCRIBE_CHUNK).map(|c| s.unsubscribe(c.to_vec())));
    let sharded = futures::future::try_join_all(sharded_groups(channels.sharded(topics), by_slot).into_iter().map(|g| s.sunsubscribe(g)));
    futures::try_join!(classic, sharded).map(|_| ())
}

/// After a reconnect: notifications on (the server may be a fresh one), then every subscription
/// the connection had, before the upstream's catch-up read, or events added after that read would
/// go unnoticed. A fresh connection is not in subscribed mode yet, so `CONFIG` still works on it.
async fn rearm(s: &SubscriberClient, by_slot: bool) -> Result<(), BusError> {
    super::enable_keyspace_notifications(s).await?;
    let classic: Vec<String> = s.tracked_channels().into_iter().map(|c| c.to_string()).collect();
    let sharded: Vec<String> = s.tracked_shard_channels().into_iter().map(|c| c.to_string()).collect();
    subscribe_channels(s, classic, sharded, by_slot).await.map_err(unavailable)
}

/// The heartbeat of a subscriber connection and the pump that forwards what it receives.
fn spawn_connection_tasks(s: &SubscriberClient, by_slot: bool, pushes: mpsc::Sender<Push>, shutdown: &Shutdown, stop: CancellationToken) {
    super::spawn_heartbeat(shutdown, stop.clone(), s.clone());
    shutdown.tracker().spawn(pump(s.clone(), by_slot, pushes, stop));
}

async fn pump(s: SubscriberClient, by_slot: bool, pushes: mpsc::Sender<Push>, stop: CancellationToken) {
    let mut keyspace = s.keyspace_event_rx();
    let mut messages = s.message_rx();
    let mut reconnects = s.reconnect_rx();
    loop {
        let push = tokio::select! {
            _ = stop.cancelled() => return,
            e = keyspace.recv() => match e {
                Ok(e) => Push::Keyspace(e),
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "keyspace notifications were dropped; reading every followed stream");
                    Push::Missed
                }
                Err(RecvError::Closed) => return,
            },
            m = messages.recv() => match m {
                Ok(m) => Push::Live(m),
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "live-only messages were dropped (at-most-once)");
                    continue;
                }
                Err(RecvError::Closed) => return,
            },
            r = reconnects.recv() => {
                if let Err(RecvError::Closed) = r {
                    return;
                }
                tracing::info!(server = ?r.ok(), "Redis subscriber reconnected; re-arming and reading every followed stream from its last id");
                // Until it is re-armed the node is deaf to these topics: keep trying while the
                // connection is up (if it drops again, its next reconnect lands here anew).
                while let Err(e) = rearm(&s, by_slot).await {
                    tracing::warn!(error = %e, "re-arming after a reconnect failed; retrying");
                    if !s.is_connected() {
                        break;
                    }
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                }
                Push::Reconnected
            }
        };
        if pushes.send(push).await.is_err() {
            return;
        }
    }
}
