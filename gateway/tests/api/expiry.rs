//! Bounded memory: nothing the gateway writes lives for ever. On Redis every key it writes
//! expires (a topic's stream the history's age after its last event), and a client resuming on
//! a topic whose stream expired is told of the loss or given everything, never silence; on the
//! embedded bus idle topics leave memory.
//!
//! Waits for expiry poll a condition with a generous bound ([`EXPIRY_BOUND`]) and say what they
//! waited for: Redis deletes an expired key when it is next touched (each poll touches it), so
//! the bound only has to cover a busy machine, not Redis's own timing.

use std::time::Duration;

use fred::clients::Client;
use fred::interfaces::{ClientLike, KeysInterface, LuaInterface, StreamsInterface};
use futures::TryStreamExt;
use serde_json::{Value, json};
use shared::Topic;
use shared::keys::KeyLayout;

use support::app::*;
use support::redis::*;

/// The history's age in these tests (the configuration's minimum is 1 s).
const AGE: Duration = Duration::from_secs(2);
/// The age where a test needs a stream to outlive a few steps of its own: a machine would have
/// to stall this long between two of them to fail it.
const LONGER_AGE: Duration = Duration::from_secs(5);
/// How long a wait for keys to expire may take: the longest lifetime the gateway gives a key (the
/// deployment's ticket tag, 30 s after the last node refreshed it) with room for a busy machine.
const EXPIRY_BOUND: Duration = Duration::from_secs(60);

on_every_shape!(
    every_key_a_gateway_writes_gets_an_expiry_and_is_gone_after_it,
    a_resume_on_an_expired_stream_gets_the_lost_signal_never_silence_or_an_error,
    a_recent_position_on_a_missing_stream_gets_no_lost_signal,
    a_raw_xadd_with_the_documented_expiry_is_judged_by_the_same_rule,
);

/// A Redis of some shape, a key prefix of its own and a plain client to look at the keys.
struct Deployment {
    _store: Store,
    prefix: String,
    redis: Client,
}

/// A deployment and one gateway node on it with a short history age.
async fn deploy(shape: Shape, configure: impl FnOnce(&mut gateway::Config)) -> (Deployment, TestApp) {
    let store = Store::start(shape).await;
    let prefix = unique_prefix();
    let node = spawn_node_at(store.url(), &prefix, |c| {
        c.history_max_age = AGE;
        configure(c);
    })
    .await;
    let redis = redis_client_at(store.url()).await;
    (Deployment { _store: store, prefix, redis }, node)
}

impl Deployment {
    fn stream_key(&self, topic: &str) -> String {
        KeyLayout::new(&self.prefix).stream(&Topic::parse(topic).expect("topic"))
    }

    /// Every key under this deployment's prefix, on every master.
    async fn keys(&self) -> Vec<String> {
        let pattern = format!("{}:*", self.prefix);
        let keys: Vec<fred::types::Key> = if self.redis.is_clustered() {
            self.redis.scan_cluster_buffered(pattern, Some(1000), None).try_collect().await.expect("scan the cluster")
        } else {
            self.redis.scan_buffered(pattern, Some(1000), None).try_collect().await.expect("scan")
        };
        keys.iter().map(|k| k.as_str().expect("utf-8 key").to_owned()).collect()
    }

    async fn pttl(&self, key: &str) -> i64 {
        self.redis.pttl(key).await.expect("PTTL")
    }

    async fn exists(&self, key: &str) -> bool {
        self.redis.exists::<i64, _>(key).await.expect("EXISTS") == 1
    }

    /// Polls until `key` is gone (each poll also makes Redis delete it if it is due).
    async fn wait_gone(&self, key: &str) {
        eventually(&format!("{key} to expire"), EXPIRY_BOUND, || async { !self.exists(key).await }).await;
    }
}

async fn every_key_a_gateway_writes_gets_an_expiry_and_is_gone_after_it(shape: Shape) {
    let (d, node) = deploy(shape, |c| c.clock_interval = Some(Duration::from_secs(1))).await;
    node.publish("solo", "1").await;
    let batch = json!([{ "topic": "a", "data": "1" }, { "topic": "b", "data": "2" }, { "topic": "a", "data": "3" }]);
    assert_eq!(node.publish_raw(batch).await.status(), 200);
    let clock = d.stream_key(node.state.config.clock_topic.as_str());
    eventually("the clock's first tick", EXPIRY_BOUND, || d.exists(&clock)).await;
    // A ticket left unused, and one used (its tombstone).
    for used in [false, true] {
        let resp = node.client.post(node.url("/tickets")).bearer_auth(token(&["solo"], &[])).send().await.expect("POST /tickets");
        let ticket: Value = resp.json().await.expect("json");
        let url = format!("{}&ticket={}", node.events_url(&["solo"]), ticket["ticket"].as_str().expect("a ticket"));
        if used {
            assert_eq!(node.client.get(url).send().await.expect("stream").status(), 200);
        }
    }
    for topic in ["solo", "a", "b"] {
        let ttl = d.pttl(&d.stream_key(topic)).await;
        // -2: already expired (a machine slower than the age between the publish and this).
        assert!(
            ttl == -2 || (0 < ttl && ttl <= AGE.as_millis() as i64),
            "{topic}'s stream expires the age after its last event: PTTL {ttl}"
        );
    }
    let keys = d.keys().await;
    assert!(keys.iter().any(|k| k.contains(":receipt:")), "publish receipts are among the keys: {keys:?}");
    assert!(keys.iter().any(|k| k.contains(":claim:")), "the clock's claim is among the keys: {keys:?}");
    assert_eq!(keys.iter().filter(|k| k.contains(":ticket:")).count(), 2, "a ticket and a tombstone: {keys:?}");
    assert!(keys.contains(&format!("{}:deployment", d.prefix)), "the deployment's ticket tag: {keys:?}");
    for key in &keys {
        let ttl = d.pttl(key).await;
        // -2: it expired since the scan.
        assert!(ttl > 0 || ttl == -2, "{key} would live for ever (PTTL {ttl})");
    }
    node.shutdown().await;
    eventually("every key under the prefix to expire", EXPIRY_BOUND, || async { d.keys().await.is_empty() }).await;
}

/// The lost signal's `after` and `resumed_from`.
fn lost_info(e: &shared::sse::ParsedEvent) -> (String, Value) {
    assert_eq!(e.event, "gateway.lost", "expected the lost signal, got {e:?}");
    let info: Value = serde_json::from_str(&e.data).expect("json");
    (info["after"].as_str().expect("after").to_owned(), info["resumed_from"].clone())
}

async fn a_resume_on_an_expired_stream_gets_the_lost_signal_never_silence_or_an_error(shape: Shape) {
    let (d, node) = deploy(shape, |c| c.history_max_age = LONGER_AGE).await;
    let first = node.publish("t", "1").await;
    let last = node.publish("t", "2").await;
    d.wait_gone(&d.stream_key("t")).await;
    // Missed "2": told so. Had seen "2", the last event: told too (documented: once the key is
    // gone nothing says what it held), with no event to resume from.
    for position in [&first, &last] {
        let mut s = node.subscribe(&["t"], Some(position)).await;
        assert_eq!(lost_info(&s.next_event().await), (position.clone(), Value::Null));
        s.expect_no_event(Duration::from_millis(200)).await;
        node.publish("t", "live").await;
        assert_eq!(s.next_event().await.data, "live", "the stream goes on live");
        d.wait_gone(&d.stream_key("t")).await;
    }
    // The stream born again: a position from its expired life is still told, then gets the
    // new life's events.
    let reborn = node.publish("t", "3").await;
    let mut s = node.subscribe(&["t"], Some(&first)).await;
    assert_eq!(lost_info(&s.next_event().await), (first.clone(), json!(reborn)));
    assert_eq!(s.next_event().await.data, "3");
    // A position in the new life: nothing lost, nothing more.
    let mut s = node.subscribe(&["t"], Some(&reborn)).await;
    s.expect_no_event(Duration::from_millis(300)).await;
}

async fn a_recent_position_on_a_missing_stream_gets_no_lost_signal(shape: Shape) {
    // An hour's age: the quiet topic's position (its tail when the client came) stays recent.
    let (d, node) = deploy(shape, |c| c.history_max_age = Duration::from_secs(3600)).await;
    let mut s = node.subscribe(&["busy", "quiet"], None).await;
    node.publish("busy", "b1").await;
    assert_eq!(s.next_event().await.data, "b1");
    let cursor = s.last_event_id().to_owned();
    drop(s);
    assert!(!d.exists(&d.stream_key("quiet")).await, "the quiet topic has no stream");
    let mut s = node.subscribe(&["busy", "quiet"], Some(&cursor)).await;
    node.publish("quiet", "q1").await;
    node.publish("busy", "b2").await;
    // Live, order across topics is arrival order at the node (on a Cluster the two streams live
    // on different shards): each topic's event, and no lost signal among them.
    let mut got: Vec<String> = data(&s.events(2).await).into_iter().map(str::to_owned).collect();
    got.sort();
    assert_eq!(got, ["b2", "q1"], "no lost signal, then what came next");
}

/// What docs/redis.md asks of a service that `XADD`s itself: trim and set the expiry in the same
/// atomic step as the append, from the id it got.
const RAW_PUBLISH: &str = r#"
local id = redis.call('XADD', KEYS[1], 'MINID', '~', ARGV[1], '*', 'data', ARGV[2])
redis.call('PEXPIREAT', KEYS[1], tonumber(string.match(id, '^(%d+)')) + tonumber(ARGV[3]))
return id
"#;

async fn a_raw_xadd_with_the_documented_expiry_is_judged_by_the_same_rule(shape: Shape) {
    let (d, node) = deploy(shape, |_| {}).await;
    let key = d.stream_key("raw");
    let mut live = node.subscribe(&["raw"], None).await;
    let raw = |data: &'static str| {
        let (redis, key) = (d.redis.clone(), key.clone());
        async move {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis();
            let args = vec![(now - AGE.as_millis()).to_string(), data.to_owned(), AGE.as_millis().to_string()];
            redis.eval::<String, _, _, _>(RAW_PUBLISH, key, args).await.expect("raw publish")
        }
    };
    let first = raw("r1").await;
    raw("r2").await;
    assert_eq!(data(&live.events(2).await), ["r1", "r2"]);
    let ttl = d.pttl(&key).await;
    assert!(ttl == -2 || (0 < ttl && ttl <= AGE.as_millis() as i64), "the publisher's own expiry: PTTL {ttl}");
    d.wait_gone(&key).await;
    let mut s = node.subscribe(&["raw"], Some(&first)).await;
    assert_eq!(lost_info(&s.next_event().await), (first, Value::Null));
    // A plain XADD with no expiry: delivered, and left as it is (docs/redis.md: only the appender can
    // set an expiry safely).
    let _: String = d.redis.xadd(&key, false, None::<()>, "*", vec![("data", "r3")]).await.expect("xadd");
    assert_eq!(live.next_event().await.data, "r3");
    assert_eq!(s.next_event().await.data, "r3");
    assert_eq!(d.pttl(&key).await, -1, "the gateway does not set one");
}

#[tokio::test]
async fn idle_topics_leave_the_embedded_bus_and_its_fan_out() {
    let app = spawn_with(|c| {
        c.history_max_age = Duration::from_secs(1);
        // Closed streams are noticed on their next write: soon.
        c.heartbeat = Duration::from_secs(1);
    })
    .await;
    let baseline = (app.state.bus.held_topics().expect("the embedded bus counts its topics"), app.state.fanout.topic_count());
    for round in 0..5 {
        let topics: Vec<String> = (0..200).map(|i| format!("user.{round}.{i}")).collect();
        let mut clients = Vec::new();
        for chunk in topics.chunks(20) {
            clients.push(app.subscribe(&chunk.iter().map(String::as_str).collect::<Vec<_>>(), None).await);
        }
        let batch: Vec<Value> = topics.iter().map(|t| json!({ "topic": t, "data": "x" })).collect();
        assert_eq!(app.publish_raw(json!(batch)).await.status(), 200);
        assert!(app.state.fanout.topic_count() >= 200, "the round's topics are followed");
        drop(clients);
    }
    let held = || async { (app.state.bus.held_topics().expect("counted"), app.state.fanout.topic_count()) };
    eventually("the embedded bus and the fan-out to hold only what they held at the start", EXPIRY_BOUND, || async {
        held().await == baseline
    })
    .await;
    let first = app.publish("again", "1").await;
    app.publish("again", "2").await;
    eventually("the topic to be dropped", EXPIRY_BOUND, || async { app.state.bus.held_topics() == Some(baseline.0) }).await;
    let mut s = app.subscribe(&["again"], Some(&first)).await;
    assert_eq!(lost_info(&s.next_event().await), (first, Value::Null));
}
