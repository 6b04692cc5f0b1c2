//! Several gateway nodes sharing one real Redis behave as one: every publishing path reaches
//! every client on every node once and in order, and a client resumes on any node.

use std::time::Duration;

use fred::interfaces::{PubsubInterface, StreamsInterface};
use serde_json::Value;
use shared::keys::KeyLayout;
use shared::sse::Item;
use shared::{StreamId, Topic};

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

/// Three gateway nodes sharing one Redis (of either shape) under a key prefix of their own.
struct Nodes {
    store: Store,
    prefix: String,
    nodes: Vec<TestApp>,
}

async fn three_nodes(shape: Shape) -> Nodes {
    three_nodes_with(shape, |_| {}).await
}

async fn three_nodes_with(shape: Shape, configure: impl Fn(&mut gateway::Config) + Copy) -> Nodes {
    let store = Store::start(shape).await;
    let prefix = unique_prefix();
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(spawn_node_at(store.url(), &prefix, configure).await);
    }
    Nodes { store, prefix, nodes }
}

/// The stream key of `topic` under `prefix`, as the gateway lays it out.
fn stream_key(prefix: &str, topic: &str) -> String {
    KeyLayout::new(prefix).stream(&Topic::parse(topic).expect("topic"))
}

impl Nodes {
    fn stream_key(&self, topic: &str) -> String {
        stream_key(&self.prefix, topic)
    }

    fn live_channel(&self, topic: &str) -> String {
        KeyLayout::new(&self.prefix).live(&Topic::parse(topic).expect("topic"))
    }

    /// A plain client of the same Redis, for publishing the way other services do.
    async fn redis(&self) -> fred::clients::Client {
        redis_client_at(self.store.url()).await
    }

    /// Two clients on each node, all following `topics`.
    async fn clients(&self, topics: &[&str]) -> Vec<SseClient> {
        let mut clients = Vec::new();
        for node in &self.nodes {
            for _ in 0..2 {
                clients.push(node.subscribe(topics, None).await);
            }
        }
        clients
    }
}

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

/// Waits until the stream `key` on the server at `port` holds at least `n` entries: the
/// publishers running beside the test got that far. Fails after 30 s, saying how many it holds
/// (a node that never publishes again after a fault).
async fn until_stream_holds(port: u16, key: &str, n: usize) {
    eventually(format!("{n} entries in {key} on port {port}"), Duration::from_secs(30), async || {
        // While the server restarts, redis-cli answers nothing: 0.
        let len: usize = redis_cli(port, &["XLEN", key]).await.first().and_then(|l| l.parse().ok()).unwrap_or(0);
        if len >= n { Ok(()) } else { Err(format!("it holds {len}")) }
    })
    .await;
}

async fn wait_for_status(node: &TestApp, path: &str, status: u16) {
    eventually(format!("{path} to answer {status}"), WAIT, async || {
        let got = node.client.get(node.url(path)).send().await.expect("request").status();
        if got == status { Ok(()) } else { Err(format!("{path} answered {got}")) }
    })
    .await;
}

/// Three nodes on a standalone Redis this harness can stop and restart; `None` (the test is
/// skipped, and says so) when the Redis is not its own process.
async fn restartable_nodes() -> Option<Nodes> {
    let deployment = three_nodes(Shape::Standalone).await;
    let Store::Standalone(redis) = &deployment.store else { unreachable!("a standalone Redis") };
    if !redis.can_restart() {
        eprintln!("skipped: this test stops and starts its own redis-server");
        return None;
    }
    Some(deployment)
}

#[tokio::test]
async fn redis_going_away_and_back_loses_no_later_stream_event() {
    let Some(mut deployment) = restartable_nodes().await else { return };
    let mut clients = deployment.clients(&["t"]).await;
    for i in 0..3 {
        deployment.nodes[i].publish("t", &format!("before{i}")).await;
    }
    for c in clients.iter_mut() {
        assert_eq!(data(&c.events(3).await), ["before0", "before1", "before2"]);
    }

    let Store::Standalone(redis) = &mut deployment.store else { unreachable!("a standalone Redis") };
    redis.stop().await;
    for node in &deployment.nodes {
        wait_for_status(node, "/readyz", 503).await;
        assert_eq!(node.client.get(node.url("/healthz")).send().await.expect("healthz").status(), 200, "alive while Redis is away");
    }
    let r = deployment.nodes[0].publish_raw(serde_json::json!({ "topic": "t", "data": "refused" })).await;
    assert_eq!(r.status(), 503, "publishing needs Redis");
    for c in clients.iter_mut() {
        c.expect_no_event(Duration::from_millis(100)).await;
        assert!(!c.ended, "client connections stay open while Redis is away");
    }

    // Back, with an event added before the nodes have reconnected: they must catch up on it.
    redis.restart().await;
    let redis = deployment.redis().await;
    let _: String = redis.xadd(deployment.stream_key("t"), false, None::<()>, "*", vec![("data", "during")]).await.expect("xadd");
    for node in &deployment.nodes {
        wait_for_status(node, "/readyz", 200).await;
    }
    for i in 0..3 {
        deployment.nodes[i].publish("t", &format!("after{i}")).await;
    }
    for (i, c) in clients.iter_mut().enumerate() {
        assert_eq!(data(&c.events(4).await), ["during", "after0", "after1", "after2"], "client {i}");
        c.expect_no_event(Duration::from_millis(300)).await;
    }
}

/// A publish in flight when Redis stops may have been appended with its reply lost; the Redis
/// client sends it again after the reconnect. Its receipt must make the second run append
/// nothing (it was stored, and delivered, twice: a few events per restart). Publishers keep
/// publishing through three restarts (SIGTERM, as an operator stops Redis); every stored event
/// must be there once.
#[tokio::test]
async fn a_publish_in_flight_when_redis_stops_is_never_stored_twice() {
    let Some(mut deployment) = restartable_nodes().await else { return };
    let stop = tokio_util::sync::CancellationToken::new();
    let publishers: Vec<_> = (0..8)
        .map(|w| {
            let (client, url) = (deployment.nodes[w % 3].client.clone(), deployment.nodes[w % 3].url("/publish"));
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.is_cancelled() {
                    let r = client.post(&url).bearer_auth(token(&[], &["*"]));
                    let _ = r.json(&serde_json::json!({ "topic": "t", "data": format!("{w}-{n}") })).send().await;
                    n += 1;
                }
                n
            })
        })
        .collect();
    let key = deployment.stream_key("t");
    let Store::Standalone(redis) = &mut deployment.store else { unreachable!("a standalone Redis") };
    let port = redis.port();
    for round in 1..=3 {
        // The publishers got through since the last restart; then Redis goes away for a moment.
        until_stream_holds(port, &key, 30 * round).await;
        redis.terminate().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        redis.restart().await;
    }
    until_stream_holds(port, &key, 120).await;
    stop.cancel();
    let mut sent = 0;
    for p in publishers {
        sent += p.await.expect("publisher");
    }
    let entries: Vec<(String, std::collections::HashMap<String, String>)> =
        deployment.redis().await.xrange(deployment.stream_key("t"), "-", "+", None).await.expect("xrange");
    let mut seen = std::collections::HashSet::new();
    let twice: Vec<&str> = entries.iter().map(|(_, f)| f["data"].as_str()).filter(|d| !seen.insert(*d)).collect();
    assert!(twice.is_empty(), "stored twice: {twice:?} (of {} entries, {sent} publishes)", entries.len());
    assert!(entries.len() > 100, "the publishers got through between the restarts ({} entries)", entries.len());
}

/// What a failover to a replica that missed the newest writes looks like to a node: the server
/// comes back holding the shared older history plus its own newer entries, with ids below the
/// ones the node already delivered. The node must rewind, deliver those entries (and nothing
/// twice), and its clients must accept them.
#[tokio::test]
async fn a_server_that_comes_back_with_another_history_is_followed_without_skipping() {
    let Some(mut deployment) = restartable_nodes().await else { return };
    let mut single = deployment.nodes[1].subscribe(&["t"], None).await;
    let mut multi = deployment.nodes[2].subscribe(&["t", "u"], None).await;
    let mut ids: Vec<StreamId> = Vec::new();
    for d in ["shared", "lost1", "lost2"] {
        ids.push(deployment.nodes[0].publish("t", d).await.parse().expect("stream id"));
    }
    for c in [&mut single, &mut multi] {
        assert_eq!(data(&c.events(3).await), ["shared", "lost1", "lost2"]);
    }

    // The "replica": the shared entry, then its own entry with an id between the shared one and
    // the ones it missed.
    let mut replica = TestRedis::start().await;
    let own = StreamId::new(ids[0].ms, ids[0].seq + 1);
    assert!(own < ids[1]);
    {
        let r = redis_client(&replica).await;
        let key = deployment.stream_key("t");
        let _: String = r.xadd(&key, false, None::<()>, ids[0].to_string(), vec![("data", "shared")]).await.expect("xadd");
        let _: String = r.xadd(&key, false, None::<()>, own.to_string(), vec![("data", "replica-own")]).await.expect("xadd");
    }
    replica.stop().await;
    let Store::Standalone(redis) = &mut deployment.store else { unreachable!("a standalone Redis") };
    redis.stop().await;
    redis.take_data_of(&replica);
    redis.restart().await;
    for c in [&mut single, &mut multi] {
        assert_eq!(c.next_event().await.data, "replica-own", "the new history's entry below the delivered ids");
    }
    for node in &deployment.nodes {
        wait_for_status(node, "/readyz", 200).await;
    }
    let after = deployment.nodes[0].publish("t", "after").await;
    for c in [&mut single, &mut multi] {
        assert_eq!(c.next_event().await.data, "after");
        c.expect_no_event(Duration::from_millis(300)).await;
    }
    assert_eq!(single.last_event_id(), after, "the client's position is in the new history");

    // A client that saw the discarded events and resumes from one of them: its position was
    // never in this history, so it is told that events may be missing.
    let mut resumed = deployment.nodes[0].subscribe(&["t"], Some(&ids[2].to_string())).await;
    assert_eq!(resumed.next_event().await.event, "gateway.lost");
    assert_eq!(resumed.next_event().await.data, "after");
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

/// On topic "t": `{label}{i}` over HTTP on node `i`, each followed by `raw{i}` from a plain `XADD`.
/// Returns the data in publish order.
async fn interleave_http_and_xadd(nodes: &[TestApp], redis: &fred::clients::Client, prefix: &str, label: &str) -> Vec<String> {
    let mut published = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        published.push(format!("{label}{i}"));
        node.publish("t", &published[published.len() - 1]).await;
        published.push(format!("raw{i}"));
        let fields = vec![("data", published[published.len() - 1].clone())];
        let _: String = redis.xadd(stream_key(prefix, "t"), false, None::<()>, "*", fields).await.expect("xadd");
    }
    published
}

/// Every client receives exactly `expected`, in order, and nothing more.
async fn expect_on_every_client(clients: &mut [SseClient], expected: &[String]) {
    for (i, c) in clients.iter_mut().enumerate() {
        assert_eq!(data(&c.events(expected.len()).await), expected, "client {i}");
        c.expect_no_event(Duration::from_millis(300)).await;
    }
}

/// Three nodes on the Redis behind `sentinel`, each with a client following "t".
async fn sentinel_nodes(sentinel: &TestSentinel, prefix: &str) -> (Vec<TestApp>, Vec<SseClient>) {
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(spawn_node_at(&sentinel.url, prefix, |_| {}).await);
    }
    let mut clients = Vec::new();
    for node in &nodes {
        clients.push(node.subscribe(&["t"], None).await);
    }
    (nodes, clients)
}

#[tokio::test]
async fn nodes_work_through_sentinel() {
    let sentinel = TestSentinel::start().await;
    let prefix = unique_prefix();
    let (nodes, mut clients) = sentinel_nodes(&sentinel, &prefix).await;
    let redis = redis_client_at(&sentinel.url).await;
    let expected = interleave_http_and_xadd(&nodes, &redis, &prefix, "http").await;
    assert_eq!(expected, ["http0", "raw0", "http1", "raw1", "http2", "raw2"]);
    expect_on_every_client(&mut clients, &expected).await;
}

/// Across a Sentinel failover, under a steady stream of HTTP and raw `XADD` publishes: the new
/// master has default settings (no keyspace notifications) and none of the subscriptions, and
/// the demoted one keeps accepting writes until the nodes move (writes Redis then discards: that
/// loss is inherent to asynchronous replication). What the nodes must do: deliver every entry of
/// the new master's history to every client, once and in its order, although before moving they
/// may have delivered (and advanced past) entries the new master never had.
#[tokio::test]
async fn nodes_follow_a_sentinel_failover_without_losing_later_events() {
    let sentinel = TestSentinel::start().await;
    let prefix = unique_prefix();
    let (nodes, mut clients) = sentinel_nodes(&sentinel, &prefix).await;
    nodes[0].publish("t", "before").await;
    for c in clients.iter_mut() {
        assert_eq!(c.next_event().await.data, "before");
    }

    // Publishers on every node and a raw XADD publisher, every 20 ms, until told to stop.
    let stop = tokio_util::sync::CancellationToken::new();
    let mut publishers = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        let (client, url, stop) = (node.client.clone(), node.url("/publish"), stop.clone());
        publishers.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.is_cancelled() {
                let body = serde_json::json!({ "topic": "t", "data": format!("http{n}-{i}") });
                let _ = client.post(&url).bearer_auth(token(&[], &["*"])).json(&body).send().await;
                i += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    {
        let (url, key, stop) = (sentinel.url.clone(), stream_key(&prefix, "t"), stop.clone());
        publishers.push(tokio::spawn(async move {
            let redis = redis_client_at(&url).await;
            let mut i = 0;
            while !stop.is_cancelled() {
                let _: Result<String, _> = redis.xadd(&key, false, None::<()>, "*", vec![("data", format!("raw-{i}"))]).await;
                i += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    let key = stream_key(&prefix, "t");
    until_stream_holds(sentinel.master_port().await.expect("a master"), &key, 10).await;
    sentinel.fail_over().await;
    // The publishers go on through the failover, on the new master.
    until_stream_holds(sentinel.master_port().await.expect("a master"), &key, 60).await;
    stop.cancel();
    for p in publishers {
        p.await.expect("publisher");
    }

    let master = sentinel.master_port().await.expect("a master");
    let history: Vec<String> = redis_cli(master, &["XRANGE", &stream_key(&prefix, "t"), "-", "+"])
        .await
        .into_iter()
        .filter(|l| l.starts_with("http") || l.starts_with("raw-"))
        .collect();
    assert!(history.len() > 50, "the publishers kept publishing through the failover: {}", history.len());
    for (i, c) in clients.iter_mut().enumerate() {
        // Every entry of the new master's history, whatever comes before it; then whatever else
        // is on its way.
        let mut got: Vec<String> = Vec::new();
        while let Some(missing) = history.iter().find(|h| !got.contains(h)) {
            match c.next_item_within(WAIT).await {
                Ok(Some(Item::Event(e))) => got.push(e.data),
                Ok(Some(_)) => {}
                Ok(None) => panic!("client {i}: the stream ended before {missing} of the new master's history came"),
                Err(()) => panic!("client {i}: waited {WAIT:?} for {missing} of the new master's history; nothing came"),
            }
        }
        got.extend(c.events_until_quiet(Duration::from_millis(300)).await.into_iter().map(|e| e.data));
        let mut seen = std::collections::HashSet::new();
        assert!(got.iter().all(|d| seen.insert(d.clone())), "client {i} received an event twice");
        let held: Vec<&String> = got.iter().filter(|d| history.contains(d)).collect();
        assert_eq!(
            held,
            history.iter().collect::<Vec<_>>(),
            "client {i} missed entries of the new master's history, or got them out of order"
        );
        eprintln!("client {i}: {} events, {} of them discarded by the failover", got.len(), got.len() - held.len());
    }

    // Settled: what comes now arrives only by notifications from the new master, which the
    // nodes had to turn on there themselves.
    let redis = redis_client_at(&sentinel.url).await;
    let expected = interleave_http_and_xadd(&nodes, &redis, &prefix, "late").await;
    expect_on_every_client(&mut clients, &expected).await;
    let held = redis_cli(master, &["XRANGE", &stream_key(&prefix, "t"), "-", "+"]).await;
    for e in &expected {
        assert!(held.contains(e), "{e} is not on the new master: {held:?}");
    }
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

/// A resharding moves a followed topic's slot to another master while clients listen: the nodes
/// must notice (no command of theirs runs into the move), subscribe on the new owner and deliver
/// everything published there, by HTTP and by raw `XADD`, once and in order.
#[tokio::test]
async fn a_topic_whose_slot_moves_to_another_master_keeps_streaming() {
    let deployment = three_nodes(Shape::Cluster).await;
    let Store::Cluster(cluster) = &deployment.store else { unreachable!("a cluster") };
    let mut clients = deployment.clients(&["t"]).await;
    let redis = deployment.redis().await;
    let before = interleave_http_and_xadd(&deployment.nodes, &redis, &deployment.prefix, "before").await;
    expect_on_every_client(&mut clients, &before).await;

    let key = deployment.stream_key("t");
    let from = cluster.owner_of(&key).await;
    let to = *cluster.ports.iter().find(|p| **p != from).expect("another master");
    cluster.move_slot_of(&key, to).await;
    assert_eq!(cluster.owner_of(&key).await, to);
    // The history moved with the slot; the nodes learn of the move by their topology check.
    let after = interleave_http_and_xadd(&deployment.nodes, &redis, &deployment.prefix, "after").await;
    expect_on_every_client(&mut clients, &after).await;
    let held = redis_cli(to, &["XRANGE", &key, "-", "+"]).await;
    assert!(before.iter().chain(&after).all(|e| held.contains(e)), "the new owner holds the whole history: {held:?}");
}

/// `rediss://`: nodes reach a TLS-only Redis whose certificate comes from a private CA given by
/// `GATEWAY_REDIS_CA_FILE`, and every path works over it; a node trusting another CA refuses to
/// start.
#[tokio::test]
async fn nodes_reach_redis_over_tls_with_a_private_ca() {
    let redis = TestTlsRedis::start().await;
    let prefix = unique_prefix();
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let ca = redis.ca_file.clone();
        nodes.push(spawn_node_at(&redis.url, &prefix, move |c| c.redis_ca_file = Some(ca)).await);
    }
    let mut client = nodes[1].subscribe(&["t"], None).await;
    let mut resumed_from = String::new();
    for i in 0..3 {
        resumed_from = nodes[0].publish("t", &format!("over tls {i}")).await;
    }
    assert_eq!(data(&client.events(3).await), ["over tls 0", "over tls 1", "over tls 2"]);
    let mut resumed = nodes[1].subscribe(&["t"], Some(&resumed_from)).await;
    nodes[0].publish("t", "after").await;
    assert_eq!(resumed.next_event().await.data, "after", "resumption reads history over TLS");

    let mut config = gateway::Config::for_tests(SECRET);
    config.redis_url = Some(gateway::config::RedisUrl::parse(&redis.url).expect("url"));
    config.redis_ca_file = Some(redis.other_ca_file.clone());
    assert!(gateway::App::build(config).await.is_err(), "a certificate from another CA is refused");
}
