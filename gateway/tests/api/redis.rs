//! Several gateway nodes sharing one real Redis behave as one: every publishing path reaches
//! every client on every node once and in order, and a client resumes on any node.

use std::time::Duration;

use fred::interfaces::{PubsubInterface, StreamsInterface};
use serde_json::Value;
use shared::StreamId;

use support::app::*;
use support::redis::*;

on_every_shape!(
    http_publishes_on_one_node_reach_every_client_on_every_node_once_in_order,
    a_plain_xadd_by_another_service_reaches_every_client,
    a_publish_on_the_live_channel_reaches_connected_clients_without_an_id,
    a_client_resumes_on_another_node_with_no_gap_and_no_duplicate,
    a_multi_topic_cursor_resumes_on_another_node,
    a_multi_topic_resume_replays_in_publish_order_on_another_node,
    trimmed_history_gives_the_lost_signal_on_any_node,
    fresh_subscribers_during_a_burst_see_a_gapless_suffix,
    a_batch_across_topics_answers_ids_in_input_order,
    a_follower_replacing_the_last_one_never_misses_events,
);

async fn http_publishes_on_one_node_reach_every_client_on_every_node_once_in_order(shape: Shape) {
    let deployment = three_nodes(shape).await;
    let mut clients = deployment.clients(&["orders"]).await;
    let mut ids = Vec::new();
    let expected: Vec<String> = (0..30).map(|i| format!("o{i}")).collect();
    for d in &expected {
        ids.push(deployment.nodes[0].publish("orders", d).await);
    }
    for c in clients.iter_mut() {
        let got = c.events(30).await;
        assert_eq!(data(&got), expected);
        assert_eq!(got.iter().map(|e| e.last_event_id.clone()).collect::<Vec<_>>(), ids, "ids are the Redis stream ids");
        c.expect_no_event(Duration::from_millis(300)).await;
    }
}

async fn a_plain_xadd_by_another_service_reaches_every_client(shape: Shape) {
    let deployment = three_nodes(shape).await;
    let mut clients = deployment.clients(&["orders"]).await;
    let redis = deployment.redis().await;
    let mut ids = Vec::new();
    for i in 0..10 {
        let fields = vec![("data", format!("x{i}\nline two")), ("event", "order.created".to_owned())];
        let id: String = redis.xadd(deployment.stream_key("orders"), false, None::<()>, "*", fields).await.expect("xadd");
        ids.push(id);
    }
    for c in clients.iter_mut() {
        let got = c.events(10).await;
        assert!(got.iter().all(|e| e.event == "order.created"));
        assert_eq!(data(&got), (0..10).map(|i| format!("x{i}\nline two")).collect::<Vec<_>>());
        assert_eq!(got.iter().map(|e| e.last_event_id.clone()).collect::<Vec<_>>(), ids);
        c.expect_no_event(Duration::from_millis(300)).await;
    }
}

async fn a_publish_on_the_live_channel_reaches_connected_clients_without_an_id(shape: Shape) {
    let deployment = three_nodes(shape).await;
    let mut clients = deployment.clients(&["orders"]).await;
    let stored = deployment.nodes[1].publish("orders", "stored").await;
    for c in clients.iter_mut() {
        assert_eq!(c.next_event().await.data, "stored");
    }
    let redis = deployment.redis().await;
    // Classic pub/sub: in a cluster PUBLISH goes to every shard, so the count is that of one.
    let receivers: i64 = redis.publish(deployment.live_channel("orders"), "live only").await.expect("publish");
    if let Shape::Standalone = shape {
        assert_eq!(receivers, 3, "one upstream subscription per node, not per client");
    }
    // Sharded pub/sub: the topic's shard only.
    let receivers: i64 = redis.spublish(deployment.live_channel("orders"), "sharded").await.expect("spublish");
    assert_eq!(receivers, 3, "one upstream subscription per node, not per client");
    for c in clients.iter_mut() {
        for expected in ["live only", "sharded"] {
            let e = c.next_event().await;
            assert_eq!(e.data, expected);
            assert_eq!(e.last_event_id, stored, "a live-only event does not move the client's position");
        }
    }
}

async fn a_client_resumes_on_another_node_with_no_gap_and_no_duplicate(shape: Shape) {
    let deployment = three_nodes(shape).await;
    let mut on_a = deployment.nodes[0].subscribe(&["t"], None).await;
    for i in 0..5 {
        deployment.nodes[1].publish("t", &i.to_string()).await;
    }
    assert_eq!(data(&on_a.events(5).await), ["0", "1", "2", "3", "4"]);
    let last = on_a.last_event_id().to_owned();
    drop(on_a);
    for i in 5..10 {
        deployment.nodes[0].publish("t", &i.to_string()).await;
    }
    let mut on_c = deployment.nodes[2].subscribe(&["t"], Some(&last)).await;
    assert_eq!(data(&on_c.events(5).await), ["5", "6", "7", "8", "9"]);
    deployment.nodes[1].publish("t", "live").await;
    assert_eq!(on_c.next_event().await.data, "live");
    on_c.expect_no_event(Duration::from_millis(300)).await;
}

async fn a_multi_topic_cursor_resumes_on_another_node(shape: Shape) {
    let deployment = three_nodes(shape).await;
    let mut on_a = deployment.nodes[0].subscribe(&["a", "b"], None).await;
    deployment.nodes[0].publish("a", "a0").await;
    deployment.nodes[1].publish("b", "b0").await;
    // Order is per topic; across topics it is arrival order at the node.
    let mut got: Vec<String> = data(&on_a.events(2).await).into_iter().map(str::to_owned).collect();
    got.sort();
    assert_eq!(got, ["a0", "b0"]);
    let cursor = on_a.last_event_id().to_owned();
    drop(on_a);
    deployment.nodes[2].publish("b", "b1").await;
    deployment.nodes[2].publish("a", "a1").await;
    let mut on_b = deployment.nodes[1].subscribe(&["b", "a"], Some(&cursor)).await;
    let mut got: Vec<String> = data(&on_b.events(2).await).into_iter().map(str::to_owned).collect();
    got.sort();
    assert_eq!(got, ["a1", "b1"]);
    on_b.expect_no_event(Duration::from_millis(300)).await;
}

/// The missed events of a multi-topic stream's topics come merged in the order Redis took them
/// (the order of their ids), not topic by topic, whichever node publishes and whichever resumes;
/// on a Cluster the topics live on different shards.
async fn a_multi_topic_resume_replays_in_publish_order_on_another_node(shape: Shape) {
    let deployment = three_nodes(shape).await;
    let mut on_a = deployment.nodes[0].subscribe(&["a", "b", "c"], None).await;
    deployment.nodes[0].publish("c", "start").await;
    assert_eq!(on_a.next_event().await.data, "start");
    let cursor = on_a.last_event_id().to_owned();
    drop(on_a);
    let mut published = Vec::new();
    for i in 0..30 {
        let topic = ["a", "b", "c"][(i + i / 3) % 3];
        let data = format!("{topic}{i}");
        let id: StreamId = deployment.nodes[i % 3].publish(topic, &data).await.parse().expect("stream id");
        published.push(data);
        next_millisecond_after(id).await;
    }
    let mut on_b = deployment.nodes[1].subscribe(&["c", "b", "a"], Some(&cursor)).await;
    assert_eq!(data(&on_b.events(published.len()).await), published);
    on_b.expect_no_event(Duration::from_millis(300)).await;
}

/// Waits until the clock Redis takes its ids from (this machine's: every test Redis runs here)
/// is past `id`'s millisecond. Redis orders one topic's events by id, but two topics' events
/// published in the same millisecond get ids it does not order.
async fn next_millisecond_after(id: StreamId) {
    let now_ms = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock after 1970").as_millis() as u64;
    while now_ms() <= id.ms {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn trimmed_history_gives_the_lost_signal_on_any_node(shape: Shape) {
    // MAXLEN ~ trims whole stream nodes (100 entries by default), so publish well past it.
    let deployment = three_nodes_with(shape, |c| c.history_max_len = 10).await;
    let first = deployment.nodes[0].publish("t", "first").await;
    let batch: Vec<_> = (0..400).map(|i| serde_json::json!({ "topic": "t", "data": i.to_string() })).collect();
    assert_eq!(deployment.nodes[0].publish_raw(serde_json::json!(batch)).await.status(), 200);
    let mut s = deployment.nodes[2].subscribe(&["t"], Some(&first)).await;
    let lost = s.next_event().await;
    assert_eq!(lost.event, "gateway.lost");
    let info: Value = serde_json::from_str(&lost.data).expect("json");
    assert_eq!(info["after"], first.as_str());
    let resumed_from: StreamId = info["resumed_from"].as_str().expect("an id").parse().expect("stream id");
    let next = s.next_event().await;
    assert_eq!(next.last_event_id.parse::<StreamId>().expect("id"), resumed_from, "then the oldest retained event");
    let mut last = next.data.parse::<u32>().expect("number");
    while last < 399 {
        let n = s.next_event().await.data.parse::<u32>().expect("number");
        assert_eq!(n, last + 1, "no gap after the signal");
        last = n;
    }
}

/// A client joining a node that does not follow its topic yet, while events stream in from
/// another node: the node's new upstream subscription and the client's start must not race.
async fn fresh_subscribers_during_a_burst_see_a_gapless_suffix(shape: Shape) {
    let deployment = three_nodes(shape).await;
    let publisher = {
        let client = deployment.nodes[0].client.clone();
        let url = deployment.nodes[0].url("/publish");
        tokio::spawn(async move {
            for i in 0..300 {
                let body = serde_json::json!({ "topic": "burst", "data": i.to_string() });
                let r = client.post(&url).bearer_auth(token(&[], &["*"])).json(&body).send().await.expect("publish");
                assert_eq!(r.status(), 200);
            }
        })
    };
    let mut joined = Vec::new();
    for round in 0..6 {
        tokio::time::sleep(Duration::from_millis(15)).await;
        joined.push(deployment.nodes[1 + round % 2].subscribe(&["burst"], None).await);
    }
    publisher.await.expect("publisher");
    for (i, c) in joined.iter_mut().enumerate() {
        let first: u32 = c.next_event().await.data.parse().expect("number");
        for expected in first + 1..300 {
            let n: u32 = c.next_event().await.data.parse().expect("number");
            assert_eq!(n, expected, "client {i} saw a gap or a duplicate");
        }
        c.expect_no_event(Duration::from_millis(200)).await;
    }
}

/// Streams that start at once on a topic, while Redis holds every command (`CLIENT PAUSE`), share
/// their tail reads: a flood of new streams costs a few Redis calls per topic, not one per stream,
/// so it cannot queue publishes behind it. And each of them, started during a publish burst,
/// still sees a gapless suffix.
#[tokio::test]
async fn streams_starting_together_share_their_tail_reads() {
    use fred::interfaces::ClientLike;
    const STREAMS: usize = 100;
    let redis = TestRedis::start().await;
    let node = spawn_node_at(&redis.url, &unique_prefix(), |_| {}).await;
    // The node follows the topic already: the streams below only read its tail.
    let mut first = node.subscribe(&["t"], None).await;
    node.publish("t", "start").await;
    assert_eq!(first.next_event().await.data, "start");
    let reads = |m: &Metrics| m.value(r#"sse_gateway_redis_command_duration_seconds_count{op="read"}"#);
    let before = reads(&node.metrics().await);

    let pause = fred::cmd!("CLIENT");
    let _: fred::types::Value = redis_client(&redis).await.custom(pause, vec!["PAUSE", "1000", "ALL"]).await.expect("CLIENT PAUSE");
    let publisher = {
        let (client, url) = (node.client.clone(), node.url("/publish"));
        tokio::spawn(async move {
            for i in 0..50 {
                let body = serde_json::json!({ "topic": "t", "data": i.to_string() });
                let r = client.post(&url).bearer_auth(token(&[], &["*"])).json(&body).send().await.expect("publish");
                assert_eq!(r.status(), 200);
            }
        })
    };
    let mut streams = futures::future::join_all((0..STREAMS).map(|_| node.subscribe(&["t"], None))).await;
    publisher.await.expect("publisher");
    let after = reads(&node.metrics().await);
    assert!(after - before <= (STREAMS / 2) as f64, "{STREAMS} streams starting together sent {} tail reads", after - before);
    println!("{STREAMS} streams starting together: {} tail reads", after - before);

    node.publish("t", "end").await;
    for (i, s) in streams.iter_mut().enumerate() {
        let mut next = s.next_event().await.data;
        if next != "end" {
            let mut n: u32 = next.parse().expect("a number");
            loop {
                next = s.next_event().await.data;
                if next == "end" {
                    break;
                }
                n += 1;
                assert_eq!(next, n.to_string(), "stream {i} saw a gap or a duplicate");
            }
            assert_eq!(n, 49, "stream {i} saw every event after its first");
        }
    }
}

async fn a_batch_across_topics_answers_ids_in_input_order(shape: Shape) {
    let deployment = three_nodes(shape).await;
    let mut s = deployment.nodes[2].subscribe(&["a", "b"], None).await;
    let batch = serde_json::json!([
        { "topic": "a", "data": "a0" }, { "topic": "b", "data": "b0" }, { "topic": "a", "data": "a1" }, { "topic": "b", "data": "b1" }
    ]);
    let r = deployment.nodes[0].publish_raw(batch).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.expect("json");
    let ids: Vec<StreamId> = body["ids"].as_array().expect("ids").iter().map(|v| v.as_str().expect("id").parse().expect("id")).collect();
    assert_eq!(ids.len(), 4);
    assert!(ids[0] < ids[2] && ids[1] < ids[3], "per-topic order in the answer: {ids:?}");
    let redis = deployment.redis().await;
    for (i, topic) in ["a", "b", "a", "b"].iter().enumerate() {
        let entries: Vec<(String, std::collections::HashMap<String, String>)> =
            redis.xrange(deployment.stream_key(topic), ids[i].to_string(), ids[i].to_string(), None).await.expect("xrange");
        let expected = format!("{topic}{}", i / 2);
        assert_eq!(entries[0].1["data"], expected, "id {i} belongs to the event at that position");
    }
    let mut got: Vec<String> = data(&s.events(4).await).into_iter().map(str::to_owned).collect();
    got.sort();
    assert_eq!(got, ["a0", "a1", "b0", "b1"]);
}

/// The last follower of a topic leaving a node just as a new one arrives, during a burst, for
/// ten topics: the node must never end up without its upstream for a topic someone follows (each
/// newcomer sees a gapless suffix).
async fn a_follower_replacing_the_last_one_never_misses_events(shape: Shape) {
    const ROUNDS: usize = 10;
    const EVENTS: usize = 60;
    let deployment = three_nodes(shape).await;
    let publisher = {
        let client = deployment.nodes[0].client.clone();
        let url = deployment.nodes[0].url("/publish");
        tokio::spawn(async move {
            for i in 0..EVENTS {
                for r in 0..ROUNDS {
                    let body = serde_json::json!({ "topic": format!("churn{r}"), "data": i.to_string() });
                    let resp = client.post(&url).bearer_auth(token(&[], &["*"])).json(&body).send().await.expect("publish");
                    assert_eq!(resp.status(), 200);
                }
            }
        })
    };
    let mut kept = Vec::new();
    for r in 0..ROUNDS {
        let topic = format!("churn{r}");
        let leaving = deployment.nodes[1].subscribe(&[&topic], None).await;
        drop(leaving);
        kept.push(deployment.nodes[1].subscribe(&[&topic], None).await);
    }
    publisher.await.expect("publisher");
    for (r, c) in kept.iter_mut().enumerate() {
        let first: usize = c.next_event().await.data.parse().expect("number");
        for expected in first + 1..EVENTS {
            let n: usize = c.next_event().await.data.parse().expect("number");
            assert_eq!(n, expected, "round {r} saw a gap or a duplicate");
        }
        c.expect_no_event(Duration::from_millis(200)).await;
    }
}
