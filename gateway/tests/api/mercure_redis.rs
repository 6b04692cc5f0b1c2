//! The Mercure hub on Redis: three nodes share one Redis, and a subscriber on one node receives
//! what a publisher posts on another, in order, each update once, and resumes on a third from a
//! publisher id or a generated id.

use gateway::config::Protocol;
use shared::Topic;

use support::app::*;
use support::mercure::*;
use support::redis::*;

async fn nodes(redis: &TestRedis, protocol: Protocol) -> Vec<TestApp> {
    let prefix = unique_prefix();
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(spawn_node_with(redis, &prefix, |c| c.mercure = Some(hub_config(protocol, true))).await);
    }
    nodes
}

#[tokio::test]
async fn updates_cross_nodes_once_in_order_and_resume_on_any_node() {
    let redis = TestRedis::start().await;
    let [a, b, c]: [TestApp; 3] = nodes(&redis, Protocol::Legacy).await.try_into().expect("three nodes");
    let token = legacy_token(&["*"], &[]);
    let mut sub = subscribe_hub(a.client.get(hub_url(&a.base, &[("topic", "books/{id}")]))).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let node = if i % 2 == 0 { &b } else { &c };
        let mut pairs = vec![("topic", "books/1"), ("data", "")];
        let data = format!("update {i}");
        pairs[1].1 = &data;
        let id = format!("/books/1/v{i}");
        if i % 3 == 0 {
            pairs.push(("id", &id));
        }
        ids.push(publish_update(node, &node.base, &token, &pairs).await);
    }
    let got = sub.events(20).await;
    assert_eq!(got.iter().map(|e| e.last_event_id.as_str()).collect::<Vec<_>>(), ids, "every update once, in publish order");
    sub.expect_no_event(std::time::Duration::from_millis(300)).await;
    for (from, node) in [(5, &c), (9, &b)] {
        // Ids 9 is a publisher id, 5 a generated one: both resolve on a node that never saw them.
        let mut resumed = subscribe_hub(node.client.get(hub_url(&node.base, &[("topic", "*")])).header("Last-Event-ID", &ids[from])).await;
        assert_eq!(resumed.headers["last-event-id"], ids[from].as_str());
        let replay = resumed.events(20 - from - 1).await;
        assert_eq!(replay.iter().map(|e| e.last_event_id.as_str()).collect::<Vec<_>>(), ids[from + 1..]);
    }
}

#[tokio::test]
async fn a_1_0_subscriber_on_one_node_receives_a_publish_on_another_and_the_alias_keys_expire() {
    let redis = TestRedis::start().await;
    let prefix = unique_prefix();
    let spawn = || spawn_node_with(&redis, &prefix, |c| c.mercure = Some(hub_config(Protocol::V1, true)));
    let (a, b) = (spawn().await, spawn().await);
    let mut sub = subscribe_hub(a.client.get(hub_url(&a.base, &[("match_urlpattern", "https://example.net/foo/:id")]))).await;
    let id = publish_update(
        &b,
        &b.base,
        &access_token(&["*"], &[]),
        &[("topic", "https://example.net/foo/1"), ("id", "urn:x:1"), ("data", "d")],
    )
    .await;
    assert_eq!(sub.next_event().await.last_event_id, id);
    let key = shared::keys::KeyLayout::new(&prefix).alias(&Topic::mercure(), &id);
    let ttl = redis_cli(redis.port(), &["PTTL", &key]).await;
    let ttl: i64 = ttl[0].parse().expect("a number");
    assert!(ttl > 0, "the alias key expires with history: {ttl}");
}
