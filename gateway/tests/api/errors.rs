//! Statuses and JSON error bodies: every refusal is a 4xx with `{"error": code, "message": ...}`,
//! and no amount of bad requests stops the gateway from serving good ones.

use std::time::Duration;

use gateway::counters::Counters;
use serde_json::{Value, json};

use support::app::*;

/// Asserts the status and the `error` code of a JSON error body; returns the body.
async fn assert_error(resp: reqwest::Response, status: u16, code: &str) -> Value {
    let actual = resp.status();
    let is_stream = resp.headers().get("content-type").is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    assert!(!is_stream, "expected {status} {code}, got {actual} and an event stream");
    let text = resp.text().await.expect("body");
    assert_eq!(actual, status, "expected {status} {code}, got {actual}: {text}");
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("the error body is not JSON ({e}): {text:?}"));
    assert_eq!(body["error"], code, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "an error has a message: {body}");
    body
}

/// `GET /events?<query>` with a token that may follow any topic.
async fn get_events(app: &TestApp, query: &str) -> reqwest::Response {
    app.client.get(app.url(&format!("/events?{query}"))).bearer_auth(token(&["*"], &[])).send().await.expect("request")
}

/// `POST /publish` of raw bytes with a token that may publish anywhere.
async fn post_raw(app: &TestApp, body: impl Into<reqwest::Body>) -> reqwest::Response {
    app.client
        .post(app.url("/publish"))
        .bearer_auth(token(&[], &["*"]))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("request")
}

fn message(body: &Value) -> &str {
    body["message"].as_str().expect("message")
}

/// Parses an id of the form `<ms>-<seq>`.
fn parse_id(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or_else(|| panic!("id {id:?} is not <ms>-<seq>"));
    (ms.parse().unwrap_or_else(|_| panic!("id {id:?}: bad ms")), seq.parse().unwrap_or_else(|_| panic!("id {id:?}: bad seq")))
}

/// A subscribe + publish round trip still works.
async fn assert_still_serves(app: &TestApp) {
    let mut stream = app.subscribe(&["still.alive"], None).await;
    let id = app.publish("still.alive", "pong").await;
    let event = stream.next_event().await;
    assert_eq!(event.data, "pong");
    assert_eq!(event.last_event_id, id);
}

// --- Routing ------------------------------------------------------------------------------------

#[tokio::test]
async fn an_unknown_path_is_404_not_found() {
    let app = spawn_app().await;
    let resp = app.client.get(app.url("/nope")).send().await.expect("request");
    assert_error(resp, 404, "not_found").await;
    let resp = app.client.post(app.url("/events/extra")).send().await.expect("request");
    assert_error(resp, 404, "not_found").await;
}

#[tokio::test]
async fn a_wrong_method_is_405_method_not_allowed() {
    let app = spawn_app().await;
    let resp = app.client.delete(app.url("/events")).bearer_auth(token(&["*"], &[])).send().await.expect("request");
    assert_error(resp, 405, "method_not_allowed").await;
    let resp = app.client.get(app.url("/publish")).bearer_auth(token(&[], &["*"])).send().await.expect("request");
    assert_error(resp, 405, "method_not_allowed").await;
    let resp = app.client.put(app.url("/publish")).json(&json!({ "topic": "t", "data": "x" })).send().await.expect("request");
    assert_error(resp, 405, "method_not_allowed").await;
}

// --- GET /events --------------------------------------------------------------------------------

#[tokio::test]
async fn events_without_a_topic_are_400_invalid_topic() {
    let app = spawn_app().await;
    assert_error(get_events(&app, "").await, 400, "invalid_topic").await;
    assert_error(get_events(&app, "other=1").await, 400, "invalid_topic").await;
    assert_error(get_events(&app, "topic=").await, 400, "invalid_topic").await;
}

#[tokio::test]
async fn events_refuse_topics_with_characters_outside_the_alphabet() {
    let app = spawn_app().await;
    // (query value, decoded topic)
    let cases = [
        ("a%0Ab", "a\nb"),
        ("a%0D%0Aevent:%20x", "a\r\nevent: x"),
        ("a%00b", "a\0b"),
        ("a%20b", "a b"),
        ("a+b", "a b"),
        ("orders.*", "orders.*"),
        ("%7Ba%7D", "{a}"),
        ("a,b", "a,b"),
        // Cyrillic "о" (U+043E) in place of the Latin "o".
        ("%D0%BErders", "\u{43e}rders"),
    ];
    for (raw, topic) in cases {
        let body = assert_error(get_events(&app, &format!("topic={raw}")).await, 400, "invalid_topic").await;
        assert!(message(&body).contains(&format!("{topic:?}")), "the message names the topic {topic:?}: {body}");
        // Also when it hides behind a valid topic.
        assert_error(get_events(&app, &format!("topic=ok&topic={raw}")).await, 400, "invalid_topic").await;
    }
    assert_eq!(Counters::get(&app.counters().streams_total), 0);
    assert_still_serves(&app).await;
}

#[tokio::test]
async fn events_refuse_a_topic_longer_than_200_bytes() {
    let app = spawn_app().await;
    assert_eq!(get_events(&app, &format!("topic={}", "x".repeat(200))).await.status(), 200);
    assert_error(get_events(&app, &format!("topic={}", "x".repeat(201))).await, 400, "invalid_topic").await;
}

#[tokio::test]
async fn events_refuse_more_topics_than_the_default_max_of_32() {
    let app = spawn_app().await;
    let query = |n: usize| (0..n).map(|i| format!("topic=t{i}")).collect::<Vec<_>>().join("&");
    assert_eq!(get_events(&app, &query(32)).await.status(), 200);
    assert_error(get_events(&app, &query(33)).await, 400, "too_many_topics").await;
}

#[tokio::test]
async fn events_refuse_more_topics_than_the_configured_max() {
    let app = spawn_with(|c| c.max_topics = 2).await;
    assert_eq!(get_events(&app, "topic=a&topic=b").await.status(), 200);
    let body = assert_error(get_events(&app, "topic=a&topic=b&topic=c").await, 400, "too_many_topics").await;
    assert!(message(&body).contains('2'), "the message gives the limit: {body}");
}

#[tokio::test]
async fn an_unparseable_last_event_id_is_400() {
    let app = spawn_app().await;
    let resp = app.client.get(app.events_url(&["t"])).bearer_auth(token(&["*"], &[])).header("last-event-id", "garbage").send().await;
    assert_error(resp.expect("request"), 400, "invalid_last_event_id").await;
    assert_error(get_events(&app, "topic=t&lastEventId=1-2-3").await, 400, "invalid_last_event_id").await;
    assert_error(get_events(&app, "topic=t&lastEventId=-1").await, 400, "invalid_last_event_id").await;
    // The header wins over the query parameter, in refusal too.
    let resp = app
        .client
        .get(app.url("/events?topic=t&lastEventId=0-0"))
        .bearer_auth(token(&["*"], &[]))
        .header("last-event-id", "1-2-3")
        .send()
        .await
        .expect("request");
    assert_error(resp, 400, "invalid_last_event_id").await;
}

#[tokio::test]
async fn a_valid_last_event_id_is_accepted() {
    let app = spawn_app().await;
    let resp = app.client.get(app.events_url(&["t"])).bearer_auth(token(&["*"], &[])).header("last-event-id", "0-0").send().await;
    assert_eq!(resp.expect("request").status(), 200);
    assert_eq!(get_events(&app, "topic=t&lastEventId=0-0").await.status(), 200);
}

// --- POST /publish ------------------------------------------------------------------------------

#[tokio::test]
async fn a_body_that_is_not_json_is_400_invalid_json() {
    let app = spawn_app().await;
    for body in ["not json", "{\"topic\":", "", "{'topic':'t'}"] {
        assert_error(post_raw(&app, body).await, 400, "invalid_json").await;
    }
    assert_eq!(Counters::get(&app.counters().events_published), 0);
}

#[tokio::test]
async fn json_of_the_wrong_shape_is_400_invalid_event() {
    let app = spawn_app().await;
    let cases = [
        json!(42),
        json!("a string"),
        json!(null),
        json!({ "topic": "t" }),
        json!({ "data": "x" }),
        json!({ "topic": "t", "data": "x", "evnt": "typo" }),
        json!({ "topic": 7, "data": "x" }),
        json!({ "topic": "t", "data": "x", "retry": "soon" }),
        json!([{ "topic": "t", "data": "x" }, 42]),
    ];
    for body in cases {
        let resp = app.publish_raw(body.clone()).await;
        let err = assert_error(resp, 400, "invalid_event").await;
        assert!(!message(&err).is_empty(), "{body}: {err}");
    }
    assert_eq!(Counters::get(&app.counters().events_published), 0);
}

#[tokio::test]
async fn an_unknown_field_is_named_in_the_message() {
    let app = spawn_app().await;
    let body = assert_error(app.publish_raw(json!({ "topic": "t", "data": "x", "evnt": "typo" })).await, 400, "invalid_event").await;
    assert!(message(&body).contains("evnt"), "{body}");
}

#[tokio::test]
async fn event_names_with_line_breaks_or_the_reserved_prefix_are_400_invalid_event() {
    let app = spawn_app().await;
    for name in ["a\nb", "a\rb", "a\0b", "", "gateway.lost", "gateway.anything"] {
        let resp = app.publish_raw(json!({ "topic": "t", "event": name, "data": "x" })).await;
        let body = assert_error(resp, 400, "invalid_event").await;
        assert!(message(&body).contains("event"), "{name:?}: {body}");
    }
    assert_eq!(app.publish_raw(json!({ "topic": "t", "event": "order.created", "data": "x" })).await.status(), 200);
}

#[tokio::test]
async fn a_retry_over_a_day_is_400_invalid_event() {
    let app = spawn_app().await;
    assert_error(app.publish_raw(json!({ "topic": "t", "data": "x", "retry": 86_400_001 })).await, 400, "invalid_event").await;
    assert_eq!(app.publish_raw(json!({ "topic": "t", "data": "x", "retry": 86_400_000 })).await.status(), 200);
}

#[tokio::test]
async fn a_publish_topic_outside_the_alphabet_is_400_invalid_topic() {
    let app = spawn_app().await;
    for topic in ["a\nb", "a b", "", "orders.*", "\u{43e}rders"] {
        assert_error(app.publish_raw(json!({ "topic": topic, "data": "x" })).await, 400, "invalid_topic").await;
    }
    // In a batch the message says which event is wrong.
    let resp = app.publish_raw(json!([{ "topic": "ok", "data": "x" }, { "topic": "a\nb", "data": "y" }])).await;
    let body = assert_error(resp, 400, "invalid_topic").await;
    assert!(message(&body).contains("[1]"), "{body}");
    assert_eq!(Counters::get(&app.counters().events_published), 0);
}

#[tokio::test]
async fn an_empty_batch_is_400_empty_batch() {
    let app = spawn_app().await;
    assert_error(app.publish_raw(json!([])).await, 400, "empty_batch").await;
}

#[tokio::test]
async fn a_batch_over_max_batch_is_400_batch_too_large() {
    let app = spawn_with(|c| c.max_batch = 3).await;
    let batch = |n: usize| Value::Array((0..n).map(|i| json!({ "topic": "t", "data": format!("e{i}") })).collect());
    assert_error(app.publish_raw(batch(4)).await, 400, "batch_too_large").await;
    assert_eq!(Counters::get(&app.counters().events_published), 0);
    let resp = app.publish_raw(batch(3)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.expect("json")["ids"].as_array().expect("ids").len(), 3);
}

#[tokio::test]
async fn a_body_over_max_body_bytes_is_413_payload_too_large() {
    let app = spawn_with(|c| c.max_body_bytes = 2048).await;
    let event_of_size = |size: usize| {
        let skeleton = json!({ "topic": "t", "data": "" }).to_string();
        let body = json!({ "topic": "t", "data": "x".repeat(size - skeleton.len()) }).to_string();
        assert_eq!(body.len(), size);
        body
    };
    let body = assert_error(post_raw(&app, event_of_size(4096)).await, 413, "payload_too_large").await;
    assert!(message(&body).contains("2048"), "the message gives the limit: {body}");
    assert_eq!(Counters::get(&app.counters().events_published), 0);
    assert_eq!(post_raw(&app, event_of_size(2048)).await.status(), 200, "exactly the limit is accepted");
}

// --- Successful publish -------------------------------------------------------------------------

#[tokio::test]
async fn a_publish_answers_200_with_its_id() {
    let app = spawn_app().await;
    let resp = app.publish_raw(json!({ "topic": "t", "data": "x" })).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("json");
    let (ms, _) = parse_id(body["id"].as_str().expect("id"));
    assert!(ms >= (now() - 60) * 1000, "ms is wall-clock milliseconds: {body}");
    assert_eq!(body.as_object().expect("object").len(), 1, "only the id: {body}");
}

#[tokio::test]
async fn a_batch_answers_200_with_increasing_ids() {
    let app = spawn_app().await;
    let batch = Value::Array((0..10).map(|i| json!({ "topic": if i % 2 == 0 { "a" } else { "b" }, "data": i.to_string() })).collect());
    let resp = app.publish_raw(batch).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("json");
    let ids: Vec<(u64, u64)> = body["ids"].as_array().expect("ids").iter().map(|v| parse_id(v.as_str().expect("id string"))).collect();
    assert_eq!(ids.len(), 10);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {body}");
    assert_eq!(Counters::get(&app.counters().events_published), 10);
}

#[tokio::test]
async fn json_data_arrives_serialized_and_string_data_as_is() {
    let app = spawn_app().await;
    let mut stream = app.subscribe(&["objects"], None).await;
    let data = json!({ "order": 42, "items": [{ "sku": "a-1", "qty": 2 }], "note": "line 1\nline 2", "paid": true, "extra": null });
    app.publish_event(json!({ "topic": "objects", "data": data })).await;
    app.publish_event(json!({ "topic": "objects", "data": [1, 2, 3] })).await;
    app.publish_event(json!({ "topic": "objects", "data": "plain {text}" })).await;
    let events = stream.events(3).await;
    let parsed: Value = serde_json::from_str(&events[0].data).expect("the data is JSON");
    assert_eq!(parsed, data);
    assert_eq!(serde_json::from_str::<Value>(&events[1].data).expect("json"), json!([1, 2, 3]));
    assert_eq!(events[2].data, "plain {text}");
}

// --- Resilience ---------------------------------------------------------------------------------

#[tokio::test]
async fn the_gateway_keeps_serving_after_many_bad_requests() {
    let app = spawn_app().await;
    for _ in 0..5 {
        assert_error(app.client.get(app.url("/nope")).send().await.expect("request"), 404, "not_found").await;
        assert_error(app.client.delete(app.url("/events")).send().await.expect("request"), 405, "method_not_allowed").await;
        assert_error(get_events(&app, "").await, 400, "invalid_topic").await;
        assert_error(get_events(&app, "topic=a%00b").await, 400, "invalid_topic").await;
        assert_error(get_events(&app, "topic=t&lastEventId=garbage").await, 400, "invalid_last_event_id").await;
        assert_error(post_raw(&app, "{").await, 400, "invalid_json").await;
        assert_error(post_raw(&app, vec![0xff, 0xfe, 0x00]).await, 400, "invalid_json").await;
        assert_error(app.publish_raw(json!({ "topic": "t" })).await, 400, "invalid_event").await;
        assert_error(app.publish_raw(json!([])).await, 400, "empty_batch").await;
        let resp = app.client.get(app.events_url(&["t"])).bearer_auth("abc").send().await.expect("request");
        assert_error(resp, 401, "unauthorized").await;
    }
    assert_eq!(Counters::get(&app.counters().events_published), 0);
    assert_eq!(Counters::get(&app.counters().streams_open), 0);
    assert_still_serves(&app).await;
    // And bad requests beside an open stream do not disturb it.
    let mut stream = app.subscribe(&["busy"], None).await;
    assert_error(app.publish_raw(json!({ "topic": "busy", "data": "x", "event": "gateway.lost" })).await, 400, "invalid_event").await;
    stream.expect_no_event(Duration::from_millis(200)).await;
    app.publish("busy", "ok").await;
    assert_eq!(stream.next_event().await.data, "ok");
}
