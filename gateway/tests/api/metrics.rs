//! `GET /metrics`: what an operator scrapes, checked against what the test did.

use fred::interfaces::{PubsubInterface, StreamsInterface};
use shared::Topic;
use shared::keys::KeyLayout;

use support::app::*;
use support::redis::*;

#[tokio::test]
async fn metrics_count_streams_events_resumptions_and_refused_tokens() {
    let app = spawn_app().await;
    let mut first = app.subscribe(&["m"], None).await;
    let id = app.publish("m", "one").await;
    assert_eq!(first.next_event().await.data, "one");
    let mut resumed = app.subscribe(&["m"], Some(&id)).await;
    app.publish("m", "two").await;
    assert_eq!(first.next_event().await.data, "two");
    assert_eq!(resumed.next_event().await.data, "two");
    let refused = app.client.get(app.events_url(&["m"])).bearer_auth("not-a-token").send().await.expect("request");
    assert_eq!(refused.status(), 401);
    let missing = app.client.get(app.events_url(&["m"])).send().await.expect("request");
    assert_eq!(missing.status(), 401);

    let m = app.metrics().await;
    assert_eq!(m.value("sse_gateway_connections_open"), 2.0, "{}", m.0);
    assert_eq!(m.value("sse_gateway_connections_opened_total"), 2.0);
    assert_eq!(m.value(r#"sse_gateway_events_published_total{path="http"}"#), 2.0);
    assert_eq!(m.value("sse_gateway_events_delivered_total"), 3.0, "one and two to the first, two to the resumed");
    assert_eq!(m.value("sse_gateway_resumptions_total"), 1.0);
    assert_eq!(m.value("sse_gateway_upstream_subscriptions"), 1.0);
    assert_eq!(m.value("sse_gateway_publish_to_deliver_seconds_count"), 2.0);
    assert_eq!(m.value(r#"sse_gateway_auth_failures_total{reason="malformed"}"#), 1.0);
    assert_eq!(m.value(r#"sse_gateway_auth_failures_total{reason="missing"}"#), 1.0);
    let written = m.value("sse_gateway_bytes_written_total");
    assert!(written > 0.0);
    assert!(!m.0.contains("not-a-token"), "no token in the metrics");

    // A client that leaves is counted as gone once the node notices (its next write).
    drop(first);
    drop(resumed);
    let m = eventually("the closed streams to be counted", WAIT, async || {
        app.publish("m", "nudge").await;
        let m = app.metrics().await;
        if m.value(r#"sse_gateway_connections_closed_total{reason="client_gone"}"#) == 2.0 { Ok(m) } else { Err(m.0) }
    })
    .await;
    assert_eq!(m.value("sse_gateway_connections_open"), 0.0);
    assert!(m.value("sse_gateway_bytes_written_total") > written);
}

#[tokio::test]
async fn metrics_tell_the_publishing_paths_apart_and_time_redis() {
    let redis = TestRedis::start().await;
    let prefix = unique_prefix();
    let node = spawn_node(&redis, &prefix).await;
    let mut s = node.subscribe(&["p"], None).await;
    node.publish("p", "http").await;
    let layout = KeyLayout::new(&prefix);
    let topic = Topic::parse("p").expect("topic");
    let client = redis_client(&redis).await;
    let _: String = client.xadd(layout.stream(&topic), false, None::<()>, "*", vec![("data", "raw")]).await.expect("xadd");
    let _: i64 = client.publish(layout.live(&topic), "live").await.expect("publish");
    let got: Vec<String> = s.events(3).await.into_iter().map(|e| e.data).collect();
    assert_eq!(got, ["http", "raw", "live"]);

    let m = node.metrics().await;
    assert_eq!(m.value(r#"sse_gateway_events_published_total{path="http"}"#), 1.0, "{}", m.0);
    assert_eq!(m.value(r#"sse_gateway_events_published_total{path="xadd"}"#), 1.0, "the node's own publish is not an XADD");
    assert_eq!(m.value(r#"sse_gateway_events_published_total{path="publish"}"#), 1.0);
    assert_eq!(m.value(r#"sse_gateway_redis_command_duration_seconds_count{op="publish"}"#), 1.0);
    assert!(m.value(r#"sse_gateway_redis_command_duration_seconds_count{op="xread"}"#) >= 1.0);
    assert_eq!(m.value(r#"sse_gateway_redis_errors_total{op="publish"}"#), 0.0);
    assert_eq!(m.value("sse_gateway_publish_to_deliver_seconds_count"), 2.0, "stream events only; live ones have no id");
}

#[tokio::test]
async fn metrics_can_move_to_an_admin_address() {
    let app = spawn_with(|c| c.metrics_addr = Some("127.0.0.1:0".parse().expect("addr"))).await;
    let admin = app.metrics_addr.expect("an admin address");
    assert_ne!(admin, app.addr);
    assert_eq!(app.client.get(app.url("/metrics")).send().await.expect("request").status(), 404, "not on the client-facing port");
    let m = app.metrics().await;
    assert_eq!(m.value("sse_gateway_connections_open"), 0.0);
    let ready = app.client.get(format!("http://{admin}/readyz")).send().await.expect("request");
    assert_eq!(ready.status(), 200);
    app.shutdown().await;
}
