//! A Cluster's subscriber links: one per master, and which master each followed topic is
//! subscribed on. Keyspace notifications are local to the shard that holds the key, and sharded
//! channels live on their shard, so each topic is subscribed on the master that owns its hash slot.
//! The topology is checked every few seconds and whenever the command link sees it change; topics
//! whose slot moved (resharding, a failover) are subscribed on their new owner and read from their
//! last ids.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fred::clients::{Client, SubscriberClient};
use fred::interfaces::{ClientLike, ClusterInterface, EventInterface};
use fred::types::config::{Config as FredConfig, Server, ServerConfig};
use shared::Topic;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::channels::{Channels, Grouping};
use super::link::{self, from_fred};
use super::pump::spawn_link_tasks;
use super::push::Push;
use crate::bus::BusError;
use crate::shutdown::Shutdown;

/// How often a cluster node re-reads the slot map (`CLUSTER SLOTS`) to notice moved slots that no
/// command of its own ran into.
const TOPOLOGY_CHECK: Duration = Duration::from_secs(2);

/// One subscriber link per cluster master, and which master each topic is subscribed on.
#[derive(Debug)]
pub(super) struct Shards {
    /// The node's command link: its slot map says who owns what.
    client: Client,
    /// The URL's configuration (credentials, timeouts), pointed at one master per link.
    base: FredConfig,
    channels: Channels,
    state: tokio::sync::Mutex<ShardState>,
    /// The subscriber links, for readiness (read without waiting on `state`).
    live: Mutex<Vec<SubscriberClient>>,
    pushes: mpsc::Sender<Push>,
    shutdown: Shutdown,
}

#[derive(Debug, Default)]
struct ShardState {
    masters: HashMap<Server, Master>,
    owners: HashMap<Topic, Server>,
}

/// The subscriber link to one master.
#[derive(Debug)]
struct Master {
    subscriber: SubscriberClient,
    /// Stops this link's pump and heartbeat when the master leaves the cluster.
    stop: CancellationToken,
}

impl Shards {
    /// Opens a subscriber link to every master now, so that a refused `CONFIG SET` fails the start,
    /// not a later follow. `client` must be connected (its slot map is read here).
    pub(super) async fn connect(
        client: &Client,
        config: &FredConfig,
        channels: Channels,
        pushes: mpsc::Sender<Push>,
        shutdown: &Shutdown,
    ) -> Result<Self, BusError> {
        let shards = Self {
            client: client.clone(),
            base: config.clone(),
            channels,
            state: tokio::sync::Mutex::default(),
            live: Mutex::default(),
            pushes,
            shutdown: shutdown.clone(),
        };
        let masters = client.cached_cluster_state().map(|r| r.unique_primary_nodes()).unwrap_or_default();
        {
            let mut state = shards.state.lock().await;
            for server in masters {
                shards.master(&mut state, &server).await?;
            }
        }
        Ok(shards)
    }

    /// The subscriber links, for readiness and reconnects.
    pub(super) fn links(&self) -> Vec<SubscriberClient> {
        self.live.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Follows slot moves, on every change the command link notices and on a timer for those it
    /// does not (a raw `XADD` to a moved slot never passes through this node).
    pub(super) async fn watch_topology(self: Arc<Self>, stop: CancellationToken) {
        let mut changes = self.client.cluster_change_rx();
        let mut check = tokio::time::interval(TOPOLOGY_CHECK);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = changes.recv() => {}
                _ = check.tick() => {
                    if let Err(e) = self.client.sync_cluster().await {
                        tracing::warn!(error = %e, "cannot read the cluster's slot map; retrying");
                        continue;
                    }
                }
            }
            self.reroute().await;
        }
    }

    /// The subscriber link to `server`, opened (and armed) if there is none yet.
    async fn master(&self, state: &mut ShardState, server: &Server) -> Result<SubscriberClient, BusError> {
        if let Some(master) = state.masters.get(server) {
            return Ok(master.subscriber.clone());
        }
        let mut config = self.base.clone();
        config.server = ServerConfig::Centralized { server: server.clone() };
        let subscriber = link::builder(config).build_subscriber_client().map_err(from_fred)?;
        subscriber.init().await.map_err(from_fred)?;
        if let Err(e) = link::enable_keyspace_notifications(&subscriber).await {
            let _ = subscriber.quit().await;
            return Err(e);
        }
        let stop = self.shutdown.token().child_token();
        spawn_link_tasks(&subscriber, Grouping::BySlot, self.pushes.clone(), &self.shutdown, stop.clone());
        tracing::info!(server = %server, "subscribed to a cluster master");
        state.masters.insert(server.clone(), Master { subscriber: subscriber.clone(), stop });
        self.refresh_live(state);
        Ok(subscriber)
    }

    fn refresh_live(&self, state: &ShardState) {
        *self.live.lock().unwrap_or_else(|e| e.into_inner()) = state.masters.values().map(|m| m.subscriber.clone()).collect();
    }

    /// Groups topics by the master that owns their slot now.
    fn by_owner(&self, topics: &[Topic]) -> Result<HashMap<Server, Vec<Topic>>, BusError> {
        let routing =
            self.client.cached_cluster_state().ok_or_else(|| BusError::Unavailable("the cluster's slot map is unknown".into()))?;
        let mut groups: HashMap<Server, Vec<Topic>> = HashMap::new();
        for t in topics {
            let slot = fred::util::redis_keyslot(self.channels.keys.stream(t).as_bytes());
            let owner = routing.get_server(slot).ok_or_else(|| BusError::Unavailable(format!("no master serves slot {slot}").into()))?;
            groups.entry(owner.clone()).or_default().push(t.clone());
        }
        Ok(groups)
    }

    pub(super) async fn subscribe(&self, topics: &[Topic]) -> Result<(), BusError> {
        let groups = self.by_owner(topics)?;
        let mut state = self.state.lock().await;
        for (server, group) in groups {
            let subscriber = self.master(&mut state, &server).await?;
            self.channels.subscribe(&subscriber, &group, Grouping::BySlot).await.map_err(from_fred)?;
            state.owners.extend(group.into_iter().map(|t| (t, server.clone())));
        }
        Ok(())
    }

    pub(super) async fn unsubscribe(&self, topics: &[Topic]) -> Result<(), BusError> {
        let mut state = self.state.lock().await;
        let mut groups: HashMap<Server, Vec<Topic>> = HashMap::new();
        for t in topics {
            if let Some(server) = state.owners.remove(t) {
                groups.entry(server).or_default().push(t.clone());
            }
        }
        for (server, group) in groups {
            if let Some(master) = state.masters.get(&server) {
                self.channels.unsubscribe(&master.subscriber, &group, Grouping::BySlot).await.map_err(from_fred)?;
            }
        }
        Ok(())
    }

    /// Moves every topic whose slot changed owner to its new owner, closes the links to
    /// servers that are no longer masters, and tells the upstream to read the moved topics.
    async fn reroute(&self) {
        let Some(routing) = self.client.cached_cluster_state() else { return };
        let masters = routing.unique_primary_nodes();
        let mut state = self.state.lock().await;
        let topics: Vec<Topic> = state.owners.keys().cloned().collect();
        let Ok(now) = self.by_owner(&topics) else { return };
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
                if let Some(master) = state.masters.get(old) {
                    let _ = self.channels.unsubscribe(&master.subscriber, &topics, Grouping::BySlot).await;
                }
            }
            let subscribed = match self.master(&mut state, &server).await {
                Ok(subscriber) => self.channels.subscribe(&subscriber, &group, Grouping::BySlot).await.map_err(from_fred),
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
        let gone: Vec<Server> = state.masters.keys().filter(|s| !masters.contains(s)).cloned().collect();
        for server in gone {
            if state.owners.values().any(|s| *s == server) {
                continue;
            }
            if let Some(master) = state.masters.remove(&server) {
                tracing::info!(server = %server, "closing the subscriber connection to a server that is no longer a master");
                master.stop.cancel();
                self.shutdown.tracker().spawn(async move {
                    let _ = master.subscriber.quit().await;
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
