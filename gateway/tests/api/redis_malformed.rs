//! What Redis says that the gateway cannot read (a topic's stream key holding another type, an
//! entry without data) costs that topic or that entry only: it answers 502 `bad_store_reply`, is
//! counted, and never stalls the other topics' events or spins the node's reader.

use std::time::Duration;

use fred::interfaces::{KeysInterface, StreamsInterface};
use serde_json::{Value, json};
use shared::Topic;
use shared::keys::KeyLayout;

use support::app::*;
use support::redis::*;

#[tokio::test]
async fn a_stream_key_of_another_type_is_502_bad_store_reply_and_set_aside_while_other_topics_flow_in_order() {
    let redis = TestRedis::start().await;
    let prefix = unique_prefix();
    let keys = KeyLayout::new(&prefix);
    let (bad, good) = (Topic::parse("bad").expect("topic"), Topic::parse("good").expect("topic"));
    let client = redis_client(&redis).await;
    let _: () = client.set(keys.stream(&bad), "not a stream", None, None, false).await.expect("SET");
    let node = spawn_node(&redis, &prefix).await;

    // Both topics are armed together, so the node's first read of them is one XREAD for both.
    let mut stream = node.subscribe(&["bad", "good"], None).await;
    for i in 0..3 {
        node.publish("good", &format!("http {i}")).await;
    }
    let _: String = client.xadd(keys.stream(&good), false, None::<()>, "*", vec![("data", "raw")]).await.expect("XADD");
    let _: String = client.xadd(keys.stream(&good), false, None::<()>, "*", vec![("no-data", "x")]).await.expect("XADD");
    node.publish("good", "after the bad entry").await;
    let events = stream.events(5).await;
    assert_eq!(data(&events), ["http 0", "http 1", "http 2", "raw", "after the bad entry"], "the good topic flows, in order");

    let r = node.publish_raw(json!({ "topic": "bad", "data": "x" })).await;
    assert_eq!(r.status(), 502);
    assert!(!r.headers().contains_key("retry-after"), "asking again gets the same answer");
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"], "bad_store_reply");
    assert!(!body.to_string().contains("WRONGTYPE"), "the cause is logged, never echoed: {body}");

    // A reader retrying every 200 ms would fail about fifteen XREADs in 3 s; set aside, the topic
    // is tried again after 1 s, then 2 s, ...
    tokio::time::sleep(Duration::from_secs(3)).await;
    let m = node.metrics().await;
    let failed_reads = m.value(r#"sse_gateway_redis_errors_total{op="xread"}"#);
    assert!((1.0..=6.0).contains(&failed_reads), "the reader backs off instead of spinning: {failed_reads} failed XREADs");
    assert!(m.value(r#"sse_gateway_redis_malformed_total{kind="reply"}"#) >= 1.0);
    assert_eq!(m.value(r#"sse_gateway_redis_malformed_total{kind="entry"}"#), 1.0, "the entry without data, once");

    // Once the key is a stream again, its first entry's notification has it read at once.
    let _: i64 = client.del(keys.stream(&bad)).await.expect("DEL");
    let _: String = client.xadd(keys.stream(&bad), false, None::<()>, "*", vec![("data", "bad is back")]).await.expect("XADD");
    node.publish("good", "still flowing").await;
    let mut rest = data(&stream.events(2).await).into_iter().map(str::to_owned).collect::<Vec<_>>();
    rest.sort();
    assert_eq!(rest, ["bad is back", "still flowing"]);
}
