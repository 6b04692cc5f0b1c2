//! Publish → receive: headers, the opening `retry:`, several topics on one connection, several
//! connections on one topic, ids and order.

use std::time::Duration;

use serde_json::json;
use shared::sse::Item;

use support::app::*;

#[tokio::test]
async fn a_stream_opens_with_sse_headers_and_a_retry_field() {
    let app = spawn_app().await;
    let mut s = app.subscribe(&["news"], None).await;
    assert_eq!(s.headers["content-type"], "text/event-stream");
    assert_eq!(s.headers["cache-control"], "no-cache");
    assert_eq!(s.headers["x-accel-buffering"], "no");
    assert!(s.headers.get("content-encoding").is_none(), "nothing may compress (buffer) the stream");
    match s.next_item().await {
        Some(Item::Retry(ms)) => assert!((3000..=5000).contains(&ms), "retry {ms} is the 3 s base plus up to 2 s jitter"),
        other => panic!("the first bytes must carry retry:, got {other:?}"),
    }
}

#[tokio::test]
async fn the_retry_field_is_jittered_per_connection() {
    let app = spawn_app().await;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..8 {
        let mut s = app.subscribe(&["t"], None).await;
        if let Some(Item::Retry(ms)) = s.next_item().await {
            seen.insert(ms);
        }
    }
    assert!(seen.len() > 1, "eight connections all got the same retry: {seen:?}");
}

#[tokio::test]
async fn events_reach_every_subscriber_in_order_with_their_ids() {
    let app = spawn_app().await;
    let mut a = app.subscribe(&["orders"], None).await;
    let mut b = app.subscribe(&["orders"], None).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(app.publish("orders", &format!("o{i}")).await);
    }
    for s in [&mut a, &mut b] {
        let got = s.events(20).await;
        assert_eq!(data(&got), (0..20).map(|i| format!("o{i}")).collect::<Vec<_>>());
        assert_eq!(got.iter().map(|e| e.last_event_id.clone()).collect::<Vec<_>>(), ids, "single-topic ids are the stream ids");
        s.expect_no_event(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn one_connection_follows_several_topics_and_only_those() {
    let app = spawn_app().await;
    let mut s = app.subscribe(&["a", "b", "c"], None).await;
    app.publish("a", "1").await;
    app.publish("x", "not followed").await;
    app.publish("b", "2").await;
    app.publish("c", "3").await;
    app.publish("a", "4").await;
    let got = s.events(4).await;
    assert_eq!(data(&got), ["1", "2", "3", "4"]);
    for e in &got {
        assert!(shared::Cursor::parse(&e.last_event_id).is_ok(), "multi-topic ids are cursors: {}", e.last_event_id);
    }
    s.expect_no_event(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn named_events_and_json_data_arrive_as_published() {
    let app = spawn_app().await;
    let mut s = app.subscribe(&["t"], None).await;
    app.publish_event(json!({ "topic": "t", "event": "order.created", "data": { "id": 7, "lines": ["a\nb"] } })).await;
    app.publish_event(json!({ "topic": "t", "data": "plain", "retry": 1234 })).await;
    let got = s.events(2).await;
    assert_eq!(got[0].event, "order.created");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&got[0].data).expect("json"), json!({ "id": 7, "lines": ["a\nb"] }));
    assert_eq!(got[1].event, "message");
    assert_eq!(got[1].data, "plain");
}

#[tokio::test]
async fn a_batch_publish_is_delivered_in_order_with_increasing_ids() {
    let app = spawn_app().await;
    let mut s = app.subscribe(&["t", "u"], None).await;
    let r = app.publish_raw(json!([{ "topic": "t", "data": "1" }, { "topic": "u", "data": "2" }, { "topic": "t", "data": "3" }])).await;
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.expect("json");
    let ids: Vec<shared::StreamId> =
        body["ids"].as_array().expect("ids").iter().map(|v| v.as_str().expect("id").parse().expect("stream id")).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(data(&s.events(3).await), ["1", "2", "3"]);
}

#[tokio::test]
async fn the_fanout_holds_one_entry_per_topic_and_releases_it() {
    let app = spawn_app().await;
    let a = app.subscribe(&["shared", "only-a"], None).await;
    let b = app.subscribe(&["shared"], None).await;
    let mut topics: Vec<String> = app.state.fanout.active_topics().iter().map(|t| t.to_string()).collect();
    topics.sort();
    assert_eq!(topics, ["only-a", "shared"]);
    drop(a);
    drop(b);
    // The server notices the closed connections when it next writes; a heartbeat-free publish does it.
    eventually("the entries to be released", WAIT, async || {
        if app.state.fanout.active_topics().is_empty() {
            return true;
        }
        app.publish("shared", "poke").await;
        app.publish("only-a", "poke").await;
        false
    })
    .await;
    assert_eq!(gateway::counters::Counters::get(&app.counters().streams_open), 0);
}

#[tokio::test]
async fn the_access_token_query_parameter_works_for_browsers() {
    let app = spawn_app().await;
    let url = format!("{}&access_token={}", app.events_url(&["t"]), token(&["t"], &[]));
    let resp = app.client.get(url).send().await.expect("connect");
    assert_eq!(resp.status(), 200);
    let mut s = SseClient::new(resp);
    app.publish("t", "hello").await;
    assert_eq!(s.next_event().await.data, "hello");
}
