//! Gateway nodes on a test Redis (one, or three sharing one Redis of either shape), and plain
//! Redis clients beside them.

use std::time::Duration;

use shared::Topic;
use shared::keys::KeyLayout;

use crate::app::{SseClient, TestApp, spawn_with};

use super::shape::{Shape, Store};
use super::standalone::{TestRedis, unique_prefix};

/// A gateway node on `redis` with key prefix `prefix`.
pub async fn spawn_node(redis: &TestRedis, prefix: &str) -> TestApp {
    spawn_node_with(redis, prefix, |_| {}).await
}

pub async fn spawn_node_with(redis: &TestRedis, prefix: &str, configure: impl FnOnce(&mut gateway::Config)) -> TestApp {
    spawn_node_at(&redis.url, prefix, configure).await
}

/// A gateway node on the Redis at `url` (a plain or a sentinel URL).
pub async fn spawn_node_at(url: &str, prefix: &str, configure: impl FnOnce(&mut gateway::Config)) -> TestApp {
    let (url, prefix) = (url.to_owned(), prefix.to_owned());
    spawn_with(move |c| {
        c.redis_url = Some(gateway::config::RedisUrl::parse(&url).expect("redis url"));
        c.redis_prefix = prefix;
        // No safety net in tests: delivery must come from the notification and reconnect paths.
        c.redis_reconcile = Duration::from_secs(3600);
        configure(c);
    })
    .await
}

/// A plain Redis client, for publishing the way other services do.
pub async fn redis_client(redis: &TestRedis) -> fred::clients::Client {
    redis_client_at(&redis.url).await
}

pub async fn redis_client_at(url: &str) -> fred::clients::Client {
    use fred::interfaces::ClientLike;
    let client = fred::types::Builder::from_config(fred::types::config::Config::from_url(url).expect("url")).build().expect("client");
    client.init().await.expect("connect to redis");
    client
}

/// Three gateway nodes sharing one Redis (of either shape) under a key prefix of their own.
#[derive(Debug)]
pub struct Nodes {
    pub store: Store,
    pub prefix: String,
    pub nodes: Vec<TestApp>,
}

pub async fn three_nodes(shape: Shape) -> Nodes {
    three_nodes_with(shape, |_| {}).await
}

pub async fn three_nodes_with(shape: Shape, configure: impl Fn(&mut gateway::Config) + Copy) -> Nodes {
    let store = Store::start(shape).await;
    let prefix = unique_prefix();
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(spawn_node_at(store.url(), &prefix, configure).await);
    }
    Nodes { store, prefix, nodes }
}

/// The stream key of `topic` under `prefix`, as the gateway lays it out.
pub fn stream_key(prefix: &str, topic: &str) -> String {
    KeyLayout::new(prefix).stream(&Topic::parse(topic).expect("topic"))
}

impl Nodes {
    pub fn stream_key(&self, topic: &str) -> String {
        stream_key(&self.prefix, topic)
    }

    pub fn live_channel(&self, topic: &str) -> String {
        KeyLayout::new(&self.prefix).live(&Topic::parse(topic).expect("topic"))
    }

    /// A plain client of the same Redis, for publishing the way other services do.
    pub async fn redis(&self) -> fred::clients::Client {
        redis_client_at(self.store.url()).await
    }

    /// Two clients on each node, all following `topics`.
    pub async fn clients(&self, topics: &[&str]) -> Vec<SseClient> {
        let mut clients = Vec::new();
        for node in &self.nodes {
            for _ in 0..2 {
                clients.push(node.subscribe(topics, None).await);
            }
        }
        clients
    }
}
