//! Event streams over HTTP/1.x as the wire carries them: many idle streams on one node, a stream
//! after keep-alive or pipelined requests on the same socket, large request heads, HTTP/1.0, a
//! refused stream request followed by a good one, CORS headers on the stream's head, the Mercure
//! hub's stream; and an HTTP/2 (h2c) stream beside them.
//!
//! `Counters::lean_streams` counts the streams held on the lean path (written straight to their
//! sockets); the assertions on it are marked `lean:`. Streams whose connection started with
//! another request, and HTTP/2 streams, stay on hyper: for those the gauge must stay 0 (see
//! `counters.rs`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use futures::StreamExt;
use gateway::config::Protocol;
use gateway::counters::Counters;
use serde_json::{Value, json};
use shared::sse::Item;

use support::app::*;
use support::mercure::{HUB, legacy_token, publish_update, spawn_hub};
use support::wire::{RawStream, Wire};

/// Streams held at once by the idle-streams test: thousands, and still well within a minute on a
/// debug build sharing two cores with other tests.
const IDLE_STREAMS: usize = 2_000;
/// Streams of that test being opened at any moment: far below the listener's accept backlog
/// (1,024), so that no handshake is lost to an overflowing queue.
const OPENING: usize = 200;
/// The largest request head the gateway reads (`server::MAX_HEAD_BYTES`; nginx allows 32 KiB).
const MAX_HEAD: usize = 64 * 1024;

/// (event streams open, of which on the lean path).
fn streams(app: &TestApp) -> (u64, u64) {
    (Counters::get(&app.counters().streams_open), Counters::get(&app.counters().lean_streams))
}

/// Polls until `done` holds; fails after `within` with `what` and the last `streams` seen.
async fn until(app: &TestApp, within: Duration, what: &str, done: impl Fn((u64, u64)) -> bool) {
    eventually(what, within, async || {
        let now = streams(app);
        if done(now) { Ok(()) } else { Err(format!("(open, lean) streams: {now:?}")) }
    })
    .await;
}

/// A `GET /events?topic=…` head with a token for that topic and `extra` header lines (each
/// ending in CRLF).
fn events_head(version: &str, topic: &str, extra: &str) -> String {
    format!("GET /events?topic={topic} {version}\r\nHost: x\r\nAuthorization: Bearer {}\r\n{extra}\r\n", token(&[topic], &[]))
}

/// Header lines of exactly `len` bytes, each at most 2 KiB (under a hundred of them for 64 KiB).
fn padding(len: usize) -> String {
    // `X-Pad-000: ` and the CRLF.
    const OVERHEAD: usize = 13;
    let lines = len.div_ceil(2048);
    (0..lines)
        .map(|i| {
            let line = len / lines + usize::from(i < len % lines);
            format!("X-Pad-{i:03}: {}\r\n", "a".repeat(line - OVERHEAD))
        })
        .collect()
}

/// A stream head of exactly `total` bytes.
fn events_head_of(total: usize, topic: &str) -> String {
    let bare = events_head("HTTP/1.1", topic, "").len();
    let head = events_head("HTTP/1.1", topic, &padding(total - bare));
    assert_eq!(head.len(), total);
    head
}

/// Reads a stream's response from `wire`: 200, `text/event-stream`, and its first frame, the
/// `retry:` field.
async fn events_on(mut wire: Wire) -> RawStream {
    let head = wire.head().await;
    assert_eq!(head.status, 200, "{head:?}");
    assert_eq!(head.header("content-type"), Some("text/event-stream"));
    let mut stream = wire.into_events(&head);
    match stream.next_item().await {
        Some(Item::Retry(_)) => stream,
        other => panic!("a stream opens with retry:, got {other:?}"),
    }
}

/// Opens a stream from `source` with request head `head`.
async fn open_stream(source: IpAddr, to: SocketAddr, head: &str) -> RawStream {
    let mut wire = Wire::connect_from(source, to).await;
    wire.send(head.as_bytes()).await;
    events_on(wire).await
}

async fn open_events(app: &TestApp, head: &str) -> RawStream {
    open_stream(IpAddr::V4(Ipv4Addr::LOCALHOST), app.addr, head).await
}

/// Publishes on `topic`; `stream` gets that event, with its id.
async fn delivered(app: &TestApp, stream: &mut RawStream, topic: &str) {
    let data = format!("on {topic}");
    let id = app.publish(topic, &data).await;
    let e = stream.next_event().await;
    assert_eq!((e.data.as_str(), e.last_event_id.as_str()), (data.as_str(), id.as_str()));
}

fn json_body(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(bytes)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_idle_streams_each_receive_an_event_and_a_heartbeat() {
    // As many descriptors for the clients as for the gateway, in this one process.
    let limit = rlimit::increase_nofile_limit(u64::MAX).expect("raise the open files limit");
    assert!(limit > 2 * IDLE_STREAMS as u64 + 1024, "the hard limit on open files ({limit}) is too low for {IDLE_STREAMS} streams");
    let app = spawn_with(|c| c.heartbeat = Duration::from_secs(1)).await;
    let head = events_head("HTTP/1.1", "idle", "");
    // Four loopback sources spread the sockets' ports.
    let source = |i: usize| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % 4) as u8));
    let mut held: Vec<RawStream> =
        futures::stream::iter(0..IDLE_STREAMS).map(|i| open_stream(source(i), app.addr, &head)).buffer_unordered(OPENING).collect().await;
    let n = IDLE_STREAMS as u64;
    until(&app, WAIT, &format!("{n} open streams"), |(open, _)| open == n).await;

    let id = app.publish("idle", "to every stream").await;
    futures::future::join_all(held.iter_mut().map(|s| async {
        let e = s.next_event().await;
        assert_eq!((e.data.as_str(), e.last_event_id.as_str()), ("to every stream", id.as_str()));
        s.heartbeat().await;
    }))
    .await;
    let (_, lean_held) = streams(&app);

    drop(held);
    // lean: the lean path's streams are released too (0 today, as nothing is lean).
    until(&app, Duration::from_secs(30), "every stream to close", |s| s == (0, 0)).await;
    // lean:
    assert_eq!(lean_held, n, "lean: every stream was on the lean path");
}

#[tokio::test]
async fn keep_alive_requests_before_a_stream_on_the_same_socket_work() {
    let app = spawn_app().await;
    let mut wire = Wire::connect(app.addr).await;
    wire.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let head = wire.head().await;
    assert_eq!(head.status, 200);
    assert_eq!(json_body(&wire.body(&head).await), json!({ "status": "ok" }));

    let body = json!({ "topic": "elsewhere", "data": "before the stream" }).to_string();
    let publish = format!(
        "POST /publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        token(&[], &["*"]),
        body.len()
    );
    wire.send(publish.as_bytes()).await;
    let head = wire.head().await;
    assert_eq!(head.status, 200);
    assert!(json_body(&wire.body(&head).await)["id"].is_string());

    wire.send(events_head("HTTP/1.1", "t", "").as_bytes()).await;
    let mut stream = events_on(wire).await;
    delivered(&app, &mut stream, "t").await;
    until(&app, WAIT, "the stream", |(open, _)| open == 1).await;
    // lean: a connection whose first request was not a stream stays on hyper.
    assert_eq!(streams(&app).1, 0, "lean: a stream after other requests on its socket is not lean");
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let app = spawn_app().await;
    let mut wire = Wire::connect(app.addr).await;
    let requests =
        format!("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /readyz HTTP/1.1\r\nHost: x\r\n\r\n{}", events_head("HTTP/1.1", "t", ""));
    wire.send(requests.as_bytes()).await;
    for status in ["ok", "ready"] {
        let head = wire.head().await;
        assert_eq!(head.status, 200);
        assert_eq!(json_body(&wire.body(&head).await), json!({ "status": status }));
    }
    let mut stream = events_on(wire).await;
    delivered(&app, &mut stream, "t").await;
    until(&app, WAIT, "the stream", |(open, _)| open == 1).await;
    // lean: a connection whose first request was not a stream stays on hyper.
    assert_eq!(streams(&app).1, 0, "lean: a pipelined stream after other requests is not lean");
}

#[tokio::test]
async fn a_request_head_of_60_kib_opens_a_stream() {
    let app = spawn_app().await;
    let mut stream = open_events(&app, &events_head_of(60 * 1024, "t")).await;
    delivered(&app, &mut stream, "t").await;
    until(&app, WAIT, "the stream", |(open, _)| open == 1).await;
    // lean:
    assert_eq!(streams(&app).1, 1, "lean: a stream with a 60 KiB head is lean");
}

#[tokio::test]
async fn a_stream_request_head_over_64_kib_is_431_and_the_socket_closes() {
    let app = spawn_app().await;
    let mut wire = Wire::connect(app.addr).await;
    wire.send_refusable(events_head_of(MAX_HEAD + 1, "t").as_bytes()).await;
    let head = wire.head().await;
    assert_eq!(head.status, 431, "{head:?}");
    wire.closes().await;
    assert_eq!(streams(&app), (0, 0), "no stream was opened");
}

#[tokio::test]
async fn an_h2c_stream_works() {
    let app = spawn_app().await;
    let client = reqwest::Client::builder().no_proxy().http2_prior_knowledge().build().expect("client");
    let request = client.get(app.events_url(&["t"])).bearer_auth(token(&["t"], &[]));
    let resp = tokio::time::timeout(WAIT, request.send()).await.expect("the stream's head in time").expect("connect");
    assert_eq!((resp.status(), resp.version()), (reqwest::StatusCode::OK, reqwest::Version::HTTP_2));
    let mut stream = SseClient::new(resp);
    assert!(matches!(stream.next_item().await, Some(Item::Retry(_))), "a stream opens with retry:");
    let id = app.publish("t", "over h2").await;
    let e = stream.next_event().await;
    assert_eq!((e.data.as_str(), e.last_event_id.as_str()), ("over h2", id.as_str()));
    until(&app, WAIT, "the stream", |(open, _)| open == 1).await;
    // lean: HTTP/2 streams stay on hyper.
    assert_eq!(streams(&app).1, 0, "lean: an h2 stream is not lean");
}

#[tokio::test]
async fn http_1_0_streams_work() {
    let app = spawn_app().await;
    let mut wire = Wire::connect(app.addr).await;
    wire.send(events_head("HTTP/1.0", "t", "").as_bytes()).await;
    let head = wire.head().await;
    assert_eq!(head.status, 200, "{head:?}");
    assert_eq!(head.header("content-type"), Some("text/event-stream"));
    // HTTP/1.0 has no chunked coding: the body runs until the server closes.
    assert_eq!((head.header("transfer-encoding"), head.header("content-length")), (None, None), "{head:?}");
    let mut stream = wire.into_events(&head);
    assert!(matches!(stream.next_item().await, Some(Item::Retry(_))), "a stream opens with retry:");
    delivered(&app, &mut stream, "t").await;
    until(&app, WAIT, "the stream", |(open, _)| open == 1).await;
    // lean:
    assert_eq!(streams(&app).1, 1, "lean: an HTTP/1.0 stream is lean");
}

#[tokio::test]
async fn a_stream_failing_auth_gets_json_and_the_socket_stays_usable() {
    let app = spawn_app().await;
    let mut wire = Wire::connect(app.addr).await;
    wire.send(b"GET /events?topic=t HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let head = wire.head().await;
    assert_eq!(head.status, 401, "{head:?}");
    assert_eq!(head.header("content-type"), Some("application/json"));
    assert!(head.header("content-length").is_some(), "a sized body: {head:?}");
    assert!(head.header("www-authenticate").is_some_and(|v| v.starts_with("Bearer")), "{head:?}");
    assert_ne!(head.header("connection"), Some("close"), "the socket is kept");
    let body = json_body(&wire.body(&head).await);
    assert_eq!(body["error"], "unauthorized", "{body}");

    wire.send(events_head("HTTP/1.1", "t", "").as_bytes()).await;
    let mut stream = events_on(wire).await;
    delivered(&app, &mut stream, "t").await;
    until(&app, WAIT, "the stream", |(open, _)| open == 1).await;
    // A refused stream request is answered on the lean path, so the socket stays there.
    assert_eq!(streams(&app).1, 1, "a stream after a refused stream request on its socket is lean");
}

#[tokio::test]
async fn a_cors_stream_carries_the_cors_headers() {
    let app = spawn_with(|c| c.cors_origins = vec!["https://app.example".into()]).await;
    let mut wire = Wire::connect(app.addr).await;
    wire.send(events_head("HTTP/1.1", "t", "Origin: https://app.example\r\n").as_bytes()).await;
    let head = wire.head().await;
    assert_eq!(head.status, 200, "{head:?}");
    assert_eq!(head.header("access-control-allow-origin"), Some("https://app.example"), "{head:?}");
    assert_eq!(head.header("access-control-allow-credentials"), Some("true"), "{head:?}");
    let vary: Vec<&str> = head.headers.iter().filter(|(n, _)| n == "vary").map(|(_, v)| v.as_str()).collect();
    assert!(vary.iter().any(|v| v.to_ascii_lowercase().contains("origin")), "caches keep one copy per origin: {head:?}");
    let mut allowed = wire.into_events(&head);
    assert!(matches!(allowed.next_item().await, Some(Item::Retry(_))), "a stream opens with retry:");

    let mut other = Wire::connect(app.addr).await;
    other.send(events_head("HTTP/1.1", "t", "Origin: https://evil.example\r\n").as_bytes()).await;
    let head = other.head().await;
    assert_eq!(head.status, 200, "{head:?}");
    assert_eq!(head.header("access-control-allow-origin"), None, "{head:?}");
    delivered(&app, &mut allowed, "t").await;
    until(&app, WAIT, "both streams", |(open, _)| open == 2).await;
    // lean:
    assert_eq!(streams(&app).1, 2, "lean: streams with an Origin are lean");
}

#[tokio::test]
async fn a_mercure_hub_stream_on_a_raw_socket_receives_an_update() {
    let app = spawn_hub(Protocol::Legacy, true).await;
    let mut wire = Wire::connect(app.addr).await;
    wire.send(format!("GET {HUB}?topic=books/1 HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).await;
    let head = wire.head().await;
    assert_eq!(head.status, 200, "{head:?}");
    assert_eq!(head.header("content-type"), Some("text/event-stream"));
    let mut stream = wire.into_events(&head);
    let id = publish_update(&app, &app.base, &legacy_token(&["*"], &[]), &[("topic", "books/1"), ("data", "an update")]).await;
    let e = stream.next_event().await;
    assert_eq!((e.data.as_str(), e.last_event_id.as_str()), ("an update", id.as_str()));
    until(&app, WAIT, "the stream", |(open, _)| open == 1).await;
    // lean:
    assert_eq!(streams(&app).1, 1, "lean: a hub stream is lean");
}
