//! Gateway nodes on a test Redis, and plain Redis clients beside them.

use std::time::Duration;

use crate::app::{TestApp, spawn_with};

use super::standalone::TestRedis;

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
