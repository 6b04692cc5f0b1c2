//! Per-topic grants, checked after authentication, and the stream that closes when its token
//! expires.

use std::time::{Duration, Instant};

use gateway::counters::Counters;
use serde_json::json;
use shared::sse::Item;

use super::common::*;
use support::app::*;

#[tokio::test]
async fn subscribing_needs_a_grant_for_every_topic() {
    let app = spawn_app().await;
    let t = token(&["orders.*"], &[]);
    assert_eq!(get_events(&app, &["orders.1"], &t).await.status(), 200);
    assert_forbidden(get_events(&app, &["orders.1", "secret"], &t).await, "secret").await;
    assert_forbidden(get_events(&app, &["orders"], &t).await, "orders").await;
    // A publish grant is not a subscribe grant.
    assert_forbidden(get_events(&app, &["orders.1"], &token(&[], &["*"])).await, "orders.1").await;
}

#[tokio::test]
async fn publishing_needs_a_grant_for_the_topic() {
    let app = spawn_app().await;
    let t = token(&[], &["orders.*"]);
    assert_forbidden(publish_as(&app, &t, "other").await, "other").await;
    assert_eq!(publish_as(&app, &t, "orders.1").await.status(), 200);
    // A subscribe grant is not a publish grant.
    assert_forbidden(publish_as(&app, &token(&["*"], &[]), "orders.1").await, "orders.1").await;
    assert_eq!(Counters::get(&app.counters().events_published), 1);
}

#[tokio::test]
async fn a_batch_with_one_forbidden_topic_publishes_nothing() {
    let app = spawn_app().await;
    let mut stream = app.subscribe(&["orders.1"], None).await;
    let batch = json!([
        { "topic": "orders.1", "data": "first" },
        { "topic": "other", "data": "forbidden" },
        { "topic": "orders.1", "data": "last" },
    ]);
    let resp = app.client.post(app.url("/publish")).bearer_auth(token(&[], &["orders.*"])).json(&batch).send().await.expect("request");
    assert_forbidden(resp, "other").await;
    stream.expect_no_event(Duration::from_millis(300)).await;
    assert_eq!(Counters::get(&app.counters().events_published), 0);
    // The stream is live: the next publish is the first event it sees.
    app.publish("orders.1", "after").await;
    assert_eq!(stream.next_event().await.data, "after");
}

#[tokio::test]
async fn authentication_comes_before_topic_validation() {
    let app = spawn_app().await;
    let resp = app.client.get(app.url("/events?topic=bad%20topic")).send().await.expect("request");
    assert_unauthorized(resp, None).await;
    let resp = app.client.get(app.url("/events")).send().await.expect("request");
    assert_unauthorized(resp, None).await;
    let resp = app.client.post(app.url("/publish")).json(&json!({ "topic": "bad topic", "data": "x" })).send().await.expect("request");
    assert_unauthorized(resp, None).await;
    let resp = app.client.post(app.url("/publish")).body("not json").send().await.expect("request");
    assert_unauthorized(resp, None).await;
}

// --- Expiry while streaming ---------------------------------------------------------------------------

#[tokio::test]
async fn a_stream_closes_when_its_token_expires() {
    // No refresh offer either: this is the stream of a client that does not refresh (see refresh.rs).
    let app = spawn_with(|c| {
        c.jwt.as_mut().expect("jwt").leeway = Duration::ZERO;
        c.refresh_window = Duration::ZERO;
    })
    .await;
    let t = token_with(|c| c.exp = now() + 2);
    let opened = Instant::now();
    let resp = get_events(&app, &["t"], &t).await;
    assert_eq!(resp.status(), 200);
    let mut stream = SseClient::new(resp);
    let items = tokio::time::timeout(Duration::from_secs(5), stream.until_end()).await.expect("the stream ends by itself within 5 s");
    assert!(stream.ended);
    assert!(opened.elapsed() >= Duration::from_millis(900), "closed after {:?}, before the token expired", opened.elapsed());
    assert!(!items.iter().any(|i| matches!(i, Item::Event(_))), "no event was published: {items:?}");
    assert_eq!(Counters::get(&app.counters().token_expired_disconnects), 1);
    // The same token is now refused outright.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_unauthorized(get_events(&app, &["t"], &t).await, Some("expired")).await;
}
