//! Traces: a publish and its deliveries are one trace, across nodes sharing a Redis and on one
//! node with the embedded bus; a raw `XADD` without trace fields is delivered in a trace of its
//! own; no span records a token or a query string.
//!
//! The subscriber is process-wide, so these tests live in a binary of their own, with spans
//! going to an in-memory exporter through the gateway's own telemetry set-up. Tests run in
//! parallel and share that exporter: each one looks only at the spans of its own topics.

use std::sync::OnceLock;

use fred::interfaces::StreamsInterface;
use gateway::telemetry::{self, Logs, Telemetry};
use opentelemetry::Value;
use opentelemetry::trace::{SpanId, SpanKind, Status};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use serde_json::json;
use shared::Topic;
use shared::keys::KeyLayout;

use support::app::*;
use support::redis::*;

struct Traces {
    exporter: InMemorySpanExporter,
    provider: SdkTracerProvider,
    _telemetry: Telemetry,
}

/// The process's telemetry, set up once, exporting to memory.
fn traces() -> &'static Traces {
    static TRACES: OnceLock<Traces> = OnceLock::new();
    TRACES.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        let provider = telemetry::tracer_provider(exporter.clone(), "sse-gateway");
        let telemetry = telemetry::init(Logs::Off, Some(provider.clone()));
        assert!(telemetry::traces_on(), "the tracing subscriber was installed");
        Traces { exporter, provider, _telemetry: telemetry }
    })
}

fn attr(span: &SpanData, key: &str) -> Option<String> {
    span.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.as_str().into_owned())
}

fn int_attr(span: &SpanData, key: &str) -> Option<i64> {
    span.attributes.iter().find(|kv| kv.key.as_str() == key).and_then(|kv| match kv.value {
        Value::I64(n) => Some(n),
        _ => None,
    })
}

/// Every span exported so far.
fn finished() -> Vec<SpanData> {
    let t = traces();
    t.provider.force_flush().expect("flush");
    t.exporter.get_finished_spans().expect("spans")
}

/// Waits until a span named `name` with attribute `key` = `value` is exported, and returns it.
async fn span(name: &str, key: &str, value: &str) -> SpanData {
    span_where(&format!("{name} span with {key}={value}"), |s| s.name == name && attr(s, key).as_deref() == Some(value)).await
}

/// Waits until a span matching `pred` is exported, and returns it.
async fn span_where(what: &str, pred: impl Fn(&SpanData) -> bool) -> SpanData {
    eventually(what, WAIT, async || finished().into_iter().find(&pred)).await
}

/// A topic no other test uses.
fn topic(label: &str) -> String {
    format!("{label}-{}", rand::random::<u32>())
}

/// A `traceparent` as a calling service would send it.
fn caller() -> (String, String, String) {
    let (trace, span) = (format!("{:032x}", rand::random::<u128>() | 1), format!("{:016x}", rand::random::<u64>() | 1));
    (format!("00-{trace}-{span}-01"), trace, span)
}

fn assert_child(child: &SpanData, parent: &SpanData) {
    assert_eq!(child.span_context.trace_id(), parent.span_context.trace_id(), "{} is in the trace of {}", child.name, parent.name);
    assert_eq!(child.parent_span_id, parent.span_context.span_id(), "{} is a child of {}", child.name, parent.name);
}

#[tokio::test]
async fn a_publish_on_one_node_and_its_delivery_on_another_are_one_trace() {
    traces();
    let redis = TestRedis::start().await;
    let prefix = unique_prefix();
    let (a, b) = (spawn_node_at(&redis.url, &prefix, |_| {}).await, spawn_node_at(&redis.url, &prefix, |_| {}).await);
    let topic = topic("orders");
    // The token in the query, as a browser's EventSource sends it: no span may record it.
    let subscribe_token = token(&["*"], &[]);
    let url = format!("{}&access_token={subscribe_token}", b.events_url(&[&topic]));
    let (stream_parent, stream_trace, _) = caller();
    let subscribe = a.client.get(url).header("traceparent", stream_parent).send();
    let resp = tokio::time::timeout(WAIT, subscribe).await.expect("connect in time").expect("connect");
    assert_eq!(resp.status(), 200);
    let mut client = SseClient::new(resp);

    let (traceparent, caller_trace, caller_span) = caller();
    let publish_token = token(&[], &["*"]);
    let r = a
        .client
        .post(a.url("/publish"))
        .bearer_auth(&publish_token)
        .header("traceparent", &traceparent)
        .json(&json!({ "topic": topic, "data": "hello" }))
        .send()
        .await
        .expect("publish");
    assert_eq!(r.status(), 200);
    let id = r.json::<serde_json::Value>().await.expect("json")["id"].as_str().expect("id").to_owned();
    let event = client.next_event().await;
    assert_eq!((event.data.as_str(), event.last_event_id.as_str()), ("hello", id.as_str()));

    // Node A: the caller's trace continues in the request, whose publish span carries it on.
    let publish = span("publish", "topic", &topic).await;
    assert_eq!(publish.span_context.trace_id().to_string(), caller_trace);
    let request = span_where("publish request span", |s| s.name == "request" && s.span_context.span_id() == publish.parent_span_id).await;
    assert_eq!(request.parent_span_id.to_string(), caller_span);
    assert!(request.parent_span_is_remote);
    assert_eq!(attr(&request, "route").as_deref(), Some("/publish"));
    assert_eq!(publish.span_kind, SpanKind::Producer);
    assert_eq!(int_attr(&publish, "events"), Some(1));
    assert_eq!(attr(&publish, "id"), Some(id.clone()));

    // Node B: through Redis, its delivery is a child of node A's publish.
    let deliver = span("deliver", "topic", &topic).await;
    assert_child(&deliver, &publish);
    assert!(deliver.parent_span_is_remote, "the parent came through Redis");
    assert_eq!(deliver.span_kind, SpanKind::Consumer);
    assert_eq!(attr(&deliver, "id"), Some(id.clone()));
    assert_eq!(int_attr(&deliver, "connections"), Some(1));

    // The stream's request span ends with the stream.
    drop(client);
    a.shutdown().await;
    b.shutdown().await;
    let stream = span_where("event stream's request span", |s| s.span_context.trace_id().to_string() == stream_trace).await;
    assert_eq!((stream.name.as_ref(), attr(&stream, "route").as_deref()), ("request", Some("/events")));
    let delivers = finished().into_iter().filter(|s| s.name == "deliver" && attr(s, "topic").as_deref() == Some(topic.as_str())).count();
    assert_eq!(delivers, 1, "once per event per node following the topic (only B does)");
    for s in &finished() {
        let values = s.attributes.iter().chain(s.events.iter().flat_map(|e| e.attributes.iter()));
        for kv in values {
            let v = kv.value.as_str();
            for secret in [subscribe_token.as_str(), publish_token.as_str(), "access_token", "topic="] {
                assert!(!v.contains(secret), "span {} records {secret:?} in {}", s.name, kv.key);
            }
        }
    }
}

#[tokio::test]
async fn a_raw_xadd_without_trace_fields_is_delivered_with_no_parent() {
    traces();
    let redis = TestRedis::start().await;
    let prefix = unique_prefix();
    let node = spawn_node_at(&redis.url, &prefix, |_| {}).await;
    let (raw, garbled) = (topic("raw"), topic("garbled"));
    let mut client = node.subscribe(&[&raw, &garbled], None).await;
    let publisher = redis_client(&redis).await;
    let keys = KeyLayout::new(&prefix);
    let stream = |t: &str| keys.stream(&Topic::parse(t).expect("topic"));
    let plain: String = publisher.xadd(stream(&raw), false, None::<()>, "*", vec![("data", "plain")]).await.expect("xadd");
    let fields = vec![("data", "odd"), ("traceparent", "not-a-traceparent")];
    let odd: String = publisher.xadd(stream(&garbled), false, None::<()>, "*", fields).await.expect("xadd");
    let got = client.events(2).await;
    assert_eq!(data(&got), ["plain", "odd"]);

    for (topic, id) in [(&raw, plain), (&garbled, odd)] {
        let deliver = span("deliver", "topic", topic).await;
        assert_eq!(deliver.parent_span_id, SpanId::INVALID, "a trace of its own");
        assert!(deliver.span_context.is_valid());
        assert_eq!(deliver.status, Status::Unset);
        assert_eq!(attr(&deliver, "id"), Some(id));
        assert_eq!(int_attr(&deliver, "connections"), Some(1));
    }
    node.shutdown().await;
}

#[tokio::test]
async fn with_the_embedded_bus_a_delivery_is_a_child_of_its_publish() {
    traces();
    let node = spawn_app().await;
    let topic = topic("local");
    let mut clients = vec![node.subscribe(&[&topic], None).await, node.subscribe(&[&topic], None).await];
    let id = node.publish(&topic, "x").await;
    for c in &mut clients {
        assert_eq!(c.next_event().await.last_event_id, id);
    }
    let publish = span("publish", "topic", &topic).await;
    let deliver = span("deliver", "topic", &topic).await;
    assert_child(&deliver, &publish);
    assert_eq!(attr(&deliver, "id"), Some(id));
    assert_eq!(int_attr(&deliver, "connections"), Some(2), "one span for both connections");
    node.shutdown().await;
}
